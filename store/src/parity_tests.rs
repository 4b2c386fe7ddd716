//! Parity: random arrival sequences through the filter's pure algorithms in-process and
//! through the store's HTTP API (this crate's server, started in-process on a free port with
//! the test clock on, so it is always the code under test) against a real Redis give the
//! same decisions, and Redis ends up holding exactly the reference state.
//!
//! Needs redis-server (`make setup`). `TOLLGATE_PARITY_SEED` and `TOLLGATE_PARITY_CASES`
//! (per algorithm) widen the search locally.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate_core::engine::algorithm::{Algorithm, Decision, Nanos, Quota, State};
use tollgate_e2e::http::Request;
use tollgate_e2e::redis::Redis;

use crate::app::App;
use crate::backend::Backend;
use crate::config::{RedisTarget, TlsFiles};
use crate::http::TEST_CLOCK_HEADER;
use crate::metrics::Metrics;
use crate::server::router;

const TOKEN: &str = "parity-proxy-token";

/// The store's HTTP server on a free port of 127.0.0.1, served by `runtime` until it drops.
struct Store {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl Store {
    fn start(redis_url: &str) -> Store {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let metrics = Arc::new(Metrics::default());
        let target = RedisTarget::Single(redis_url.to_string());
        let backend = Backend::new(&target, &TlsFiles::default(), Duration::from_millis(500), metrics.clone()).unwrap();
        let app = Arc::new(App::new(backend, metrics, TOKEN.into(), "parity-admin-token".into(), true));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move { axum::serve(listener, router(app)).await });
        Store { port, _runtime: runtime }
    }

    fn post_at(&self, path: &str, body: &Value, now: Nanos) -> tollgate_e2e::http::Response {
        Request::post(&format!("http://127.0.0.1:{}{path}", self.port), &body.to_string())
            .header("authorization", &format!("Bearer {TOKEN}"))
            .header(TEST_CLOCK_HEADER, &now.to_string())
            .send()
            .unwrap()
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The reference model of one counter.
struct Model {
    rule: String,
    key: String,
    algorithm: Algorithm,
    quota: Quota,
    burst: Option<u64>,
    state: State,
}

impl Model {
    fn json(&self) -> Value {
        let mut v = json!({
            "rule": self.rule, "key": self.key, "algorithm": self.algorithm.name(),
            "limit": self.quota.limit, "window_ms": self.quota.window_ns / 1_000_000,
        });
        if let Some(b) = self.burst {
            v["burst"] = json!(b);
        }
        v
    }

    fn with(&self, field: &str, value: Value) -> Value {
        let mut v = self.json();
        v[field] = value;
        v
    }

    fn check(&self, now: Nanos, cost: u64) -> (Decision, State) {
        self.algorithm.check(self.state, now, cost, &self.quota)
    }
}

fn ms(ns: u64) -> u64 {
    ns.div_ceil(1_000_000)
}

fn expect_decision(got: &Value, d: &Decision, ctx: &str) {
    let want = json!({
        "allowed": d.allowed, "remaining": d.remaining,
        "reset_after_ms": ms(d.reset_after_ns), "retry_after_ms": ms(d.retry_after_ns),
    });
    assert_eq!(got, &want, "{ctx}");
}

fn post(store: &Store, path: &str, body: Value, now: Nanos) -> Value {
    let r = store.post_at(path, &body, now);
    assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
    r.json()
}

/// Redis holds exactly the model's state (or nothing, when the model is fresh).
fn expect_stored(redis: &Redis, m: &Model, ctx: &str) {
    let key = format!("tollgate:{{{}}}:{}", m.key, m.rule);
    let stored = redis.cmd(&["GET", &key]).as_bytes();
    match stored {
        Some(bytes) => assert_eq!(State::decode(&bytes), m.state, "{ctx}: Redis state differs"),
        None => assert_eq!(m.state, State::default(), "{ctx}: key missing in Redis"),
    }
}

#[test]
fn store_decisions_equal_the_filter_algorithms() {
    let seed = std::env::var("TOLLGATE_PARITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7011_6a7e_u64);
    let cases = std::env::var("TOLLGATE_PARITY_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(8usize);
    let redis = Redis::start();
    let store = Store::start(&redis.url());
    let mut rng = Rng(seed | 1);
    let mut n = 0u64;
    for case in 0..cases * Algorithm::ALL.len() {
        let algorithm = Algorithm::ALL[case % Algorithm::ALL.len()];
        let mut counter = |rng: &mut Rng, rule: &str| {
            n += 1;
            let limit = rng.range(1, 12);
            let window_ms = [100, 1_000, 60_000, 3_600_000][rng.range(0, 3) as usize];
            let burst = if rng.range(0, 1) == 0 { None } else { Some(rng.range(1, 20)) };
            Model {
                rule: format!("{rule}.{case}"),
                key: format!("{:016x}", rng.next() ^ n),
                algorithm,
                quota: Quota { limit, window_ns: window_ms * 1_000_000, burst: burst.unwrap_or(limit) },
                burst,
                state: State::default(),
            }
        };
        let mut a = counter(&mut rng, "parity");
        let mut b = counter(&mut rng, "other");
        // A realistic epoch time, anywhere in a window.
        let mut now: Nanos = 1_760_000_000_000_000_000 + rng.range(0, a.quota.window_ns * 3);
        for step in 0..40 {
            let w = a.quota.window_ns;
            now = match rng.range(0, 9) {
                0 => now,
                1 => now.saturating_sub(rng.range(0, 5_000_000)), // a clock slightly behind
                2..=6 => now + rng.range(0, w / a.quota.limit.max(1)),
                7 | 8 => now + rng.range(0, w),
                _ => now + rng.range(0, 3 * w),
            };
            let ctx =
                format!("seed {seed} case {case} ({}) step {step} now {now} quota {:?}", algorithm.name(), a.quota);
            match rng.range(0, 9) {
                0..=4 => {
                    let cost =
                        if rng.range(0, 15) == 0 { a.quota.burst.max(a.quota.limit) + 1 } else { rng.range(0, 3) };
                    let r = post(&store, "/v1/check", json!({"checks": [a.with("cost", json!(cost))]}), now);
                    let (d, s) = a.check(now, cost);
                    if d.allowed && cost > 0 {
                        a.state = s;
                    }
                    assert_eq!(r["allowed"], d.allowed, "{ctx}: {r}");
                    assert_eq!(r["denied_by"], if d.allowed { Value::Null } else { json!(0) }, "{ctx}");
                    expect_decision(&r["results"][0], &d, &format!("{ctx}: check cost {cost}"));
                }
                5 | 6 => {
                    let want = rng.range(0, a.quota.limit + 2);
                    let ret = if rng.range(0, 2) == 0 { rng.range(1, 3) } else { 0 };
                    let item = a.with("want", json!(want));
                    let mut item = item;
                    item["return"] = json!(ret);
                    let r = post(&store, "/v1/lease", json!({"leases": [item]}), now);
                    // Reference: refund, then the largest admitted cost up to `want` (linear scan).
                    let refunded =
                        if ret > 0 { algorithm.adjust(a.state, now, -(ret as i64), &a.quota) } else { a.state };
                    let top = want.min(algorithm.capacity(&a.quota));
                    let granted =
                        (1..=top).rev().find(|&c| algorithm.check(refunded, now, c, &a.quota).0.allowed).unwrap_or(0);
                    let (mut d, charged) = algorithm.check(refunded, now, granted, &a.quota);
                    if granted == 0 && want > 0 {
                        d.retry_after_ns = algorithm.check(refunded, now, 1, &a.quota).0.retry_after_ns;
                    }
                    a.state = if granted > 0 { charged } else { refunded };
                    let got = &r["leases"][0];
                    assert_eq!(got["granted"], granted, "{ctx}: lease want {want} return {ret}: {got}");
                    let mut expected = json!({
                        "granted": granted, "remaining": d.remaining,
                        "reset_after_ms": ms(d.reset_after_ns), "retry_after_ms": ms(d.retry_after_ns),
                    });
                    if granted > 0 {
                        expected["retry_after_ms"] = json!(0);
                    }
                    assert_eq!(got, &expected, "{ctx}: lease want {want} return {ret}");
                }
                7 => {
                    let delta = rng.range(0, 10) as i64 - 5;
                    let r = post(&store, "/v1/adjust", json!({"adjustments": [a.with("delta", json!(delta))]}), now);
                    assert_eq!(r, json!({"ok": true}), "{ctx}");
                    if delta != 0 {
                        a.state = algorithm.adjust(a.state, now, delta, &a.quota);
                    }
                }
                _ => {
                    // A batch of two counters: all or nothing.
                    let (ca, cb) = (rng.range(0, 2), rng.range(0, 2));
                    let r = post(
                        &store,
                        "/v1/check",
                        json!({"checks": [a.with("cost", json!(ca)), b.with("cost", json!(cb))]}),
                        now,
                    );
                    let (da, sa) = a.check(now, ca);
                    let (db, sb) = b.check(now, cb);
                    let denied_by = if !da.allowed {
                        Some(0)
                    } else if !db.allowed {
                        Some(1)
                    } else {
                        None
                    };
                    if denied_by.is_none() {
                        if ca > 0 {
                            a.state = sa;
                        }
                        if cb > 0 {
                            b.state = sb;
                        }
                    }
                    assert_eq!(r["allowed"], denied_by.is_none(), "{ctx}: {r}");
                    assert_eq!(r["denied_by"], json!(denied_by), "{ctx}: {r}");
                    expect_decision(&r["results"][0], &da, &format!("{ctx}: batch[0] cost {ca}"));
                    expect_decision(&r["results"][1], &db, &format!("{ctx}: batch[1] cost {cb}"));
                }
            }
            expect_stored(&redis, &a, &ctx);
            expect_stored(&redis, &b, &ctx);
        }
    }
}
