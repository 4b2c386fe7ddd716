//! Throttle: over-limit requests are held and released as capacity returns (never faster than
//! the limit, never held past `max_wait`), the excess beyond `max_wait` rejected at once, and
//! clients that hang up while held give their places back.

use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::{eventually, Envoy, MockLlm};

fn config(max_wait: &str) -> String {
    json!({"rules": [{"name": "paced", "key": ["api_key"], "algorithm": "gcra", "limit": 10, "window": "1s",
                      "strategy": "throttle", "max_wait": max_wait}]})
    .to_string()
}

/// One request of a burst: its status, when it was sent and when it completed (since the
/// burst started), its Retry-After.
#[derive(Debug)]
struct Sent {
    status: u16,
    sent: Duration,
    done: Duration,
    retry_after: Option<String>,
}

/// Send `n` requests at once; each one's outcome, sorted by completion time.
fn burst(envoy: &Envoy, n: usize) -> Vec<Sent> {
    let start = Instant::now();
    let mut out: Vec<Sent> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let sent = start.elapsed();
                    let r = Request::get(&envoy.url("/")).header("x-api-key", "sk-th").send().unwrap();
                    let retry_after = r.header("retry-after").map(str::to_string);
                    Sent { status: r.status, sent, done: start.elapsed(), retry_after }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    out.sort_by_key(|r| r.done);
    out
}

fn queue_gauge(envoy: &Envoy) -> f64 {
    envoy.prometheus_value("tollgate_throttle_queue{}").unwrap_or(-1.0)
}

#[test]
fn a_burst_of_30_against_10_per_second_all_succeed_spread_100ms_apart() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config("5s"), llm.port);
    for round in 0..3 {
        let results = burst(&envoy, 30);
        assert!(results.iter().all(|r| r.status == 200), "round {round}: {results:?}");
        // 10 at once, then one per 100 ms: the 30th is admitted 2 s after the first, never
        // sooner (a busy machine can only make it later).
        let last = results[29].done;
        assert!(last >= Duration::from_millis(1800), "round {round}: released faster than 10/s: {results:?}");
        // Held, then released: never held past max_wait (5 s; with ample slack for a busy machine).
        assert!(last <= Duration::from_secs(20), "round {round}: last done at {last:?}");
        eventually(&format!("round {round}: nothing left held"), 10, || (queue_gauge(&envoy) == 0.0).then_some(()));
        // The bucket refills (10 a second) before the next round.
        std::thread::sleep(Duration::from_millis(1200));
    }
    let throttled = envoy.prometheus_value("tollgate_rule_throttled{rule=\"paced\"}").unwrap();
    assert_eq!(throttled, 60.0);
}

#[test]
fn with_max_wait_500ms_the_excess_is_rejected_at_once_with_retry_after() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config("500ms"), llm.port);
    let results = burst(&envoy, 30);
    let ok = results.iter().filter(|r| r.status == 200).count();
    // 10 at once + 5 that fit in 500 ms; one more for every 100 ms the burst took to send on a
    // busy machine.
    let sending = results.iter().map(|r| r.sent).max().unwrap_or_default();
    let most = 15 + (sending.as_millis() / 100) as usize;
    assert!((15..=most).contains(&ok), "10 at once + 5 that fit in 500 ms (at most {most}): {results:?}");
    for r in &results {
        if r.status == 429 {
            // Rejected at once, not held: answered well before max_wait (500 ms) would have
            // released it, with ample slack for a busy machine.
            let waited = r.done - r.sent;
            assert!(waited < Duration::from_secs(2), "rejected quickly, not after holding: {r:?}");
            assert!(r.retry_after.as_deref().is_some_and(|v| v.parse::<u64>().unwrap() >= 1), "Retry-After: {r:?}");
        }
    }
}

#[test]
fn clients_that_abort_while_held_free_their_places() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "slow", "key": ["api_key"], "algorithm": "leaky_bucket", "limit": 1,
                                   "window": "1s", "burst": 1, "strategy": "throttle", "max_wait": "10s"}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    assert_eq!(Request::get(&envoy.url("/")).header("x-api-key", "k").send().unwrap().status, 200);
    // Five clients queue up (waits 1..5 s) and hang up.
    let mut conns: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\n\r\n").unwrap();
            s
        })
        .collect();
    eventually("five clients held", 10, || (queue_gauge(&envoy) == 5.0).then_some(()));
    conns.clear();
    eventually("aborted clients leave the queue", 10, || (queue_gauge(&envoy) == 0.0).then_some(()));
    // Their places were given back: the next request waits about 1 s, not 6 s (3.5 s tells
    // them apart with slack for a busy machine).
    let start = Instant::now();
    let r = Request::get(&envoy.url("/")).header("x-api-key", "k").send().unwrap();
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(3500),
        "waited {:?}: the aborted places were kept",
        start.elapsed()
    );
}
