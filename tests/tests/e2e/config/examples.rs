//! Every example configuration of examples/ loads in the real Envoy and does, end to end, what
//! its seed scenario asks for, with the numbers written in the file (no scaled-down copies).
//!
//! Needs `make build` (tollgate.wasm) and `cargo build -p tollgate-e2e --bins`.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::keys::jwt;
use tollgate_e2e::{read, Envoy, MockLlm};

/// Windows are aligned to the UNIX epoch; a burst that straddles a minute boundary would see
/// the previous window's count decay. Start a burst that takes up to `secs` seconds only
/// when it ends before the next minute boundary.
fn away_from_minute_edge(secs: u64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into_minute = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into_minute;
    if left < Duration::from_secs(secs) {
        std::thread::sleep(left + Duration::from_millis(200));
    }
}

/// Items of an IETF `RateLimit` / `RateLimit-Policy` header: `"name";k=v;k=v, ...` ->
/// name -> (k -> v).
fn ietf(header: Option<&str>) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for item in header.unwrap_or("").split(", ").filter(|i| !i.is_empty()) {
        let mut parts = item.split(';');
        let name = parts.next().unwrap().trim_matches('"').to_string();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or_else(|_| panic!("{item}: {v} is not a number"))))
            .collect();
        out.insert(name, params);
    }
    out
}

/// `r` (remaining) of each rule in the `RateLimit` header.
fn remaining(r: &Response) -> BTreeMap<String, u64> {
    ietf(r.header("ratelimit")).into_iter().map(|(name, p)| (name, p["r"])).collect()
}

fn assert_denied(r: &Response, rule: &str, message: &str) {
    assert_eq!(r.status, 429, "expected 429 from {rule}: {} {}", r.status, r.text());
    let body = r.json();
    assert_eq!(body["error"]["rule"], rule, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    // Anthropic's shape on its Messages API (response.format auto), OpenAI's elsewhere.
    if body["type"] == "error" {
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        assert_eq!(body["error"]["limit_type"], "requests", "{body}");
    } else {
        assert_eq!(body["error"]["type"], "requests", "{body}");
    }
    assert_eq!(body["error"]["message"], message, "{body}");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
}

fn assert_missing_key(r: &Response, rule: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "missing_key", "{body}");
    assert_eq!(body["error"]["rule"], rule, "{body}");
}

// ---------------------------------------------------------------------------------------------

/// Seed: slowapi on a vLLM batch API, `10/minute` on POST /v1/batches and `20/minute` on
/// POST /v1/files per client IP, X-Forwarded-For honoured.
#[test]
fn slowapi_per_ip_limits_each_endpoint_per_forwarded_client_address() {
    let config = read("examples/slowapi-per-ip.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let post = |path: &str, xff: &str| {
        Request::post(&envoy.url(path), r#"{"input_file_id":"file-1"}"#).header("x-forwarded-for", xff).send().unwrap()
    };
    away_from_minute_edge(15);
    for i in 0..10 {
        let r = post("/v1/batches", "1.2.3.4");
        assert_eq!(r.status, 200, "batch {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some((9 - i).to_string().as_str()));
        assert_eq!(ietf(r.header("ratelimit-policy"))["create-batch-per-ip"]["q"], 10);
        assert_eq!(ietf(r.header("ratelimit-policy"))["create-batch-per-ip"]["w"], 60);
    }
    let denied = post("/v1/batches", "1.2.3.4");
    assert_denied(&denied, "create-batch-per-ip", "Rate limit exceeded: 10 per 1m");
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    // A sliding window admits the 11th once the 10 have (nearly) left the last minute: at most
    // a window plus one request's share of it (60 s + 6 s) after the burst.
    let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 66, "Retry-After {retry}");
    // trusted_hops 1: the rightmost X-Forwarded-For address is the client; a spoofed address
    // on the left does not give a fresh counter.
    assert_eq!(post("/v1/batches", "6.6.6.6, 1.2.3.4").status, 429);
    // Another client address has its own 10.
    let other = post("/v1/batches", "5.6.7.8");
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(other.header("x-ratelimit-remaining"), Some("9"));
    // Only POST /v1/batches itself is limited by that rule.
    let get = Request::get(&envoy.url("/v1/batches")).header("x-forwarded-for", "1.2.3.4").send().unwrap();
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.header("x-ratelimit-limit"), None, "no rule applies to GET /v1/batches");
    assert_eq!(post("/v1/batches/batch-1/cancel", "1.2.3.4").status, 200);
    // POST /v1/files has its own 20 per address, even for the address that spent its batches.
    for i in 0..20 {
        let r = post("/v1/files", "1.2.3.4");
        assert_eq!(r.status, 200, "file {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("20"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some((19 - i).to_string().as_str()));
    }
    assert_denied(&post("/v1/files", "1.2.3.4"), "upload-file-per-ip", "Rate limit exceeded: 20 per 1m");
    assert_eq!(post("/v1/files", "5.6.7.8").status, 200);
    // Exempt path.
    let health = Request::get(&envoy.url("/healthz")).header("x-forwarded-for", "1.2.3.4").send().unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.header("ratelimit"), None);
    // Denied requests never reached the upstream: 10 + 1 + 1 + 1 + 20 + 1 + 1 allowed.
    assert_eq!(llm.requests(), 35);
}

/// Seed: role-based RPM per API key: admin 500, user 60, service 30 (a static key map, and
/// a `role` claim for JWT callers).
#[test]
fn per_key_roles_give_each_role_its_requests_per_minute() {
    let config = read("examples/per-key-roles.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let send = |auth: &str| {
        Request::post(&envoy.url("/v1/chat/completions"), r#"{"model":"gpt-4o","messages":[]}"#)
            .header("authorization", auth)
            .send()
            .unwrap()
    };
    away_from_minute_edge(20);
    // A service key (static map): 30 per minute.
    for i in 0..30 {
        let r = send("Bearer sk-svc-indexer");
        assert_eq!(r.status, 200, "service request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("30"));
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some((29 - i).to_string().as_str()));
    }
    assert_denied(&send("Bearer sk-svc-indexer"), "per-key-rpm", "Rate limit exceeded: 30 per 1m");
    // The same key in x-api-key is the same counter.
    let via_header = Request::get(&envoy.url("/v1/models")).header("x-api-key", "sk-svc-indexer").send().unwrap();
    assert_eq!(via_header.status, 429);
    // Another service key has its own 30.
    assert_eq!(send("Bearer sk-svc-billing").header("x-ratelimit-remaining-requests"), Some("29"));
    // An unmapped key is a user: 60 per minute.
    for i in 0..60 {
        let r = send("Bearer sk-user-alice");
        assert_eq!(r.status, 200, "user request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
    }
    assert_denied(&send("Bearer sk-user-alice"), "per-key-rpm", "Rate limit exceeded: 60 per 1m");
    // The admin key: 500 per minute; 100 requests leave 400.
    for i in 0..100 {
        let r = send("Bearer sk-admin-ops");
        assert_eq!(r.status, 200, "admin request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("500"));
        assert_eq!(ietf(r.header("ratelimit-policy"))["per-key-rpm"]["q"], 500);
    }
    assert_eq!(remaining(&send("Bearer sk-admin-ops"))["per-key-rpm"], 399);
    // A JWT caller whose role claim is "service" gets 30 too.
    let token = jwt(&json!({"sub": "svc-42", "role": "service"}));
    for i in 0..30 {
        assert_eq!(send(&token).status, 200, "jwt service request {i}");
    }
    assert_denied(&send(&token), "per-key-rpm", "Rate limit exceeded: 30 per 1m");
    // missing_key: deny, and the query parameter is switched off ("query": "").
    assert_missing_key(&send(""), "per-key-rpm");
    let by_query = Request::get(&envoy.url("/v1/models?api_key=sk-admin-ops")).send().unwrap();
    assert_missing_key(&by_query, "per-key-rpm");
}

/// Seed: multi-tier limits per user, 10/minute + 100/hour + 500/day, and a global 1000/hour
/// (sliding windows, the user from the JWT `sub`).
#[test]
fn multi_window_applies_every_window_and_the_minute_bites_first() {
    let config = read("examples/multi-window.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let send = |sub: &str| {
        Request::get(&envoy.url("/v1/models"))
            .header("authorization", &jwt(&json!({"sub": sub, "exp": 4_000_000_000u64})))
            .send()
            .unwrap()
    };
    away_from_minute_edge(10);
    for i in 0..10u64 {
        let r = send("user-1");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let rem = remaining(&r);
        assert_eq!(rem["per-user-minute"], 9 - i, "{rem:?}");
        assert_eq!(rem["per-user-hour"], 99 - i, "{rem:?}");
        assert_eq!(rem["per-user-day"], 499 - i, "{rem:?}");
        assert_eq!(rem["global-hour"], 999 - i, "{rem:?}");
        let policy = ietf(r.header("ratelimit-policy"));
        assert_eq!(policy["per-user-minute"], BTreeMap::from([("q".into(), 10), ("w".into(), 60)]));
        assert_eq!(policy["per-user-hour"], BTreeMap::from([("q".into(), 100), ("w".into(), 3600)]));
        assert_eq!(policy["per-user-day"], BTreeMap::from([("q".into(), 500), ("w".into(), 86400)]));
        assert_eq!(policy["global-hour"], BTreeMap::from([("q".into(), 1000), ("w".into(), 3600)]));
    }
    let denied = send("user-1");
    assert_denied(&denied, "per-user-minute", "Rate limit exceeded: 10 per 1m");
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    // Another user passes; the global counter saw 10 requests, not 11: a denied request
    // consumes no quota in any rule.
    let other = send("user-2");
    assert_eq!(other.status, 200, "{}", other.text());
    let rem = remaining(&other);
    assert_eq!((rem["per-user-minute"], rem["per-user-hour"], rem["global-hour"]), (9, 99, 989), "{rem:?}");
    // The user again: the hour and day counters were not charged by the denial either.
    let again = send("user-1");
    assert_eq!(again.status, 429);
    // No JWT: the per-user rules deny with 403 (missing_key: deny).
    let anonymous = Request::get(&envoy.url("/v1/models")).send().unwrap();
    assert_missing_key(&anonymous, "per-user-minute");
    let health = Request::get(&envoy.url("/healthz")).send().unwrap();
    assert_eq!((health.status, health.header("ratelimit")), (200, None));
    assert_eq!(llm.requests(), 12);
}

/// Seed: the default rule set: global 1000/min, per user 100/min, per IP 50/min, expensive
/// endpoints 10/min.
#[test]
fn default_rules_per_ip_bites_before_per_user_and_expensive_endpoints_at_ten() {
    let config = read("examples/default-rules.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let send = |method: &str, path: &str, key: Option<&str>, ip: &str| {
        let mut r =
            if method == "POST" { Request::post(&envoy.url(path), "{}") } else { Request::get(&envoy.url(path)) };
        r = r.header("x-forwarded-for", ip);
        if let Some(k) = key {
            r = r.header("authorization", &format!("Bearer {k}"));
        }
        r.send().unwrap()
    };
    away_from_minute_edge(15);
    // Expensive endpoints: 10 per minute per user and endpoint.
    for i in 0..10 {
        let r = send("POST", "/v1/batches", Some("sk-a"), "1.2.3.4");
        assert_eq!(r.status, 200, "batch {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-remaining"), Some((9 - i).to_string().as_str()), "the tightest rule");
    }
    assert_denied(
        &send("POST", "/v1/batches", Some("sk-a"), "1.2.3.4"),
        "expensive_operations",
        "Rate limit exceeded: 10 per 1m",
    );
    assert_eq!(send("POST", "/v1/images/generations", Some("sk-a"), "1.2.3.4").status, 200, "another endpoint");
    assert_eq!(send("GET", "/v1/batches", Some("sk-a"), "1.2.3.4").status, 200, "GET is not expensive");
    // One user from one address: the per-IP 50 bites before the per-user 100.
    for i in 0..50 {
        let r = send("GET", "/v1/models", Some("sk-b"), "5.6.7.8");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let denied = send("GET", "/v1/models", Some("sk-b"), "5.6.7.8");
    assert_denied(&denied, "api_per_ip", "Rate limit exceeded: 50 per 1m");
    // The same user from another address goes on, up to its 100.
    for i in 0..50 {
        let r = send("GET", "/v1/models", Some("sk-b"), "9.9.9.9");
        assert_eq!(r.status, 200, "request {i} from the second address: {}", r.text());
    }
    let denied = send("GET", "/v1/models", Some("sk-b"), "13.13.13.13");
    assert_denied(&denied, "api_per_user", "Rate limit exceeded: 100 per 1m");
    // No API key: the per-user rule is skipped (missing_key: skip), per-IP and global apply.
    let anonymous = send("GET", "/v1/models", None, "17.17.17.17");
    assert_eq!(anonymous.status, 200, "{}", anonymous.text());
    let rem = remaining(&anonymous);
    assert!(!rem.contains_key("api_per_user"), "{rem:?}");
    assert_eq!(rem["api_per_ip"], 49, "{rem:?}");
    // The global counter: 10 + 1 + 1 + 50 + 50 + 1 allowed requests; the 3 denied ones cost nothing.
    assert_eq!(rem["api_global"], 1000 - 113, "{rem:?}");
    assert_eq!(ietf(anonymous.header("ratelimit-policy"))["api_global"]["q"], 1000);
    // Exempt paths.
    for path in ["/healthz", "/metrics"] {
        let r = send("GET", path, Some("sk-b"), "13.13.13.13");
        assert_eq!((r.status, r.header("ratelimit")), (200, None), "{path}");
    }
    assert_eq!(llm.requests(), 113 + 2);
}

/// Seed: per-provider token buckets with burst capacities (GLM 60/min burst 20, DeepSeek
/// 50/min burst 15, Claude 50/min burst 10, OpenAI 60/min burst 20, DeepInfra 30/min burst 10).
#[test]
fn per_provider_buckets_admit_each_providers_burst_then_refill() {
    let config = read("examples/per-provider.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let send = |path: &str, provider_header: Option<&str>, key: &str| {
        let mut r = Request::post(&envoy.url(path), chat).header("authorization", &format!("Bearer {key}"));
        if let Some(p) = provider_header {
            r = r.header("x-provider", p);
        }
        r.send().unwrap()
    };
    // (rule, path, x-provider header, limit per minute, burst)
    let providers = [
        ("glm", "/glm/v1/chat/completions", None, 60u64, 20u64),
        ("deepseek", "/deepseek/v1/chat/completions", None, 50, 15),
        ("claude", "/claude/v1/messages", None, 50, 10),
        ("openai", "/openai/v1/chat/completions", None, 60, 20),
        ("deepinfra", "/v1/chat/completions", Some("deepinfra"), 30, 10),
    ];
    for (rule, path, header, limit, burst) in providers {
        for i in 0..burst {
            let r = send(path, header, "sk-team-1");
            assert_eq!(r.status, 200, "{rule} request {i}: {}", r.text());
            assert_eq!(r.header("x-ratelimit-limit"), Some(limit.to_string().as_str()), "{rule}");
            assert_eq!(r.header("x-ratelimit-remaining"), Some((burst - 1 - i).to_string().as_str()), "{rule}");
        }
        let denied = send(path, header, "sk-team-1");
        assert_denied(&denied, rule, &format!("Rate limit exceeded: {limit} per 1m"));
        assert_eq!(denied.json()["type"] == "error", path.ends_with("/v1/messages"), "{rule}: the provider's shape");
        // One token comes back every window / limit: Retry-After is at most that, rounded up.
        let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
        assert!(retry <= 60_u64.div_ceil(limit), "{rule}: Retry-After {retry}");
        // Another key has its own bucket for this provider.
        assert_eq!(send(path, header, "sk-team-2").status, 200, "{rule}: another key");
    }
    // A path that no provider rule matches is not limited.
    assert_eq!(send("/v1/chat/completions", None, "sk-team-1").status, 200);
    let mut allowed = providers.iter().map(|p| p.4 + 1).sum::<u64>() + 1;
    // The bucket refills at the provider's rate (GLM: one per second): drain what came back
    // meanwhile, wait Retry-After, and exactly one more passes.
    let mut denied = send("/glm/v1/chat/completions", None, "sk-team-1");
    for _ in 0..10 {
        if denied.status != 200 {
            break;
        }
        allowed += 1;
        denied = send("/glm/v1/chat/completions", None, "sk-team-1");
    }
    assert_eq!(denied.status, 429);
    let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 1, "GLM refills one request per second");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(send("/glm/v1/chat/completions", None, "sk-team-1").status, 200, "refilled after {retry}s");
    assert_eq!(send("/glm/v1/chat/completions", None, "sk-team-1").status, 429);
    assert_eq!(llm.requests(), allowed + 1, "denied requests never reach the upstream");
}

#[test]
fn demo_example_loads_and_limits() {
    // examples/demo.json is the `make demo` configuration: it must load too.
    let config = read("examples/demo.json");
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&config, llm.port);
    let r = Request::get(&envoy.url("/v1/models")).header("authorization", "Bearer sk-demo-free").send().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(ietf(r.header("ratelimit-policy")).contains_key("per-key-rpm"));
}

/// The contract's example (examples/contract.json: every field of the configuration, which the
/// parser's unit test reads too) loads in Envoy next to a store, and its rule limits the
/// requests it matches (POST /v1/chat with `x-env: prod`, free tier) and no others.
#[test]
fn contract_example_loads_and_limits_what_it_matches() {
    let mut config: Value = serde_json::from_str(&read("examples/contract.json")).unwrap();
    config["store"]["token"] = json!(tollgate_e2e::store::PROXY_TOKEN);
    let llm = MockLlm::start();
    let redis = tollgate_e2e::redis::Redis::start();
    let store = tollgate_e2e::store::Store::start(&redis.url(), &[]);
    let mut opts = tollgate_e2e::EnvoyOptions::standalone(&config.to_string(), llm.port);
    opts.template = tollgate_e2e::repo_root().join("envoy/with-store.yaml");
    opts.vars.push(("STORE_PORT".into(), store.port.to_string()));
    let envoy = Envoy::start(opts);
    let chat = |env: &str, key: &str| {
        let body = json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
            .header("x-api-key", key)
            .header("x-env", env)
            .header("x-beta", "1")
            .send()
            .unwrap()
    };
    let r = chat("prod", "sk-contract");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(ietf(r.header("ratelimit-policy")).contains_key("per-key-rpm"), "{:?}", r.headers);
    let r = chat("staging", "sk-contract");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!ietf(r.header("ratelimit-policy")).contains_key("per-key-rpm"), "x-env: staging is not matched");
    // The pro tier (from the key map) is not in the rule's `match.tiers`.
    let r = chat("prod", "sk-demo-pro");
    assert!(!ietf(r.header("ratelimit-policy")).contains_key("per-key-rpm"), "pro keys are not matched");
}

#[test]
fn every_example_is_covered_by_a_test_here() {
    let src = read("tests/tests/e2e/config/examples.rs");
    let mut examples: Vec<String> = std::fs::read_dir(tollgate_e2e::repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| format!("examples/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    examples.sort();
    for e in &examples {
        assert!(
            src.contains(&format!("read(\"{e}\")")),
            "{e} has no end-to-end test in tests/tests/e2e/config/examples.rs"
        );
    }
    assert!(examples.len() >= 6, "{examples:?}");
}

/// Tutorials 2 and 3 (docs/tutorials.md; their steps run in tests/tests/e2e/tutorials.rs).
#[test]
fn tutorial_examples_load_and_limit() {
    let llm = MockLlm::start();
    let gateway = Envoy::standalone(&read("examples/openai-gateway.json"), llm.port);
    let r = Request::get(&gateway.url("/v1/models")).header("authorization", "Bearer sk-free-1").send().unwrap();
    assert_eq!((r.status, r.header("x-ratelimit-limit-requests")), (200, Some("10")));
    let redis = tollgate_e2e::redis::Redis::start();
    let store = tollgate_e2e::store::Store::start(&redis.url(), &[]);
    let config = read("examples/fleet-global.json").replace("dev-proxy-token", tollgate_e2e::store::PROXY_TOKEN);
    let mut opts = tollgate_e2e::EnvoyOptions::standalone(&config, llm.port);
    opts.template = tollgate_e2e::repo_root().join("envoy/with-store.yaml");
    opts.vars.push(("STORE_PORT".into(), store.port.to_string()));
    let fleet = Envoy::start(opts);
    let r = Request::get(&fleet.url("/v1/models")).header("x-api-key", "sk-team-a").send().unwrap();
    assert_eq!((r.status, r.header("x-ratelimit-limit")), (200, Some("20")));
}
