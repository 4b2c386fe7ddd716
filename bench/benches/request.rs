//! One request through `Limiter::evaluate` (match, key, tier, engine on an in-memory store,
//! reply headers), for the configurations `make bench` measures in Envoy: what Tollgate's own
//! code costs per request, natively, next to the host calls (docs/benchmarks.md).
//!
//! Run: `cargo bench -p tollgate-bench --bench request -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use tollgate_core::config::Config;
use tollgate_core::engine::shared_store::MemoryStore;
use tollgate_core::limiter::Limiter;
use tollgate_core::overrides::Overrides;
use tollgate_core::request::Request;

const HUGE: u64 = 1_000_000_000_000;
const NOW: u64 = 1_714_568_400_000_000_000;

fn one_rule() -> serde_json::Value {
    json!({"rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "token_bucket", "limit": HUGE, "window": "1s"}]})
}

/// The "realistic" configuration of `make bench` (per-key with tiers, per-IP, global).
fn realistic() -> serde_json::Value {
    serde_json::from_str(include_str!("../configs/realistic.json")).expect("bench/configs/realistic.json")
}

fn request(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    let headers: Vec<(String, String)> = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/"),
        (":method", "GET"),
        (":scheme", "http"),
        ("authorization", "Bearer sk-bench-042"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5c0ad6b2-5d1e-4a55-9a0c-5f3e2b8a9c11"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, config, no_headers) in
        [("1 rule", one_rule(), true), ("1 rule + headers", one_rule(), false), ("realistic", realistic(), false)]
    {
        let mut config = config;
        if no_headers {
            config["response"] = json!({"headers": []});
        }
        let config = Config::parse(config.to_string().as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let limiter = Limiter::new(config);
        let store = MemoryStore::new();
        limiter.prepare(&store).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let overrides = Overrides::default();
        let mut now = NOW;
        group.bench_function(name, |b| {
            b.iter(|| {
                now += 1_000;
                let req = Request {
                    method: ":method",
                    path: "/",
                    headers: &headers,
                    peer: Some("127.0.0.1:53422"),
                    body: None,
                };
                black_box(limiter.evaluate(&store, black_box(&req), now, true, &overrides))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request);
criterion_main!(benches);
