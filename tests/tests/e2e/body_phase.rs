//! Rules that read the request body, in both ways Envoy runs the filter: without
//! `allow_on_headers_stop_iteration` (an Istio WasmPlugin: the headers go upstream first and
//! the decision follows the body) and with it plus `"hold_headers": true` (the headers wait
//! for the decision). What users rely on: the same decisions either way, rules that need only
//! the headers deny before the upstream sees anything, rewrites reach the upstream, and only
//! requests a body rule can match are touched.

use serde_json::json;
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::{Envoy, EnvoyMode, MockLlm};

/// Requests Envoy started towards the upstream (headers sent), from its admin stats.
fn upstream_requests(envoy: &Envoy) -> u64 {
    let stats = envoy.admin("/stats?filter=^cluster\\.upstream\\.upstream_rq_total$");
    stats.lines().find_map(|l| l.strip_prefix("cluster.upstream.upstream_rq_total: ")?.trim().parse().ok()).unwrap_or(0)
}

fn post(envoy: &Envoy, path: &str, key: &str, body: serde_json::Value) -> Response {
    Request::post(&envoy.url(path), &body.to_string()).header("x-api-key", key).send().unwrap()
}

#[test]
fn body_keys_limit_alike_in_both_modes_and_a_denied_request_is_never_served() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "per-user", "key": ["body:/user"], "algorithm": "fixed_window",
        "limit": 1, "window": "1h"}]});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        assert_eq!(post(&envoy, "/v1/jobs", "k", json!({"user": "u1"})).status, 200, "{mode:?}");
        let before = llm.requests();
        let denied = post(&envoy, "/v1/jobs", "k", json!({"user": "u1"}));
        assert_eq!(denied.status, 429, "{mode:?}: the body key limits");
        assert_eq!(denied.json()["error"]["rule"], "per-user");
        assert!(denied.header("retry-after").is_some());
        assert_eq!(llm.requests(), before, "{mode:?}: the upstream never served the denied request");
        assert_eq!(post(&envoy, "/v1/jobs", "k", json!({"user": "u2"})).status, 200, "{mode:?}: another user");
    }
}

#[test]
fn header_rules_deny_before_the_upstream_sees_anything_in_both_modes() {
    let llm = MockLlm::start();
    let config = json!({"rules": [
        {"name": "rpm", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1, "window": "1h"},
        {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 100000,
         "window": "1h"}]});
    let chat = json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        assert_eq!(post(&envoy, "/v1/chat/completions", "sk-h", chat.clone()).status, 200, "{mode:?}");
        let before = upstream_requests(&envoy);
        let denied = post(&envoy, "/v1/chat/completions", "sk-h", chat.clone());
        assert_eq!(denied.status, 429, "{mode:?}");
        assert_eq!(denied.json()["error"]["rule"], "rpm");
        assert_eq!(upstream_requests(&envoy), before, "{mode:?}: not even the headers went upstream");
    }
}

#[test]
fn what_the_upstream_sees_of_a_request_a_body_rule_denies() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens",
        "algorithm": "fixed_window", "limit": 10, "window": "1h"}]});
    let big = json!({"model": "gpt-4o", "max_tokens": 50, "messages": []});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        let (started, served_before) = (upstream_requests(&envoy), llm.requests());
        let denied = post(&envoy, "/v1/chat/completions", "sk-b", big.clone());
        assert_eq!(denied.status, 429, "{mode:?}: 50 tokens reserved do not fit in 10");
        assert_eq!(denied.json()["error"]["type"], "tokens");
        assert_eq!(llm.requests(), served_before, "{mode:?}: never served");
        // Documented: with the flag the upstream sees nothing; without it (a WasmPlugin), it
        // may have seen the headers (when Envoy had a connection ready), then a reset before
        // the body.
        let after = upstream_requests(&envoy);
        match mode {
            EnvoyMode::StopIteration => assert_eq!(after, started, "{mode:?}"),
            EnvoyMode::WasmPlugin => assert!(after <= started + 1, "{mode:?}: {started} -> {after}"),
        }
    }
}

#[test]
fn include_usage_and_model_rewrites_reach_the_upstream_in_both_modes() {
    let llm = MockLlm::start();
    let config = json!({"rules": [
        {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 100000,
         "window": "1h"},
        {"name": "premium", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1, "window": "1h",
         "strategy": "degrade", "degrade": {"set_model": "gpt-4o-mini", "add_header": "x-tollgate-degraded"}}]});
    let stream = json!({"model": "gpt-4o", "stream": true, "max_tokens": 5, "messages": []});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        let echo = |key: &str| {
            Request::post(&envoy.url("/v1/chat/completions"), &stream.to_string())
                .header("x-api-key", key)
                .header("x-mock-echo", "1")
                .send()
                .unwrap()
                .json()
        };
        let first = echo("sk-r");
        assert_eq!(first["json"]["stream_options"]["include_usage"], true, "{mode:?}: {first}");
        assert_eq!(first["json"]["model"], "gpt-4o");
        match mode {
            // The headers waited: the length was corrected.
            EnvoyMode::StopIteration => {
                assert_eq!(first["headers"]["content-length"], first["body_bytes"].to_string(), "{first}")
            }
            // The headers left before the body: it goes chunked.
            EnvoyMode::WasmPlugin => {
                assert_eq!(first["headers"]["content-length"], serde_json::Value::Null, "{first}");
                assert_eq!(first["headers"]["transfer-encoding"], "chunked", "{first}");
            }
        }
        let degraded = echo("sk-r");
        assert_eq!(degraded["json"]["model"], "gpt-4o-mini", "{mode:?}: {degraded}");
        assert_eq!(degraded["headers"]["x-tollgate-degraded"], "premium", "{mode:?}: the marker went with the headers");
        assert_eq!(degraded["json"]["stream_options"]["include_usage"], true);
    }
}

#[test]
fn only_requests_a_body_rule_can_match_are_touched() {
    let llm = MockLlm::start();
    let config = json!({"rules": [
        {"name": "tpm", "match": {"path_prefix": "/v1/chat/"}, "key": ["api_key"], "unit": "tokens",
         "algorithm": "fixed_window", "limit": 100000, "window": "1h"},
        {"name": "rpm", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1000, "window": "1h"}]});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        let echo = |path: &str| {
            let body = r#"{"model": "gpt-4o", "stream": true, "messages": []}"#;
            Request::post(&envoy.url(path), body)
                .header("x-api-key", "sk-o")
                .header("accept-encoding", "gzip")
                .header("x-mock-echo", "1")
                .send()
                .unwrap()
                .json()
        };
        let chat = echo("/v1/chat/completions");
        assert_eq!(chat["headers"]["accept-encoding"], serde_json::Value::Null, "{mode:?}: usage is read: {chat}");
        let files = echo("/v1/files");
        assert_eq!(files["headers"]["accept-encoding"], "gzip", "{mode:?}: no token rule matches: {files}");
        assert_eq!(files["headers"]["content-length"], files["body_bytes"].to_string(), "{mode:?}: left as sent");
        assert_eq!(files["json"]["stream_options"], serde_json::Value::Null, "{mode:?}: body left as sent");
    }
}

#[test]
fn a_request_without_a_body_is_decided_on_its_headers() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "per-user", "key": ["body:/user"], "missing_key": "deny",
        "algorithm": "fixed_window", "limit": 5, "window": "1h"}]});
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
        let r = Request::get(&envoy.url("/v1/jobs")).send().unwrap();
        assert_eq!(r.status, 403, "{mode:?}: no body, so no user: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "missing_key");
    }
}
