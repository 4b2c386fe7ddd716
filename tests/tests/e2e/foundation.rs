//! Foundation: the filter loads in the real Envoy, passes traffic, limits per key, and
//! rejects malformed configurations at load time with the field named.

use serde_json::json;
use tollgate_e2e::http::Request;
use tollgate_e2e::{Envoy, EnvoyOptions, MockLlm};

#[test]
fn request_passes_through_to_the_upstream() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone("{}", llm.port);
    let r = Request::get(&envoy.url("/anything?x=1")).send().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/anything?x=1");
}

#[test]
fn fixed_window_per_key_admits_exactly_the_limit_then_429() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{
        "name": "per-key", "key": ["api_key"], "algorithm": "fixed_window", "limit": 5, "window": "1h"
    }]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let send = |key: &str| {
        Request::get(&envoy.url("/v1/models")).header("authorization", &format!("Bearer {key}")).send().unwrap()
    };
    for i in 0..5 {
        let r = send("sk-alice");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-remaining"), Some((4 - i).to_string().as_str()));
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
    }
    let denied = send("sk-alice");
    assert_eq!(denied.status, 429);
    let retry: u64 = denied.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(denied.header("content-type"), Some("application/json"));
    let body = denied.json();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["rule"], "per-key");
    assert_eq!(body["error"]["message"], "Rate limit exceeded: 5 per 1h");
    assert_eq!(denied.header("ratelimit"), Some("\"per-key\";r=0;t=".to_string() + &retry.to_string()).as_deref());
    // Another key has its own counter.
    assert_eq!(send("sk-bob").status, 200);
}

fn assert_rejected(config: &str, expect_in_log: &str) {
    let llm = MockLlm::start();
    let failed = Envoy::try_start(EnvoyOptions::standalone(config, llm.port))
        .err()
        .unwrap_or_else(|| panic!("Envoy accepted the invalid config {config}"));
    assert_eq!(failed.exit_code, Some(1), "{}", failed.log);
    assert!(failed.log.contains(expect_in_log), "log lacks {expect_in_log:?}:\n{}", failed.log);
}

#[test]
fn malformed_json_is_rejected_at_load() {
    assert_rejected("{\"rules\": [", "invalid configuration: configuration is not valid JSON");
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let config = json!({"rules": [{"name": "r", "algorithm": "gcra", "limit": 1, "window": "1s", "limitt": 2}]});
    assert_rejected(&config.to_string(), "invalid configuration: rules[0].limitt: unknown field");
}

#[test]
fn bad_window_is_rejected_with_its_path() {
    let config = json!({"rules": [{"name": "r", "algorithm": "gcra", "limit": 1, "window": "5x"}]});
    assert_rejected(&config.to_string(), "rules[0].window: \"5x\" is not a duration");
}
