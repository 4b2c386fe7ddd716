//! Key sources through the real Envoy: JWT claims, cookies, query, body fields (with the body
//! cap), X-Forwarded-For hops, composite keys and missing-key policies.

use serde_json::json;
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::keys::{jwt, per_key_config};
use tollgate_e2e::{Envoy, MockLlm};

fn statuses(reqs: Vec<Request>) -> Vec<u16> {
    reqs.into_iter().map(|r| r.send().unwrap().status).collect()
}

#[test]
fn jwt_claims_key_requests_and_malformed_tokens_count_as_missing() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["jwt:sub"], 1, json!({})), llm.port);
    let get = |auth: &str| Request::get(&envoy.url("/")).header("authorization", auth);
    let alice = jwt(&json!({"sub": "alice"}));
    let bob = jwt(&json!({"sub": "bob"}));
    assert_eq!(statuses(vec![get(&alice), get(&alice), get(&bob)]), vec![200, 429, 200]);
    // Malformed tokens lack the key: they share the missing-key counter.
    assert_eq!(statuses(vec![get("Bearer not.a.jwt!"), get("Bearer x")]), vec![200, 429]);
}

#[test]
fn cookie_query_and_forwarded_for_keys() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(
        &per_key_config(&["cookie:session", "query:team", "ip"], 1, json!({"client_ip": {"trusted_hops": 1}})),
        llm.port,
    );
    let req = |path: &str, cookie: &str, xff: &str| {
        Request::get(&envoy.url(path)).header("cookie", cookie).header("x-forwarded-for", xff)
    };
    let got = statuses(vec![
        req("/?team=a", "session=1", "9.9.9.9, 1.1.1.1"),
        req("/?team=a", "x=2; session=1", "8.8.8.8, 1.1.1.1"), // same cookie, team and rightmost hop
        req("/?team=b", "session=1", "1.1.1.1"),
        req("/?team=a", "session=2", "1.1.1.1"),
        req("/?team=a", "session=1", "1.1.1.2"),
    ]);
    assert_eq!(got, vec![200, 429, 200, 200, 200]);
}

#[test]
fn body_field_keys_and_the_body_cap() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["body:/user/id"], 1, json!({"max_body_bytes": 4096})), llm.port);
    let post = |body: String| Request::post(&envoy.url("/v1/jobs"), &body);
    let small = |id: &str| json!({"user": {"id": id}, "pad": "x"}).to_string();
    assert_eq!(statuses(vec![post(small("u1")), post(small("u1")), post(small("u2"))]), vec![200, 429, 200]);
    // Over the cap the key is missing (shared counter), and the request still goes through.
    let big = |id: &str| json!({"user": {"id": id}, "pad": "x".repeat(10_000)}).to_string();
    let r: Response = post(big("u3")).send().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], big("u3").len(), "the upstream got the whole body");
    assert_eq!(post(big("u4")).send().unwrap().status, 429, "both over the cap: one missing-key counter");
    // Not JSON: the key is missing too.
    assert_eq!(post("not json".into()).send().unwrap().status, 429);
}

#[test]
fn missing_key_deny_answers_403_and_skip_lets_through() {
    let llm = MockLlm::start();
    let config = json!({"rules": [
        {"name": "need-user", "key": ["header:x-user"], "missing_key": "deny", "match": {"path_prefix": "/private"},
         "algorithm": "gcra", "limit": 100, "window": "1m"},
        {"name": "optional", "key": ["header:x-team"], "missing_key": "skip", "algorithm": "gcra", "limit": 1, "window": "1m"}
    ]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let r = Request::get(&envoy.url("/private/x")).send().unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "missing_key");
    assert_eq!(r.json()["error"]["rule"], "need-user");
    assert_eq!(
        statuses(vec![Request::get(&envoy.url("/public")), Request::get(&envoy.url("/public"))]),
        vec![200, 200]
    );
    let team = || Request::get(&envoy.url("/public")).header("x-team", "t");
    assert_eq!(statuses(vec![team(), team()]), vec![200, 429]);
}

#[test]
fn usage_from_a_configured_response_header() {
    let llm = MockLlm::start();
    // The mock numbers its responses in x-mock-request-count: read as total tokens.
    let config = json!({"llm": {"usage_header": "x-mock-request-count", "estimate": "fixed:1"},
        "response": {"headers": ["openai"]},
        "rules": [{"name": "t", "unit": "tokens", "algorithm": "fixed_window", "limit": 100, "window": "1h"}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let r = Request::post(&envoy.url("/v1/echo"), "{}").send().unwrap();
    let n: u64 = r.header("x-mock-request-count").unwrap().parse().unwrap();
    envoy.wait_settled();
    let next = Request::post(&envoy.url("/v1/echo"), "{}").send().unwrap();
    let expected = 100 - n - 1;
    assert_eq!(next.header("x-ratelimit-remaining-tokens"), Some(expected.to_string().as_str()));
}

#[test]
fn header_changes_refused_after_the_headers_left_never_kill_the_worker() {
    // Without stop-iteration, a degrade rule's header change comes after the headers went
    // upstream when only the body tells; the host refuses it and the filter must carry on (a
    // panic would make the worker answer 503 to everything).
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "d", "match": {"path_prefix": "/d/", "models": ["big"]},
        "algorithm": "fixed_window", "limit": 1, "window": "1m", "strategy": "degrade",
        "degrade": {"set_model": "small", "add_header": "x-degraded"}}]});
    let mut opts = tollgate_e2e::EnvoyOptions::standalone(&config.to_string(), llm.port)
        .in_mode(tollgate_e2e::EnvoyMode::WasmPlugin);
    opts.concurrency = 1;
    let envoy = Envoy::start(opts);
    for i in 0..3 {
        let r = Request::post(&envoy.url("/d/x"), r#"{"model": "big"}"#).send().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(Request::get(&envoy.url("/other")).send().unwrap().status, 200, "the worker still serves");
    assert!(!envoy.log().contains("panicked"), "no panic in the filter");
}
