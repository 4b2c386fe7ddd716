use super::*;
use serde_json::json;

fn err(v: serde_json::Value) -> String {
    Config::from_value(&v).unwrap_err().to_string()
}

fn rule(extra: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"name": "r", "algorithm": "token_bucket", "limit": 10, "window": "1m"});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    json!({"rules": [r]})
}

/// The configuration of contract §1, every field given (examples/contract.json, which the
/// schema test checks too).
pub fn contract_example() -> serde_json::Value {
    serde_json::from_str(include_str!("../../examples/contract.json")).unwrap()
}

#[test]
fn the_contract_example_parses_with_every_field() {
    let c = Config::from_value(&contract_example()).unwrap();
    let r = &c.rules[0];
    assert_eq!(r.name, "per-key-rpm");
    assert_eq!(r.quota, Quota { limit: 60, window_ns: 60_000_000_000, burst: 10 });
    assert_eq!(r.scope, Scope::Global);
    assert_eq!(
        r.limit_for(Some("pro")),
        TierLimit::Limited(Quota { limit: 600, window_ns: 60_000_000_000, burst: 100 })
    );
    assert_eq!(r.limit_for(Some("internal")), TierLimit::Unlimited);
    assert_eq!(r.limit_for(Some("free")), TierLimit::Limited(r.quota));
    assert_eq!(c.llm.prices[0].input_per_mtok_micro, 2_500_000);
    assert_eq!(c.response.headers, vec![HeaderFormat::Ietf, HeaderFormat::XRateLimit, HeaderFormat::OpenAi]);
    assert_eq!(c.store.as_ref().unwrap().timeout, Duration::from_millis(50));
}

#[test]
fn empty_config_has_the_documented_defaults() {
    let c = Config::parse(b"").unwrap();
    assert!(c.enabled && c.rules.is_empty());
    assert_eq!(c.api_key.headers, vec!["authorization", "x-api-key", "api-key", "x-goog-api-key"]);
    assert_eq!(c.api_key.query, vec!["api_key", "key"]);
    assert_eq!(c.response.status, 429);
    assert_eq!(c.slots.capacity, DEFAULT_SLOT_CAPACITY);
    let c = Config::from_value(&rule(json!({}))).unwrap();
    let r = &c.rules[0];
    assert_eq!(
        (r.quota.burst, r.unit, r.scope, r.strategy, r.missing_key),
        (10, Unit::Requests, Scope::Local, Strategy::Reject, MissingKey::Shared)
    );
    assert_eq!(r.key, vec![KeySource::Global]);
}

#[test]
fn errors_name_the_field_path_and_reason() {
    assert_eq!(
        err(rule(json!({"window": "5x"}))),
        "rules[0].window: \"5x\" is not a duration (use an integer and ms, s, m, h or d, e.g. \"1m\")"
    );
    assert_eq!(err(rule(json!({"limit": 0}))), "rules[0].limit: must be positive");
    assert_eq!(err(rule(json!({"limit": -3}))), "rules[0].limit: expected a non-negative integer, got -3");
    assert_eq!(err(rule(json!({"burst": 0}))), "rules[0].burst: must be positive");
    assert_eq!(
        err(rule(json!({"algorithm": "magic"}))),
        "rules[0].algorithm: \"magic\" is not one of: token_bucket, leaky_bucket, fixed_window, sliding_window, gcra"
    );
    assert!(err(rule(json!({"limitt": 1}))).starts_with("rules[0].limitt: unknown field (expected one of: name, "));
    assert!(err(rule(json!({"match": {"path": "/x"}}))).starts_with("rules[0].match.path: unknown field"));
    assert!(err(rule(json!({"tiers": {"pro": {"limt": 1}}}))).starts_with("rules[0].tiers.pro.limt: unknown field"));
    assert_eq!(err(rule(json!({"key": ["ip", "nope"]}))).split(':').next(), Some("rules[0].key[1]"));
    assert_eq!(
        err(rule(json!({"unit": "bytes"}))),
        "rules[0].unit: \"bytes\" is not one of: requests, tokens, input_tokens, output_tokens, cost_usd, concurrent"
    );
    assert_eq!(err(json!({"rules": [{"name": "r", "limit": 1, "window": "1s"}]})), "rules[0].algorithm: is required");
    assert_eq!(err(json!({"rules": [{"name": "r", "algorithm": "gcra", "limit": 1}]})), "rules[0].window: is required");
    assert_eq!(
        err(json!({"rules": [{"algorithm": "gcra", "limit": 1, "window": "1s"}]})),
        "rules[0].name: is required"
    );
    assert!(err(json!({"bogus": 1})).starts_with("bogus: unknown field"));
    assert_eq!(err(json!({"response": {"status": 200}})), "response.status: 200 is not a 4xx or 5xx status");
    assert_eq!(
        err(json!({"response": {"headers": ["ietf", "x"]}})),
        "response.headers[1]: \"x\" is not one of: ietf, x-ratelimit, openai, anthropic"
    );
    assert_eq!(err(json!({"exempt_paths": ["healthz"]})), "exempt_paths[0]: must start with /");
    assert_eq!(err(json!({"rules": {}})), "rules: expected an array, got an object");
}

#[test]
fn duplicate_rule_names_are_errors() {
    let r = json!({"name": "a", "algorithm": "gcra", "limit": 1, "window": "1s"});
    assert_eq!(err(json!({"rules": [r, r]})), "rules[1].name: duplicate rule name \"a\"");
}

#[test]
fn global_scope_needs_a_store() {
    assert_eq!(
        err(rule(json!({"scope": "global"}))),
        "rules[0].scope: \"global\" needs a \"store\" section (the tollgate-store cluster)"
    );
}

#[test]
fn concurrent_rules_need_no_algorithm_or_window() {
    let c = Config::from_value(&json!({"rules": [{"name": "c", "unit": "concurrent", "limit": 5}]})).unwrap();
    assert_eq!(c.rules[0].algorithm, None);
}

#[test]
fn malformed_json_and_non_utf8_are_clear_errors() {
    assert!(Config::parse(b"{\"rules\": [").unwrap_err().to_string().starts_with("configuration is not valid JSON"));
    assert_eq!(Config::parse(&[0xff, 0xfe]).unwrap_err().to_string(), "configuration is not UTF-8");
    assert_eq!(Config::parse(b"[]").unwrap_err().to_string(), "expected an object, got an array");
}

#[test]
fn huge_and_hostile_configs_never_panic() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(Config::parse(deep.as_bytes()).is_err());
    let many: Vec<_> =
        (0..2000).map(|i| json!({"name": format!("r{i}"), "algorithm": "gcra", "limit": 1, "window": "1s"})).collect();
    assert_eq!(Config::from_value(&json!({"rules": many})).unwrap().rules.len(), 2000);
    assert!(Config::from_value(&rule(json!({"limit": u64::MAX, "window": "999999999999d"}))).is_err());
    assert!(Config::from_value(&rule(json!({"limit": u64::MAX}))).is_ok());
}
