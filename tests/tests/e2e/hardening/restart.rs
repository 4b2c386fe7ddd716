//! Hardening, restarts: a static file config cannot be reloaded while traffic flows, so this is
//! what a config change costs with a static config: Envoy restarted with a changed plugin
//! configuration starts with fresh counters, because the counters live in Envoy's shared data,
//! which belongs to one Envoy process (a key limited before the restart is admitted again).
//! docs/hardening.md describes reloads through LDS/ECDS, which keep the process.

use serde_json::json;
use tollgate_e2e::http::Request;
use tollgate_e2e::{Envoy, MockLlm};

fn config(limit: u64) -> String {
    json!({"response": {"headers": ["x-ratelimit"]},
           "rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "fixed_window", "limit": limit, "window": "1h"}]})
    .to_string()
}

fn statuses(envoy: &Envoy, key: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| Request::get(&envoy.url("/x")).header("x-api-key", key).send().unwrap().status).collect()
}

#[test]
fn counters_start_fresh_when_envoy_restarts_with_a_changed_config() {
    let llm = MockLlm::start();
    let first = Envoy::standalone(&config(2), llm.port);
    assert_eq!(statuses(&first, "sk-a", 3), vec![200, 200, 429]);
    drop(first);
    // Same rule name and algorithm, a higher limit: the new process knows nothing of sk-a.
    let second = Envoy::standalone(&config(3), llm.port);
    let r = Request::get(&second.url("/x")).header("x-api-key", "sk-a").send().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"), "a fresh counter under the new limit");
    assert_eq!(statuses(&second, "sk-a", 3), vec![200, 200, 429]);
    // The same config again: still a new process, still fresh counters.
    drop(second);
    let third = Envoy::standalone(&config(3), llm.port);
    assert_eq!(statuses(&third, "sk-a", 4), vec![200, 200, 200, 429]);
}
