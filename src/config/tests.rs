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

#[test]
fn every_section_names_the_field_in_its_errors() {
    let cases = [
        (json!({"client_ip": {"trusted_hops": 33}}), "client_ip.trusted_hops: must be between 0 and 32"),
        (json!({"client_ip": {"trusted_hops": -1}}), "client_ip.trusted_hops: expected a non-negative integer, got -1"),
        (json!({"client_ip": []}), "client_ip: expected an object, got an array"),
        (json!({"slots": {"capacity": 16}}), "slots.capacity: must be between 64 and 16777216"),
        (json!({"slots": {"capacity": 0}}), "slots.capacity: must be positive"),
        (json!({"throttle_queue": 4_294_967_296_u64}), "throttle_queue: is too large"),
        (json!({"max_body_bytes": 1.5}), "max_body_bytes: expected a non-negative integer, got 1.5"),
        (json!({"enabled": "yes"}), "enabled: expected true or false, got a string"),
        (json!({"exempt_paths": "/h"}), "exempt_paths: expected an array, got a string"),
        (json!({"api_key": {"query": 5}}), "api_key.query: expected a string or an array of strings, got a number"),
        (json!({"api_key": {"query": ["key", 1]}}), "api_key.query[1]: expected a string, got a number"),
        (json!({"api_key": {"headers": [null]}}), "api_key.headers[0]: expected a string, got null"),
        (
            json!({"tier": {"source": "body:/tier"}}),
            "tier.source: \"body:/tier\": a tier comes from header:NAME, jwt:CLAIM, query:NAME or cookie:NAME",
        ),
        (json!({"tier": {"source": "header:"}}), "tier.source: \"header:\": the header name is empty"),
        (json!({"tier": {"default": 1}}), "tier.default: expected a string, got a number"),
        (
            json!({"allow": {"ips": ["10.0.0.0/8", "10.0.0.0/33"]}}),
            "allow.ips[1]: \"10.0.0.0/33\" is not an IP address or CIDR block",
        ),
        (json!({"llm": {"estimate": "fixed:x"}}), "llm.estimate: \"fixed:x\" is not one of: max_tokens, none, fixed:N"),
        (
            json!({"llm": {"prices": {"m": {"input_per_mtok": -1}}}}),
            "llm.prices.m.input_per_mtok: expected a non-negative number, got -1",
        ),
        (json!({"llm": {"prices": {"m": 1}}}), "llm.prices.m: expected an object, got a number"),
        (
            json!({"llm": {"default_price": {"input": 1}}}),
            "llm.default_price.input: unknown field (expected one of: input_per_mtok, output_per_mtok)",
        ),
        (json!({"store": {"fleet_size": 4_294_967_296_u64}}), "store.fleet_size: is too large"),
        (json!({"store": {"timeout": "0s"}}), "store.timeout: must be positive"),
        (json!({"store": {"failure_mode": "fail"}}), "store.failure_mode: \"fail\" is not one of: local, open, closed"),
        (
            json!({"response": {"format": "xml"}}),
            "response.format: \"xml\" is not one of: auto, openai, anthropic, gemini",
        ),
        (json!({"response": {"status": "429"}}), "response.status: expected a non-negative integer, got \"429\""),
        (json!({"response": {"headers": "ietf"}}), "response.headers: expected an array, got a string"),
        (json!({"rules": [[]]}), "rules[0]: expected an object, got an array"),
        (json!({"rules": [null]}), "rules[0]: expected an object, got null"),
    ];
    for (config, expected) in cases {
        assert_eq!(err(config.clone()), expected, "{config}");
    }
}

#[test]
fn rule_errors_name_the_field() {
    let cases = [
        (rule(json!({"limit": "60"})), "rules[0].limit: expected a non-negative integer, got \"60\""),
        (rule(json!({"limit": 10.0})), "rules[0].limit: expected a non-negative integer, got 10.0"),
        (rule(json!({"name": "a b"})), "rules[0].name: \"a b\": use 1 to 64 characters among letters, digits, '-', '_' and '.'"),
        (rule(json!({"max_wait": "2"})), "rules[0].max_wait: \"2\" is not a duration (use an integer and ms, s, m, h or d, e.g. \"1m\")"),
        (rule(json!({"window": "0s"})), "rules[0].window: must be positive"),
        (rule(json!({"key": []})), "rules[0].key: must list at least one key source"),
        (rule(json!({"key": "ip"})), "rules[0].key: expected an array, got a string"),
        (rule(json!({"missing_key": "drop"})), "rules[0].missing_key: \"drop\" is not one of: shared, skip, deny"),
        (rule(json!({"scope": 1})), "rules[0].scope: expected a string, got a number"),
        (rule(json!({"sync": "lazy"})), "rules[0].sync: \"lazy\" is not one of: strict, batched"),
        (rule(json!({"strategy": "drop"})), "rules[0].strategy: \"drop\" is not one of: reject, shadow, throttle, degrade"),
        (
            rule(json!({"strategy": "throttle", "algorithm": "fixed_window"})),
            "rules[0].strategy: \"throttle\" needs algorithm token_bucket, leaky_bucket or gcra (they know the exact wait)",
        ),
        (rule(json!({"strategy": "degrade"})), "rules[0].degrade: is required with strategy \"degrade\""),
        (rule(json!({"degrade": ["m"]})), "rules[0].degrade: expected an object, got an array"),
        (rule(json!({"degrade": {"model": "m"}})), "rules[0].degrade.model: unknown field (expected one of: set_model, add_header)"),
        (rule(json!({"tiers": {"pro": {"burst": 0}}})), "rules[0].tiers.pro.burst: must be positive"),
        (rule(json!({"tiers": {"pro": {"unlimited": true, "limit": 5}}})), "rules[0].tiers.pro: an unlimited tier takes no limit or burst"),
        (rule(json!({"tiers": {"pro": {"unlimited": "yes"}}})), "rules[0].tiers.pro.unlimited: expected true or false, got a string"),
        (rule(json!({"tiers": []})), "rules[0].tiers: expected an object, got an array"),
        (rule(json!({"unit": "cost_usd", "limit": 0.0000001})), "rules[0].limit: must be at least 0.000001 (one micro-dollar)"),
        (rule(json!({"unit": "cost_usd", "limit": "5"})), "rules[0].limit: expected a non-negative number, got \"5\""),
        (
            rule(json!({"unit": "cost_usd", "tiers": {"pro": {"limit": -1}}})),
            "rules[0].tiers.pro.limit: expected a non-negative number, got -1",
        ),
        (rule(json!({"match": {"path_prefix": "v1"}})), "rules[0].match.path_prefix: must start with /"),
        (rule(json!({"match": {"methods": "GET"}})), "rules[0].match.methods: expected an array, got a string"),
    ];
    for (config, expected) in cases {
        assert_eq!(err(config.clone()), expected, "{config}");
    }
    let unlimited = Config::from_value(&rule(json!({"tiers": {"vip": {"unlimited": true, "limit": null}}}))).unwrap();
    assert_eq!(unlimited.rules[0].limit_for(Some("vip")), TierLimit::Unlimited);
}

#[test]
fn a_tier_key_error_does_not_log_the_key() {
    // The keys of `tier.keys` are raw API keys: the message names the map, not the entry.
    let e = err(json!({"tier": {"keys": {"sk-secret-123": 1}}}));
    assert_eq!(e, "tier.keys: values must be tier names (strings)");
    assert!(!e.contains("sk-secret"));
}

#[test]
fn null_is_absent_and_a_repeated_key_counts_once() {
    let c = Config::from_value(&json!({"api_key": {"query": null}, "response": null, "rules": [
        {"name": "r", "algorithm": "gcra", "limit": 1, "window": "1s", "burst": null, "key": null, "match": null}]}))
    .unwrap();
    assert_eq!(c.api_key.query, vec!["api_key", "key"]);
    assert_eq!(c.rules[0].quota.burst, 1);
    assert_eq!(c.rules[0].key, vec![KeySource::Global]);
    // As any JSON reader of the file would: the last one wins.
    assert!(!Config::parse(br#"{"enabled": true, "enabled": false}"#).unwrap().enabled);
    // One parameter or a list; "" reads none.
    let q = |v| Config::from_value(&json!({"api_key": {"query": v}})).unwrap().api_key.query;
    assert_eq!(q(json!("k")), vec!["k"]);
    assert_eq!(q(json!("")), Vec::<String>::new());
    assert_eq!(q(json!(["a", "", "b"])), vec!["a", "b"]);
}

#[test]
fn sections_compile_to_their_values() {
    let c = Config::from_value(&json!({
        "api_key": {"headers": ["X-Key"]},
        "tier": {"source": "jwt:plan", "keys": {"sk-1": "pro"}},
        "allow": {"keys": ["sk-2"], "ips": ["10.0.0.0/8"]},
        "llm": {"estimate": "fixed:7", "usage_header": "X-Tokens", "default_price": {"output_per_mtok": 1.5}},
        "response": {"headers": ["openai", "ietf", "openai"], "format": "gemini", "status": 503},
        "store": {"failure_mode": "closed", "fleet_size": 4},
        "rules": [{"name": "r", "algorithm": "gcra", "limit": 1, "window": "1s", "key": ["header:X-User", "ip"],
                   "degrade": {"add_header": "X-Degraded"},
                   "match": {"methods": ["post"], "headers": {"X-Env": "prod", "x-beta": "*"}}}]
    }))
    .unwrap();
    assert_eq!(c.api_key.headers, vec!["x-key"]);
    assert_eq!(c.api_key.query, vec!["api_key", "key"]);
    let tier = c.tier.unwrap();
    assert_eq!((tier.source, tier.keys), (Some(KeySource::Jwt("plan".into())), vec![("sk-1".into(), "pro".into())]));
    assert_eq!((c.allow_keys.len(), c.allow_ips.len()), (1, 1));
    assert_eq!(c.llm.estimate, Estimate::Fixed(7));
    assert_eq!(c.llm.usage_header.as_deref(), Some("x-tokens"));
    assert_eq!(c.llm.default_price.unwrap().output_per_mtok_micro, 1_500_000);
    assert_eq!(c.response.headers, vec![HeaderFormat::OpenAi, HeaderFormat::Ietf]);
    assert_eq!((c.response.format, c.response.status), (ErrorFormat::Gemini, 503));
    let store = c.store.unwrap();
    assert_eq!(
        (store.failure_mode, store.fleet_size, store.cluster.as_str()),
        (FailureMode::Closed, 4, "tollgate_store")
    );
    let r = &c.rules[0];
    assert_eq!(r.key, vec![KeySource::Header("x-user".into()), KeySource::Ip]);
    assert_eq!(r.degrade.as_ref().unwrap().add_header.as_deref(), Some("x-degraded"));
    assert_eq!(r.matcher.methods, vec!["POST"]);
    let mut headers = r.matcher.headers.clone();
    headers.sort();
    assert_eq!(headers, vec![("x-beta".into(), None), ("x-env".into(), Some("prod".into()))]);
}
