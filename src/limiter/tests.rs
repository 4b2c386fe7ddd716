use super::*;
use crate::engine::shared_store::MemoryStore;
use serde_json::json;

const T0: u64 = 1_700_000_000_000_000_000;

struct Fixture {
    limiter: Limiter,
    store: MemoryStore,
}

fn fixture(config: serde_json::Value) -> Fixture {
    let limiter = Limiter::new(Config::from_value(&config).unwrap());
    let store = MemoryStore::new();
    limiter.prepare(&store).unwrap();
    Fixture { limiter, store }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Fixture {
    fn eval(&self, method: &str, path: &str, hs: &[(&str, &str)], peer: &str) -> Evaluation {
        let hs = headers(hs);
        let req = Request { method, path, headers: &hs, peer: Some(peer), body: None };
        self.limiter.evaluate(&self.store, &req, T0, true, &Overrides::default())
    }

    fn status(&self, path: &str, hs: &[(&str, &str)]) -> u32 {
        match self.eval("GET", path, hs, "10.0.0.1:1234").reply {
            Reply::Continue { .. } => 200,
            Reply::Deny { status, .. } => status,
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    let hs = match reply {
        Reply::Continue { headers } | Reply::Deny { headers, .. } => headers,
    };
    hs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

fn per_key(limit: u64) -> serde_json::Value {
    json!({"name": "per-key", "key": ["api_key"], "algorithm": "fixed_window", "limit": limit, "window": "1m"})
}

#[test]
fn api_key_from_bearer_header_or_query_is_one_counter() {
    let f = fixture(json!({"rules": [per_key(2)]}));
    assert_eq!(f.status("/", &[("authorization", "Bearer sk-1")]), 200);
    assert_eq!(f.status("/?api_key=sk-1", &[]), 200);
    assert_eq!(f.status("/", &[("x-api-key", "sk-1")]), 429);
    assert_eq!(f.status("/", &[("x-api-key", "sk-2")]), 200);
}

#[test]
fn missing_key_policies() {
    let rule = |policy: &str| {
        let mut r = per_key(1);
        r["missing_key"] = json!(policy);
        json!({"rules": [r]})
    };
    let shared = fixture(rule("shared"));
    assert_eq!(shared.status("/", &[]), 200);
    assert_eq!(shared.status("/", &[]), 429, "keyless requests share one counter");
    let skip = fixture(rule("skip"));
    for _ in 0..3 {
        assert_eq!(skip.status("/", &[]), 200);
    }
    let deny = fixture(rule("deny"));
    let eval = deny.eval("GET", "/", &[], "1.2.3.4:1");
    match eval.reply {
        Reply::Deny { status: 403, body, .. } => assert!(body.contains("\"code\":\"missing_key\"")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ip_keys_honour_trusted_hops() {
    let f = fixture(json!({"client_ip": {"trusted_hops": 1},
        "rules": [{"name": "ip", "key": ["ip"], "algorithm": "fixed_window", "limit": 1, "window": "1m"}]}));
    assert_eq!(f.status("/", &[("x-forwarded-for", "9.9.9.9, 1.1.1.1")]), 200);
    assert_eq!(f.status("/", &[("x-forwarded-for", "8.8.8.8, 1.1.1.1")]), 429, "rightmost hop is the client");
    assert_eq!(f.status("/", &[("x-forwarded-for", "1.1.1.2")]), 200);
}

#[test]
fn composite_keys_header_cookie_path_method() {
    let f = fixture(json!({"rules": [{"name": "c", "key": ["header:x-user", "cookie:sid", "path", "method"],
        "algorithm": "gcra", "limit": 1, "window": "1m"}]}));
    let h = [("x-user", "u"), ("cookie", "sid=1")];
    assert_eq!(f.status("/a", &h), 200);
    assert_eq!(f.status("/a", &h), 429);
    assert_eq!(f.status("/b", &h), 200);
    assert_eq!(f.status("/a", &[("x-user", "u"), ("cookie", "sid=2")]), 200);
}

#[test]
fn tiers_from_key_map_header_and_default_with_unlimited() {
    let mut r = per_key(1);
    r["tiers"] = json!({"pro": {"limit": 3}, "internal": {"unlimited": true}});
    let f = fixture(
        json!({"rules": [r], "tier": {"source": "header:x-tier", "keys": {"sk-pro": "pro"}, "default": "free"}}),
    );
    let pro = [("x-api-key", "sk-pro")];
    for _ in 0..3 {
        assert_eq!(f.status("/", &pro), 200);
    }
    assert_eq!(f.status("/", &pro), 429);
    let free = [("x-api-key", "sk-free")];
    assert_eq!(f.status("/", &free), 200);
    assert_eq!(f.status("/", &free), 429);
    for _ in 0..5 {
        assert_eq!(f.status("/", &[("x-api-key", "sk-int"), ("x-tier", "internal")]), 200);
    }
}

#[test]
fn match_blocks_and_exempt_paths() {
    let mut r = per_key(1);
    r["match"] = json!({"path_prefix": "/v1/", "methods": ["POST"]});
    let f = fixture(json!({"rules": [r], "exempt_paths": ["/v1/health"]}));
    let k = [("x-api-key", "k")];
    let post = |path: &str| match f.eval("POST", path, &k, "1.1.1.1:1").reply {
        Reply::Continue { .. } => 200,
        Reply::Deny { status, .. } => status,
    };
    assert_eq!(post("/v1/x"), 200);
    assert_eq!(post("/v1/x"), 429);
    assert_eq!(f.status("/v1/x", &k), 200, "GET does not match");
    assert_eq!(post("/v2/x"), 200, "other prefix does not match");
    assert_eq!(post("/v1/health"), 200, "exempt");
}

#[test]
fn shadow_rules_report_but_never_deny() {
    let mut r = per_key(1);
    r["strategy"] = json!("shadow");
    let f = fixture(json!({"rules": [r]}));
    let k = [("x-api-key", "k")];
    f.eval("GET", "/", &k, "1.1.1.1:1");
    let eval = f.eval("GET", "/", &k, "1.1.1.1:1");
    assert!(matches!(eval.reply, Reply::Continue { .. }));
    assert_eq!(eval.rules[0].status, RuleStatus::ShadowDenied);
}

#[test]
fn headers_for_allowed_and_denied_requests() {
    let f = fixture(json!({"response": {"headers": ["ietf", "x-ratelimit", "openai"]},
        "rules": [per_key(2), {"name": "global", "algorithm": "fixed_window", "limit": 100, "window": "1h"}]}));
    let k = [("x-api-key", "k")];
    let first = f.eval("GET", "/", &k, "1.1.1.1:1").reply;
    assert_eq!(header(&first, "ratelimit-policy"), Some("\"per-key\";q=2;w=60, \"global\";q=100;w=3600"));
    assert!(header(&first, "ratelimit").unwrap().starts_with("\"per-key\";r=1;t="));
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("2"), "most restrictive rule");
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), Some("2"));
    f.eval("GET", "/", &k, "1.1.1.1:1");
    let denied = f.eval("GET", "/", &k, "1.1.1.1:1").reply;
    match &denied {
        Reply::Deny { status: 429, body, .. } => {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["rule"], "per-key");
            assert_eq!(v["error"]["message"], "Rate limit exceeded: 2 per 1m");
        }
        other => panic!("{other:?}"),
    }
    let retry: u64 = header(&denied, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(header(&denied, "x-ratelimit-remaining"), Some("0"));
}

#[test]
fn disabled_filter_and_disabled_rules_pass_everything() {
    let f = fixture(json!({"enabled": false, "rules": [per_key(1)]}));
    for _ in 0..3 {
        assert_eq!(f.status("/", &[("x-api-key", "k")]), 200);
    }
    let mut r = per_key(1);
    r["enabled"] = json!(false);
    let f = fixture(json!({"rules": [r]}));
    for _ in 0..3 {
        assert_eq!(f.status("/", &[("x-api-key", "k")]), 200);
    }
}

#[test]
fn custom_status_and_message_placeholders() {
    let f =
        fixture(json!({"response": {"status": 503, "message": "{rule}: {limit}/{window}, retry in {retry_after}s"},
        "rules": [per_key(1)]}));
    let k = [("x-api-key", "k")];
    f.eval("GET", "/", &k, "1.1.1.1:1");
    match f.eval("GET", "/", &k, "1.1.1.1:1").reply {
        Reply::Deny { status: 503, body, .. } => assert!(body.contains("per-key: 1/1m, retry in "), "{body}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn static_allow_lists_skip_every_rule() {
    let f = fixture(json!({"allow": {"keys": ["sk-admin"], "ips": ["10.9.0.0/16"]}, "rules": [per_key(1)]}));
    for _ in 0..3 {
        assert_eq!(f.status("/", &[("x-api-key", "sk-admin")]), 200);
    }
    let from = |ip: &str| match f.eval("GET", "/", &[("x-api-key", "k")], ip).reply {
        Reply::Continue { .. } => 200,
        Reply::Deny { status, .. } => status,
    };
    assert_eq!(from("10.9.1.1:5"), 200);
    assert_eq!(from("10.9.1.1:5"), 200);
    assert_eq!(from("10.8.1.1:5"), 200);
    assert_eq!(from("10.8.1.1:5"), 429);
}

#[test]
fn x_ratelimit_describes_the_rule_with_the_smallest_share_left_or_the_denier() {
    let f = fixture(json!({"rules": [
        {"name": "rpm", "key": ["api_key"], "algorithm": "fixed_window", "limit": 8, "window": "1m"},
        {"name": "big", "key": ["api_key"], "algorithm": "fixed_window", "limit": 10, "window": "1m"}
    ]}));
    let k = [("x-api-key", "k")];
    // After one request: rpm 7/8 left, big 9/10 left: rpm has the smaller share.
    let reply = f.eval("GET", "/", &k, "1.1.1.1:1").reply;
    assert_eq!(header(&reply, "x-ratelimit-limit"), Some("8"));
    let f = fixture(json!({"rules": [
        {"name": "rpm", "key": ["api_key"], "algorithm": "fixed_window", "limit": 8, "window": "1m"},
        {"name": "small", "key": ["api_key"], "algorithm": "fixed_window", "limit": 2, "window": "1m"}
    ]}));
    let reply = f.eval("GET", "/", &k, "1.1.1.1:1").reply;
    assert_eq!(header(&reply, "x-ratelimit-limit"), Some("2"), "1/2 left is less than 7/8");
    f.eval("GET", "/", &k, "1.1.1.1:1");
    let denied = f.eval("GET", "/", &k, "1.1.1.1:1").reply;
    assert_eq!(header(&denied, "x-ratelimit-limit"), Some("2"), "the denier");
}

#[test]
fn x_ratelimit_compares_shares_across_units() {
    let config: serde_json::Value = serde_json::from_str(include_str!("../../examples/demo.json")).unwrap();
    let f = fixture(config);
    let body = json!({"model": "gpt-4o", "max_tokens": 4000, "messages": []});
    let hs = headers(&[("authorization", "Bearer sk-demo-pro-2")]);
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: &hs, peer: None, body: Some(&body) };
    let e = f.limiter.evaluate(&f.store, &req, T0, true, &Overrides::default());
    // 7 of 8 requests left, 6000 of 10000 tokens left: the tokens rule is the tighter.
    assert_eq!(header(&e.reply, "x-ratelimit-remaining"), Some("6000"));
    assert_eq!(header(&e.reply, "x-ratelimit-limit"), Some("10000"));
}

#[test]
fn every_sdk_key_source_is_one_counter_by_default() {
    let f = fixture(json!({"rules": [per_key(5)]}));
    for (path, hs) in [
        ("/", vec![("authorization", "Bearer sk-g")]),
        ("/", vec![("x-api-key", "sk-g")]),
        ("/", vec![("api-key", "sk-g")]),
        ("/v1beta/models/m:generateContent", vec![("x-goog-api-key", "sk-g")]),
        ("/v1beta/models/m:generateContent?key=sk-g", vec![]),
    ] {
        assert_eq!(f.status(path, &hs), 200, "{path} {hs:?}");
    }
    assert_eq!(f.status("/?api_key=sk-g", &[]), 429, "the sixth request of the same key");
    assert_eq!(f.status("/?key=sk-other", &[]), 200, "another Gemini key has its own counter");
}

fn denial_body(config: serde_json::Value, path: &str) -> serde_json::Value {
    let f = fixture(config);
    f.eval("POST", path, &[("x-api-key", "sk-1")], "1.2.3.4:1");
    match f.eval("POST", path, &[("x-api-key", "sk-1")], "1.2.3.4:1").reply {
        Reply::Deny { body, .. } => serde_json::from_str(&body).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn denials_take_the_shape_of_the_provider_the_client_called() {
    let config = json!({"rules": [per_key(1)]});
    let openai = denial_body(config.clone(), "/v1/chat/completions");
    assert_eq!(openai["error"]["code"], "rate_limit_exceeded");
    assert_eq!(openai["error"]["type"], "requests");
    assert_eq!(openai["error"]["rule"], "per-key");
    let anthropic = denial_body(config.clone(), "/v1/messages?beta=true");
    assert_eq!(anthropic["type"], "error");
    assert_eq!(anthropic["error"]["type"], "rate_limit_error");
    assert_eq!(anthropic["error"]["rule"], "per-key");
    assert!(anthropic["error"]["message"].as_str().unwrap().starts_with("Rate limit exceeded"));
    for method in ["generateContent", "streamGenerateContent"] {
        let gemini = denial_body(config.clone(), &format!("/v1beta/models/gemini-2.0-flash:{method}?alt=sse"));
        assert_eq!(gemini["error"]["code"], 429);
        assert_eq!(gemini["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(gemini["error"]["details"][0]["metadata"]["rule"], "per-key");
        assert_eq!(gemini["error"]["details"][1]["retryDelay"], "40s", "T0 is 40 s before the window ends");
    }
    // A forced format applies to every path.
    let forced = json!({"response": {"format": "anthropic"}, "rules": [per_key(1)]});
    assert_eq!(denial_body(forced, "/v1/chat/completions")["error"]["type"], "rate_limit_error");
    let forced = json!({"response": {"format": "openai"}, "rules": [per_key(1)]});
    assert_eq!(denial_body(forced, "/v1/messages")["error"]["type"], "requests");
}

#[test]
fn refusals_take_the_shape_too_and_an_unknown_model_is_its_own_status() {
    let f = fixture(json!({"llm": {"prices": {"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 1}}},
        "rules": [{"name": "budget", "unit": "cost_usd", "algorithm": "fixed_window", "limit": 1, "window": "1d"}]}));
    let hs = headers(&[]);
    let body = json!({"model": "mystery", "max_tokens": 1});
    let req = Request { method: "POST", path: "/v1/messages", headers: &hs, peer: None, body: Some(&body) };
    let eval = f.limiter.evaluate(&f.store, &req, T0, true, &Overrides::default());
    assert_eq!(eval.rules[0].status, RuleStatus::UnknownModel);
    match eval.reply {
        Reply::Deny { status: 400, body, .. } => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["code"], "unknown_model");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn anthropic_headers_describe_each_unit_with_rfc3339_resets() {
    let f = fixture(json!({"response": {"headers": ["anthropic"]}, "rules": [per_key(10)]}));
    let eval = f.eval("POST", "/v1/messages", &[("x-api-key", "sk-1")], "1.2.3.4:1");
    assert_eq!(header(&eval.reply, "anthropic-ratelimit-requests-limit"), Some("10"));
    assert_eq!(header(&eval.reply, "anthropic-ratelimit-requests-remaining"), Some("9"));
    // T0 = 2023-11-14T22:13:20Z; the 1-minute window ends at 22:14:00.
    assert_eq!(header(&eval.reply, "anthropic-ratelimit-requests-reset"), Some("2023-11-14T22:14:00Z"));
    assert_eq!(header(&eval.reply, "anthropic-ratelimit-tokens-limit"), None, "no token rule applied");
}

fn llm_rules() -> serde_json::Value {
    json!({"rules": [
        per_key(1),
        {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 1000,
         "window": "1m", "match": {"path_prefix": "/v1/chat/"}},
        {"name": "by-user", "key": ["body:/user"], "algorithm": "fixed_window", "limit": 5, "window": "1m",
         "match": {"methods": ["PUT"]}},
    ]})
}

#[test]
fn only_requests_a_body_rule_can_match_are_buffered() {
    let f = fixture(llm_rules());
    let hs = headers(&[]);
    let plan = |method, path| f.limiter.body_plan(&Request { method, path, headers: &hs, peer: None, body: None });
    let chat = plan("POST", "/v1/chat/completions");
    assert_eq!(chat, BodyPlan { buffer: true, reads_usage: true, may_rewrite: true });
    assert_eq!(plan("PUT", "/v1/users"), BodyPlan { buffer: true, reads_usage: false, may_rewrite: false });
    assert_eq!(plan("POST", "/v1/files"), BodyPlan::default(), "no body rule matches this route and method");
    let no_usage = fixture(json!({"llm": {"include_usage": false}, "rules": [llm_rules()["rules"][1]]}));
    let plan = no_usage.limiter.body_plan(&Request {
        method: "POST",
        path: "/v1/chat/completions",
        headers: &hs,
        peer: None,
        body: None,
    });
    assert!(plan.buffer && !plan.may_rewrite, "without include_usage the body is left as it is");
}

#[test]
fn the_precheck_denies_on_header_rules_and_charges_nothing() {
    let f = fixture(llm_rules());
    let hs = headers(&[("x-api-key", "sk-p")]);
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: &hs, peer: None, body: None };
    let none = Overrides::default();
    assert!(f.limiter.precheck(&f.store, &req, T0, true, &none).is_none(), "nothing denies yet");
    assert!(f.limiter.precheck(&f.store, &req, T0, true, &none).is_none(), "and the precheck charged nothing");
    let body = json!({"model": "gpt-4o", "max_tokens": 10});
    let with_body = Request { body: Some(&body), ..req };
    assert!(matches!(f.limiter.evaluate(&f.store, &with_body, T0, true, &none).reply, Reply::Continue { .. }));
    let denied = f.limiter.precheck(&f.store, &req, T0, true, &none).expect("the per-key rule is spent");
    match denied.reply {
        Reply::Deny { status: 429, body, .. } => assert!(body.contains("\"rule\":\"per-key\"")),
        other => panic!("{other:?}"),
    }
    let names: Vec<&str> = denied.rules.iter().map(|o| f.limiter.config.rules[o.rule].name.as_str()).collect();
    assert_eq!(names, ["per-key"], "body rules are left to the decision");
}

#[test]
fn the_precheck_reports_a_degrade_so_its_marker_goes_with_the_headers() {
    let f = fixture(json!({"rules": [{"name": "premium", "key": ["api_key"], "algorithm": "fixed_window",
        "limit": 1, "window": "1h", "strategy": "degrade",
        "degrade": {"set_model": "gpt-4o-mini", "add_header": "x-degraded"}}]}));
    let hs = headers(&[("x-api-key", "sk-d")]);
    let req = Request { method: "POST", path: "/v1/chat/completions", headers: &hs, peer: None, body: None };
    let none = Overrides::default();
    assert!(f.limiter.body_plan(&req).may_rewrite);
    assert!(f.limiter.precheck(&f.store, &req, T0, true, &none).is_none());
    f.limiter.evaluate(&f.store, &req, T0, true, &none);
    let eval = f.limiter.precheck(&f.store, &req, T0, true, &none).expect("over its limit: degraded");
    assert_eq!(eval.degraded_by, Some(0));
    assert!(matches!(eval.reply, Reply::Continue { .. }));
}
