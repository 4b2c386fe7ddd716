//! tollgate-store's proxy API against a real Redis (and a real Redis Cluster), over real HTTP.
//! Needs `cargo build -p tollgate-store` and redis-server/redis-cli (`make setup`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tollgate_e2e::http::Request;
use tollgate_e2e::redis::{Cluster, Redis};
use tollgate_e2e::store::{self, Store, ADMIN_TOKEN, PROXY_TOKEN};

const ALGORITHMS: [&str; 5] = ["token_bucket", "leaky_bucket", "fixed_window", "sliding_window", "gcra"];
const DAY_MS: u64 = 86_400_000;

/// Load tests check exactness, not latency: a generous Redis timeout keeps a loaded CI machine
/// (2 cores, other suites running) from turning a scheduling stall into a 503.
const LOAD: &[&str] = &["--redis-timeout-ms", "2000"];

/// A counter's fields.
fn counter(rule: &str, key: &str, algorithm: &str, limit: u64, window_ms: u64) -> Value {
    json!({"rule": rule, "key": key, "algorithm": algorithm, "limit": limit, "window_ms": window_ms})
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

/// A 16-hex-digit key hash made from a number.
fn key(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

/// Run `n` calls of `f(i)` on `threads` threads.
fn parallel<R: Send>(n: usize, threads: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n {
                            return out;
                        }
                        out.push(f(i));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// Fixed windows of a day are aligned to 00:00 UTC: do not start a test in its last seconds.
fn away_from_midnight() {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 % DAY_MS;
    if ms > DAY_MS - 20_000 {
        std::thread::sleep(Duration::from_millis(DAY_MS - ms + 1000));
    }
}

fn ok(r: tollgate_e2e::http::Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn check(s: &Store, checks: Vec<Value>) -> Value {
    ok(s.post("/v1/check", &json!({ "checks": checks })))
}

/// `remaining` of a counter, peeked (cost 0 charges nothing).
fn peek(s: &Store, c: &Value) -> u64 {
    check(s, vec![with(c.clone(), "cost", json!(0))])["results"][0]["remaining"].as_u64().unwrap()
}

fn lease(s: &Store, c: &Value, want: u64, ret: u64) -> Value {
    let item = with(with(c.clone(), "want", json!(want)), "return", json!(ret));
    ok(s.post("/v1/lease", &json!({ "leases": [item] })))["leases"][0].clone()
}

fn adjust(s: &Store, c: &Value, delta: i64) {
    let r = ok(s.post("/v1/adjust", &json!({"adjustments": [with(c.clone(), "delta", json!(delta))]})));
    assert_eq!(r, json!({"ok": true}));
}

/// 400 requests of cost 1 from 16 threads, alternating between `a` and `b`, on a counter of
/// limit 100: exactly 100 are admitted.
fn assert_exact(a: &Store, b: &Store, c: &Value) {
    let body = json!({ "checks": [c] });
    let verdicts = parallel(400, 16, |i| {
        let s = if i % 2 == 0 { a } else { b };
        let r = s.post("/v1/check", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["allowed"].as_bool().unwrap()
    });
    let admitted = verdicts.iter().filter(|a| **a).count();
    assert_eq!(admitted, 100, "{c}: {admitted} of 400 admitted with limit 100");
}

#[test]
fn check_is_exact_under_parallel_load_from_two_replicas() {
    away_from_midnight();
    let redis = Redis::start();
    let a = Store::start(&redis.url(), LOAD);
    let b = Store::start(&redis.url(), LOAD);
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        assert_exact(&a, &b, &counter("exact", &key(i as u64), alg, 100, DAY_MS));
    }
    let metrics = a.get("/metrics").text();
    assert!(metrics.contains("tollgate_store_requests_total{endpoint=\"/v1/check\",status=\"200\"}"), "{metrics}");
    assert!(tollgate_e2e::prometheus_value(&metrics, "tollgate_store_redis_latency_seconds_count").unwrap() > 0.0);
    assert!(metrics.contains("tollgate_store_cas_retries_total "), "{metrics}");
}

#[test]
fn a_denied_batch_charges_nothing() {
    away_from_midnight();
    let redis = Redis::start();
    let s = Store::start(&redis.url(), LOAD);
    let wide = counter("wide", &key(1), "fixed_window", 1000, DAY_MS);
    let narrow = counter("narrow", &key(2), "gcra", 1, DAY_MS);
    // Both allow: both are charged.
    let r = check(&s, vec![with(wide.clone(), "cost", json!(5)), narrow.clone()]);
    assert_eq!(r["allowed"], true);
    assert_eq!(r["denied_by"], Value::Null);
    assert_eq!(r["results"][0]["remaining"], 995);
    assert_eq!(r["results"][1]["remaining"], 0);
    // The second denies: the first is not charged.
    let r = check(&s, vec![with(wide.clone(), "cost", json!(5)), narrow.clone()]);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["denied_by"], 1);
    assert_eq!(r["results"][1]["allowed"], false);
    assert!(r["results"][1]["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(peek(&s, &wide), 995);

    // Under parallel load, charges made before another request took the last unit are
    // refunded: 200 batches of (wide, limit-50 counter) admit exactly 50 and charge wide 50.
    let b = Store::start(&redis.url(), LOAD);
    let wide = counter("wide", &key(3), "fixed_window", 1000, DAY_MS);
    let fifty = counter("fifty", &key(4), "token_bucket", 50, DAY_MS);
    let body = json!({"checks": [wide.clone(), fifty.clone()]});
    let verdicts = parallel(200, 16, |i| {
        let st = if i % 2 == 0 { &s } else { &b };
        ok(st.post("/v1/check", &body))["allowed"].as_bool().unwrap()
    });
    assert_eq!(verdicts.iter().filter(|a| **a).count(), 50);
    assert_eq!(peek(&s, &wide), 950);
    assert_eq!(peek(&s, &fifty), 0);
}

#[test]
fn leases_never_exceed_the_limit_and_returns_refund() {
    away_from_midnight();
    let redis = Redis::start();
    let a = Store::start(&redis.url(), LOAD);
    let b = Store::start(&redis.url(), LOAD);
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        let c = counter("leased", &key(100 + i as u64), alg, 100, DAY_MS);
        // 64 proxies lease 1..=13 units each and give half of it back right away.
        let outcomes = parallel(64, 16, |j| {
            let s = if j % 2 == 0 { &a } else { &b };
            let want = 1 + (j as u64 % 13);
            let g = lease(s, &c, want, 0)["granted"].as_u64().unwrap();
            assert!(g <= want);
            let back = g / 2;
            if back > 0 {
                assert_eq!(lease(s, &c, 0, back)["granted"], 0);
            }
            (g, back)
        });
        let granted: u64 = outcomes.iter().map(|o| o.0).sum();
        let returned: u64 = outcomes.iter().map(|o| o.1).sum();
        assert!(granted - returned <= 100, "{alg}: {granted} granted, {returned} returned");
        // What is left is exactly the limit minus what is still out.
        let rest = lease(&a, &c, 1000, 0);
        assert_eq!(rest["granted"].as_u64().unwrap(), 100 - (granted - returned), "{alg}");
        assert_eq!(rest["remaining"], 0);
        // Nothing left: nothing granted, and retry_after says when one unit comes back.
        let none = lease(&b, &c, 5, 0);
        assert_eq!(none["granted"], 0, "{alg}");
        assert!(none["retry_after_ms"].as_u64().unwrap() > 0, "{alg}: {none}");
        // Returning 30 makes exactly 30 available again, in the same call.
        let back = lease(&a, &c, 50, 30);
        assert_eq!(back["granted"], 30, "{alg}");
    }
}

#[test]
fn adjust_charges_and_refunds() {
    away_from_midnight();
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    for (i, alg) in ["fixed_window", "token_bucket", "gcra"].iter().enumerate() {
        let c = counter("tokens", &key(200 + i as u64), alg, 10, DAY_MS);
        assert_eq!(check(&s, vec![c.clone()])["results"][0]["remaining"], 9);
        adjust(&s, &c, 5);
        assert_eq!(peek(&s, &c), 4, "{alg}");
        adjust(&s, &c, -3);
        assert_eq!(peek(&s, &c), 7, "{alg}");
        adjust(&s, &c, 20); // debt beyond the capacity
        assert_eq!(peek(&s, &c), 0, "{alg}");
        assert_eq!(check(&s, vec![c.clone()])["allowed"], false);
        adjust(&s, &c, -1000); // never above a fresh counter
        assert_eq!(peek(&s, &c), 10, "{alg}");
        adjust(&s, &c, 0);
        assert_eq!(peek(&s, &c), 10, "{alg}");
    }
}

#[test]
fn wrong_or_missing_token_is_401_and_changes_nothing() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let c = counter("auth", &key(300), "fixed_window", 10, DAY_MS);
    let bodies = [
        ("/v1/check", json!({"checks": [with(c.clone(), "cost", json!(3))]})),
        ("/v1/lease", json!({"leases": [with(c.clone(), "want", json!(4))]})),
        ("/v1/adjust", json!({"adjustments": [with(c.clone(), "delta", json!(5))]})),
    ];
    for (path, body) in &bodies {
        for auth in [
            None,
            Some("Bearer nope".to_string()),
            Some(format!("Bearer {ADMIN_TOKEN}")),
            Some(PROXY_TOKEN.to_string()),
        ] {
            let mut req = Request::post(&s.url(path), &body.to_string());
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let r = req.send().unwrap();
            assert_eq!(r.status, 401, "{path} with {auth:?}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    assert_eq!(peek(&s, &c), 10);
    assert!(redis.keys().is_empty(), "{:?}", redis.keys());
}

/// POST a body of 1 MiB + 1 byte: with a Content-Length (announced, nothing sent) or chunked
/// (sent until the store answers).
fn oversized(s: &Store, path: &str, content_length: Option<usize>) -> tollgate_e2e::http::Response {
    use std::io::{BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let length = match content_length {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_string(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {PROXY_TOKEN}\r\ncontent-type: application/json\r\n{length}\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    if content_length.is_none() {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
        for _ in 0..17 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
    }
    tollgate_e2e::http::read_response(&mut BufReader::new(stream)).unwrap()
}

#[test]
fn invalid_requests_are_400_naming_the_field() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let c = counter("v", &key(400), "token_bucket", 10, 1000);
    let err = |path: &str, body: &str| {
        let r =
            Request::post(&s.url(path), body).header("authorization", &format!("Bearer {PROXY_TOKEN}")).send().unwrap();
        (
            r.status,
            r.json()["error"]["message"].as_str().unwrap_or_default().to_string(),
            r.json()["error"]["code"].clone(),
        )
    };
    let checks = |c: Value| json!({"checks": [c]}).to_string();
    let cases = [
        (checks(with(c.clone(), "window_ms", json!(0))), "checks[0].window_ms: must be positive"),
        (checks(with(c.clone(), "limit", json!("10"))), "checks[0].limit: must be a positive integer"),
        (checks(with(c.clone(), "burst", json!(0))), "checks[0].burst: must be positive"),
        (
            checks(with(c.clone(), "key", json!("sk-live-raw-key"))),
            "checks[0].key: must be 16 hexadecimal digits (the key hash)",
        ),
        (checks(with(c.clone(), "cost", json!(-2))), "checks[0].cost: must be a non-negative integer"),
        (
            json!({"checks": [c.clone(), with(c.clone(), "rule", Value::Null)]}).to_string(),
            "checks[1].rule: is required",
        ),
        ("{\"checks\": 5}".to_string(), "checks: must be an array"),
        ("[]".to_string(), "body: must be a JSON object"),
    ];
    for (body, message) in &cases {
        let (status, got, code) = err("/v1/check", body);
        assert_eq!((status, got.as_str()), (400, *message), "{body}");
        assert_eq!(code, "invalid_request");
    }
    let (status, got, _) = err("/v1/check", &checks(with(c.clone(), "algorithm", json!("lru"))));
    assert_eq!(status, 400);
    assert!(got.starts_with("checks[0].algorithm: \"lru\": must be one of token_bucket"), "{got}");
    let (status, got, _) = err("/v1/check", "{not json");
    assert_eq!(status, 400);
    assert!(got.starts_with("body: invalid JSON"), "{got}");
    let (status, got, _) = err("/v1/lease", &json!({"leases": [with(c.clone(), "want", json!(-1))]}).to_string());
    assert_eq!((status, got.as_str()), (400, "leases[0].want: must be a non-negative integer"));
    let (status, got, _) =
        err("/v1/adjust", &json!({"adjustments": [with(c.clone(), "delta", json!(1.5))]}).to_string());
    assert_eq!((status, got.as_str()), (400, "adjustments[0].delta: must be an integer"));
    let many: Vec<Value> = (0..257).map(|_| c.clone()).collect();
    let (status, got, _) = err("/v1/check", &json!({ "checks": many }).to_string());
    assert_eq!((status, got.as_str()), (400, "checks: at most 256 items per call, got 257"));
    // 256 is fine.
    let many: Vec<Value> = (0..256).map(|i| counter("v", &key(1000 + i), "fixed_window", 10, 1000)).collect();
    assert_eq!(check(&s, many)["results"].as_array().unwrap().len(), 256);
    // Bodies over 1 MiB: 413 (as soon as the length is known; the rest is not read).
    let r = oversized(&s, "/v1/check", Some(1024 * 1024 + 1));
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (413, json!("payload_too_large")));
    let r = oversized(&s, "/v1/check", None);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (413, json!("payload_too_large")));
    // Unknown paths and methods: JSON errors too.
    let r = s.get("/v1/nope");
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (404, json!("not_found")));
    let r = s.get("/v1/check");
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (405, json!("method_not_allowed")));
    // Counted by route: refusals under their route, unknown paths and methods under `other`.
    let metrics = s.get("/metrics").text();
    for (endpoint, status) in [("/v1/check", 400), ("/v1/lease", 400), ("other", 404), ("other", 405)] {
        let series = format!("tollgate_store_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}");
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    // The test clock header is ignored without --test-clock.
    let r = s.post_at("/v1/check", &json!({"checks": [c]}), 5);
    assert_eq!(r.status, 200);
    assert!(redis.keys().iter().all(|k| k.starts_with("tollgate:{")), "{:?}", redis.keys());
}

#[test]
fn redis_outage_is_503_quickly_then_recovers() {
    let mut redis = Redis::start();
    let s = Store::start(&redis.url(), &["--redis-timeout-ms", "200"]);
    let c = counter("outage", &key(500), "token_bucket", 100, DAY_MS);
    let body = json!({ "checks": [c] });
    assert_eq!(ok(s.post("/v1/check", &body))["allowed"], true);
    assert_eq!(s.get("/healthz").status, 200);
    let assert_unavailable = |what: &str| {
        for path in ["/v1/check", "/healthz"] {
            let t = Instant::now();
            let r = if path == "/healthz" { s.get(path) } else { s.post(path, &body) };
            let took = t.elapsed();
            assert_eq!(r.status, 503, "{what} {path}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "store_unavailable", "{}", r.text());
            // The 200 ms Redis timeout answers, with ample slack for a busy machine (not a hang).
            assert!(took < Duration::from_secs(3), "{what} {path}: 503 took {took:?}");
        }
    };
    // Frozen Redis (connections open, no answers): the timeout answers.
    redis.pause();
    assert_unavailable("paused");
    redis.resume();
    let wait_ok = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = s.post("/v1/check", &body);
            if r.status == 200 && s.get("/healthz").status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: still {} after 10 s: {}", r.status, r.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_ok("after resume");
    // Redis down (connection refused).
    redis.stop();
    assert_unavailable("stopped");
    assert_unavailable("stopped, again");
    redis.restart();
    wait_ok("after restart");
    let metrics = s.get("/metrics").text();
    let timeouts = tollgate_e2e::prometheus_value(&metrics, "tollgate_store_redis_timeouts_total").unwrap();
    let errors = tollgate_e2e::prometheus_value(&metrics, "tollgate_store_redis_errors_total").unwrap();
    assert!(timeouts >= 1.0 && errors >= 1.0, "{metrics}");
    assert!(metrics.contains("tollgate_store_requests_total{endpoint=\"/v1/check\",status=\"503\"}"), "{metrics}");
}

#[test]
fn redis_cluster_is_exact_too() {
    away_from_midnight();
    let cluster = Cluster::start(3);
    let a = Store::start(&cluster.url(), LOAD);
    // The other replica names the seed nodes with several --redis flags.
    let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let mut flags: Vec<&str> = Vec::new();
    for n in &nodes {
        flags.extend(["--redis", n.as_str()]);
    }
    flags.extend(LOAD);
    let b = Store::start_with(&flags);
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        assert_exact(&a, &b, &counter("exact", &key(600 + i as u64), alg, 100, DAY_MS));
    }
    // Keys of many key hashes spread over the nodes; every key lives in its hash tag's slot.
    let many: Vec<Value> = (0..30).map(|i| counter("spread", &key(700 + i), "fixed_window", 10, DAY_MS)).collect();
    assert_eq!(check(&a, many)["allowed"], true);
    let keys: Vec<(u16, String)> =
        cluster.keys().into_iter().filter(|(_, k)| counters(vec![k.clone()]).len() == 1).collect();
    let nodes_used: std::collections::BTreeSet<u16> = keys.iter().map(|(p, _)| *p).collect();
    assert!(nodes_used.len() >= 2, "{keys:?}");
    assert_eq!(keys.len(), 35);
    assert_eq!(a.get("/healthz").status, 200);
    assert_eq!(b.get("/healthz").status, 200);
}

/// The counters among Redis keys: not the admin plane's per-key rule index
/// (`tollgate:{KEYHASH}:#rules`) nor its statistics (`tollgate:{stats}:…`, flushed every second).
fn counters(keys: Vec<String>) -> Vec<String> {
    keys.into_iter().filter(|k| !k.ends_with(":#rules") && !k.starts_with("tollgate:{stats}:")).collect()
}

/// `tollgate:{<16 hex>}:<rule>` and nothing else.
fn assert_key_layout(k: &str) {
    let rest = k.strip_prefix("tollgate:{").unwrap_or_else(|| panic!("{k}"));
    let (hash, rule) = rest.split_once("}:").unwrap_or_else(|| panic!("{k}"));
    assert!(hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{k}");
    assert!(!rule.is_empty() && rule.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{k}");
}

#[test]
fn every_key_has_a_ttl_and_only_hashes_and_rule_names() {
    away_from_midnight();
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let mut expected_max_ttl = Vec::new();
    for (i, alg) in ALGORITHMS.iter().enumerate() {
        let c = counter(&format!("ttl.{alg}"), &key(800 + i as u64), alg, 60, 60_000);
        check(&s, vec![c.clone()]);
        // Worst case: the whole window (+ one more for sliding_window) + 1 s.
        let max = if *alg == "sliding_window" { 121_000 } else { 61_000 };
        expected_max_ttl.push((format!("tollgate:{{{}}}:ttl.{alg}", key(800 + i as u64)), max));
        let l = counter(&format!("lease.{alg}"), &key(810 + i as u64), alg, 60, 60_000);
        lease(&s, &l, 10, 0);
        let d = counter(&format!("debt.{alg}"), &key(820 + i as u64), alg, 60, 60_000);
        adjust(&s, &d, 30);
    }
    // Mixed case hex is stored lower-case.
    check(&s, vec![counter("upper", "00000000DEADBEEF", "gcra", 5, 1000)]);
    let all = redis.keys();
    // Each key hash's rule index lives at least as long as its counters.
    for index in all.iter().filter(|k| k.ends_with(":#rules")) {
        assert!(redis.cmd(&["PTTL", index]).as_int() > 0, "{index}");
    }
    let keys = counters(all);
    assert_eq!(keys.len(), 16, "{keys:?}");
    for k in &keys {
        assert_key_layout(k);
        let ttl = redis.cmd(&["PTTL", k]).as_int();
        assert!(ttl > 0, "{k}: PTTL {ttl}");
        // The 24-byte state, then the quota it was written under.
        let value = redis.cmd(&["GET", k]).as_bytes().unwrap();
        let alg = k.rsplit('.').next().unwrap();
        let quota = if k.ends_with(":upper") { "gcra 5 1000 5".to_string() } else { format!("{alg} 60 60000 60") };
        assert_eq!(String::from_utf8_lossy(&value[24..]), quota, "{k}");
    }
    for (k, max) in &expected_max_ttl {
        let ttl = redis.cmd(&["PTTL", k]).as_int();
        assert!(ttl > 0 && ttl <= *max, "{k}: PTTL {ttl} > {max}");
    }
    // A short counter's key disappears on its own once it is idle.
    let short = counter("short", &key(900), "token_bucket", 10, 100);
    check(&s, vec![short]);
    let k = format!("tollgate:{{{}}}:short", key(900));
    let ttl = redis.cmd(&["PTTL", &k]).as_int();
    assert!(ttl > 0 && ttl <= 1_010, "{k}: PTTL {ttl}");
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(redis.cmd(&["EXISTS", &k]).as_int(), 0);
}

#[test]
fn openapi_document_lists_every_path() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let r = s.get("/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let served = r.json();
    let file: Value = serde_json::from_str(&tollgate_e2e::read("store/openapi.json")).unwrap();
    assert_eq!(served, file, "served /openapi.json differs from store/openapi.json");
    assert!(served["openapi"].as_str().unwrap().starts_with("3.0"));
    let paths = served["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/check", "post"),
        ("/v1/lease", "post"),
        ("/v1/adjust", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{path} {method} missing");
        assert!(op["responses"]["200"].is_object(), "{path}: no 200 response");
    }
    for path in ["/v1/check", "/v1/lease", "/v1/adjust"] {
        for status in ["400", "401", "413", "503"] {
            assert!(paths[path]["post"]["responses"][status].is_object(), "{path}: no {status} response");
        }
    }
    assert!(paths["/healthz"]["get"]["responses"]["503"].is_object());
    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&served, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(served.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
}

#[test]
fn cli_refuses_bad_tokens_and_stops_on_sigterm() {
    let t = Duration::from_secs(10);
    let (code, _, err) = store::run_cli(&["--proxy-token", "same", "--admin-token", "same"], &[], t);
    assert_eq!(code, Some(2));
    assert_eq!(err.trim(), "tollgate-store: the proxy token and the admin token must differ");
    let (code, _, err) = store::run_cli(&["--admin-token", "a"], &[], t);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("proxy token is required"), "{err}");
    let (code, _, err) = store::run_cli(&[], &[("TOLLGATE_PROXY_TOKEN", "p"), ("TOLLGATE_ADMIN_TOKEN", "p")], t);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, _) = store::run_cli(&["--help"], &[], t);
    assert_eq!(code, Some(0));
    assert!(out.contains("--redis-timeout-ms"));
    // A port in use: a clear error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = store::run_cli(&["--listen", &addr, "--proxy-token", "p", "--admin-token", "a"], &[], t);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    // SIGTERM: a clean exit.
    let redis = Redis::start();
    let mut s = Store::start(&redis.url(), &[]);
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.terminate(Duration::from_secs(5)), Some(0), "{}", s.stderr());
}

/// A counter's state only means something under the quota it was written with (GCRA scales time
/// by the limit; windows are numbered by their length). Checked under another quota (a reload,
/// a tier change, a per-key limit or a grant), it starts afresh, like the filter's local
/// counters, instead of being misread: before, GCRA 10/1m used once then checked at 5/1m asked
/// for a wait of decades, and windows of 1h checked as 1d waited "never".
#[test]
fn a_counter_checked_under_another_quota_starts_afresh() {
    away_from_midnight();
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let cases = [
        ("gcra", (10, 60_000), 1, (5, 60_000)),
        ("gcra", (10, 60_000), 10, (100, 60_000)),
        ("fixed_window", (2, 3_600_000), 2, (2, DAY_MS)),
        ("sliding_window", (2, 3_600_000), 2, (2, DAY_MS)),
        ("token_bucket", (3, 60_000), 3, (30, 3_600_000)),
        ("leaky_bucket", (3, 60_000), 3, (1, 1_000)),
    ];
    for (i, (alg, (limit1, window1), used, (limit2, window2))) in cases.into_iter().enumerate() {
        let rule = format!("q.{alg}.{i}");
        let before = counter(&rule, &key(1_000 + i as u64), alg, limit1, window1);
        for _ in 0..used {
            assert_eq!(check(&s, vec![before.clone()])["allowed"], json!(true), "{before}");
        }
        let after = counter(&rule, &key(1_000 + i as u64), alg, limit2, window2);
        let r = check(&s, vec![after.clone()]);
        assert_eq!(r["allowed"], json!(true), "{alg}: {used} used at {limit1}/{window1}ms, then {after}: {r}");
        assert_eq!(r["results"][0]["remaining"], json!(limit2 - 1), "{alg}: fresh under the new quota: {r}");
        // The counter now holds the new quota and counts under it.
        let value = redis.cmd(&["GET", &format!("tollgate:{{{}}}:{rule}", key(1_000 + i as u64))]).as_bytes().unwrap();
        assert_eq!(String::from_utf8_lossy(&value[24..]), format!("{alg} {limit2} {window2} {limit2}"));
        assert_eq!(peek(&s, &after), limit2 - 1, "{alg}");
    }
}
