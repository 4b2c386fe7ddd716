//! Throttle: over-limit requests are held and released in order as capacity returns.

use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::{Envoy, MockLlm};

fn config(max_wait: &str) -> String {
    json!({"rules": [{"name": "paced", "key": ["api_key"], "algorithm": "gcra", "limit": 10, "window": "1s",
                      "strategy": "throttle", "max_wait": max_wait}]})
    .to_string()
}

/// Send `n` requests at once; (status, completion time since start) of each, sorted by time.
fn burst(envoy: &Envoy, n: usize) -> Vec<(u16, Duration, Option<String>)> {
    let start = Instant::now();
    let mut out: Vec<(u16, Duration, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let r = Request::get(&envoy.url("/")).header("x-api-key", "sk-th").send().unwrap();
                    (r.status, start.elapsed(), r.header("retry-after").map(str::to_string))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    out.sort_by_key(|(_, t, _)| *t);
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
        assert!(results.iter().all(|(s, _, _)| *s == 200), "round {round}: {results:?}");
        let held: Vec<Duration> = results[10..].iter().map(|(_, t, _)| *t).collect();
        let first = held[0];
        let last = held[held.len() - 1];
        // 20 held requests leave one per 100 ms: the last about 1.9 s after the first.
        let spread = last - first;
        assert!(
            spread >= Duration::from_millis(1700) && spread <= Duration::from_millis(2300),
            "round {round}: spread {spread:?}"
        );
        for pair in held.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap <= Duration::from_millis(250), "round {round}: gap {gap:?} in {held:?}");
        }
        assert!(last <= Duration::from_millis(2600), "round {round}: last done at {last:?}");
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(queue_gauge(&envoy), 0.0, "round {round}: nothing left held");
    }
    let throttled = envoy.prometheus_value("tollgate_rule_throttled{rule=\"paced\"}").unwrap();
    assert_eq!(throttled, 60.0);
}

#[test]
fn with_max_wait_500ms_the_excess_is_rejected_at_once_with_retry_after() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config("500ms"), llm.port);
    let results = burst(&envoy, 30);
    let ok = results.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(ok, 15, "10 at once + 5 that fit in 500 ms: {results:?}");
    for (status, t, retry) in &results {
        if *status == 429 {
            assert!(*t < Duration::from_millis(400), "rejected quickly, not after holding: {t:?}");
            assert!(retry.as_deref().is_some_and(|r| r.parse::<u64>().unwrap() >= 1), "Retry-After");
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
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(queue_gauge(&envoy), 5.0);
    conns.clear();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(queue_gauge(&envoy), 0.0, "aborted clients leave the queue");
    // Their places were given back: the next request waits about 1 s, not 6 s.
    let start = Instant::now();
    let r = Request::get(&envoy.url("/")).header("x-api-key", "k").send().unwrap();
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < Duration::from_millis(1200), "waited {:?}", start.elapsed());
}
