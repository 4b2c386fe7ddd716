//! LLM limits through the real Envoy and the mock LLM: tokens reserved then settled with the
//! usage the upstream reported (JSON and SSE, split anywhere), dollar budgets, concurrency
//! released however a stream ends, and degrade; each in both Envoy modes (with and without
//! `allow_on_headers_stop_iteration`).

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::{Envoy, EnvoyMode, MockLlm};

fn chat(envoy: &Envoy, key: &str, max_tokens: u64, prompt_tokens: u64) -> Response {
    let body = json!({"model": "gpt-4o", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]});
    Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
        .header("authorization", &format!("Bearer {key}"))
        .header("x-mock-prompt-tokens", &prompt_tokens.to_string())
        .send()
        .unwrap()
}

fn tpm(limit: u64) -> String {
    // The counts below must all land in one window.
    tollgate_e2e::away_from_window_edge(Duration::from_secs(60), Duration::from_secs(15));
    json!({"response": {"headers": ["ietf", "openai"]},
           "rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window",
                      "limit": limit, "window": "1m"}]})
    .to_string()
}

#[test]
fn a_tokens_per_minute_rule_admits_ten_100_token_responses_and_denies_the_eleventh() {
    for mode in EnvoyMode::BOTH {
        a_tokens_per_minute_rule_admits_ten_100_token_responses_and_denies_the_eleventh_in(mode);
    }
}

fn a_tokens_per_minute_rule_admits_ten_100_token_responses_and_denies_the_eleventh_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone_in(mode, &tpm(1000), llm.port);
    for i in 0..10 {
        let r = chat(&envoy, "sk-t", 100, 0);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-mock-usage"), Some("0,100"));
        envoy.wait_settled();
    }
    let r = chat(&envoy, "sk-t", 100, 0);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "tokens");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
}

#[test]
fn the_real_usage_replaces_the_reservation() {
    for mode in EnvoyMode::BOTH {
        the_real_usage_replaces_the_reservation_in(mode);
    }
}

fn the_real_usage_replaces_the_reservation_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone_in(mode, &tpm(10_000), llm.port);
    // Reserve 500, use 30 + 20 = 50.
    let body = json!({"model": "gpt-4o", "max_tokens": 500, "messages": []});
    let r = Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
        .header("x-api-key", "sk-u")
        .header("x-mock-prompt-tokens", "30")
        .header("x-mock-completion-tokens", "20")
        .send()
        .unwrap();
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("9500"), "the reservation, before the response");
    envoy.wait_settled();
    let r = chat(&envoy, "sk-u", 1, 0);
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("9949"), "10000 - 50 used - 1 reserved");
}

#[test]
fn concurrent_requests_cannot_all_slip_under_the_limit() {
    for mode in EnvoyMode::BOTH {
        concurrent_requests_cannot_all_slip_under_the_limit_in(mode);
    }
}

fn concurrent_requests_cannot_all_slip_under_the_limit_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone_in(mode, &tpm(1000), llm.port);
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| {
                let body = json!({"model": "gpt-4o", "max_tokens": 100, "messages": []});
                let r = Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
                    .header("x-api-key", "sk-c")
                    .header("x-mock-delay-ms", "300")
                    .send()
                    .unwrap();
                if r.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let ok = ok.load(Ordering::SeqCst);
    assert!((9..=10).contains(&ok), "admitted {ok} of 20 with max_tokens 100 against 1000 TPM");
}

fn stream_usage_is_charged_exactly(mode: EnvoyMode, path: &str, body: serde_json::Value, split: Option<usize>) {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone_in(mode, &tpm(100_000), llm.port);
    let mut req = Request::post(&envoy.url(path), &body.to_string())
        .header("x-api-key", "sk-s")
        .header("x-mock-prompt-tokens", "37")
        .header("x-mock-completion-tokens", "55");
    if let Some(n) = split {
        req = req.header("x-mock-split", &n.to_string());
    }
    let r = req.send().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/event-stream"));
    envoy.wait_settled();
    let next = chat(&envoy, "sk-s", 1, 0);
    assert_eq!(
        next.header("x-ratelimit-remaining-tokens"),
        Some("99907"),
        "{path} split {split:?}: 100000 - (37 + 55) - 1 reserved"
    );
}

#[test]
fn streamed_openai_usage_is_charged_exactly_even_split_mid_line() {
    for mode in EnvoyMode::BOTH {
        streamed_openai_usage_is_charged_exactly_even_split_mid_line_in(mode);
    }
}

fn streamed_openai_usage_is_charged_exactly_even_split_mid_line_in(mode: EnvoyMode) {
    // No include_usage in the request: Tollgate asks for it.
    let body = json!({"model": "gpt-4o", "max_tokens": 500, "stream": true, "messages": []});
    for split in [None, Some(1), Some(7), Some(64)] {
        stream_usage_is_charged_exactly(mode, "/v1/chat/completions", body.clone(), split);
    }
}

#[test]
fn streamed_anthropic_usage_is_charged_exactly_even_split_mid_line() {
    for mode in EnvoyMode::BOTH {
        streamed_anthropic_usage_is_charged_exactly_even_split_mid_line_in(mode);
    }
}

fn streamed_anthropic_usage_is_charged_exactly_even_split_mid_line_in(mode: EnvoyMode) {
    let body = json!({"model": "claude", "max_tokens": 500, "stream": true, "messages": []});
    for split in [None, Some(3), Some(50)] {
        stream_usage_is_charged_exactly(mode, "/v1/messages", body.clone(), split);
    }
}

#[test]
fn a_daily_dollar_budget_stops_at_the_right_request() {
    for mode in EnvoyMode::BOTH {
        a_daily_dollar_budget_stops_at_the_right_request_in(mode);
    }
}

fn a_daily_dollar_budget_stops_at_the_right_request_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let config = json!({
        "llm": {"prices": {"gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}},
        "rules": [{"name": "budget", "key": ["api_key"], "unit": "cost_usd", "algorithm": "fixed_window",
                   "limit": 0.01, "window": "1d"}]});
    tollgate_e2e::away_from_window_edge(Duration::from_secs(86_400), Duration::from_secs(30));
    let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
    // Each request: 200 in ($0.0005) + 100 out ($0.001) = $0.0015; reserve $0.001 (max_tokens).
    // Admitted while spent + 0.001 <= 0.01: requests 1..=7 (spent 0.009 before the 7th).
    for i in 1..=7 {
        let r = chat(&envoy, "sk-b", 100, 200);
        assert_eq!(r.status, 200, "request {i}");
        envoy.wait_settled();
    }
    let r = chat(&envoy, "sk-b", 100, 200);
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["error"]["type"], "cost");
    assert_eq!(v["error"]["code"], "insufficient_quota");
    assert_eq!(r.header("retry-after"), None, "a spent budget has no Retry-After");
}

#[test]
fn unknown_models_are_refused_by_cost_rules_without_a_default_price() {
    for mode in EnvoyMode::BOTH {
        unknown_models_are_refused_by_cost_rules_without_a_default_price_in(mode);
    }
}

fn unknown_models_are_refused_by_cost_rules_without_a_default_price_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let config = json!({"llm": {"prices": {"gpt-4o": {"input_per_mtok": 1, "output_per_mtok": 1}}},
        "rules": [{"name": "budget", "unit": "cost_usd", "algorithm": "fixed_window", "limit": 1, "window": "1d"}]});
    let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
    let body = json!({"model": "mystery", "max_tokens": 1, "messages": []});
    let r = Request::post(&envoy.url("/v1/chat/completions"), &body.to_string()).send().unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "unknown_model");
}

/// Start a slow stream and hang up after the first bytes.
fn abort_mid_stream(envoy: &Envoy) {
    let body = json!({"model": "gpt-4o", "max_tokens": 10, "stream": true, "messages": []}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-key: sk-a\r\ncontent-type: application/json\r\n\
         x-mock-stream-chunks: 50\r\nx-mock-chunk-delay-ms: 100\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
}

#[test]
fn aborted_streams_release_their_concurrency_slots() {
    for mode in EnvoyMode::BOTH {
        aborted_streams_release_their_concurrency_slots_in(mode);
    }
}

fn aborted_streams_release_their_concurrency_slots_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "conc", "key": ["api_key"], "unit": "concurrent", "limit": 10}]});
    let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
    // 50 streams, at most 5 at a time, each cut by the client after its first bytes.
    std::thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                for _ in 0..10 {
                    abort_mid_stream(&envoy);
                }
            });
        }
    });
    envoy.wait_settled();
    // Every slot was given back: 10 slow requests fit at once, an 11th does not.
    let ok = AtomicUsize::new(0);
    let denied = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..11 {
            let (ok, denied, envoy) = (&ok, &denied, &envoy);
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(if i == 10 { 300 } else { 0 }));
                let r = Request::get(&envoy.url("/slow"))
                    .header("x-api-key", "sk-a")
                    .header("x-mock-delay-ms", "1000")
                    .send()
                    .unwrap();
                match r.status {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    429 => {
                        assert_eq!(r.json()["error"]["type"], "concurrent");
                        denied.fetch_add(1, Ordering::SeqCst)
                    }
                    s => panic!("status {s}"),
                };
            });
        }
    });
    assert_eq!((ok.load(Ordering::SeqCst), denied.load(Ordering::SeqCst)), (10, 1));
}

#[test]
fn degrade_rewrites_the_model_the_upstream_sees() {
    for mode in EnvoyMode::BOTH {
        degrade_rewrites_the_model_the_upstream_sees_in(mode);
    }
}

fn degrade_rewrites_the_model_the_upstream_sees_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "premium", "key": ["api_key"], "match": {"path_prefix": "/v1/"},
        "algorithm": "fixed_window", "limit": 1, "window": "1h", "strategy": "degrade",
        "degrade": {"set_model": "gpt-4o-mini", "add_header": "x-tollgate-degraded"}}]});
    let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
    let send = || {
        let body = json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]});
        Request::post(&envoy.url("/v1/chat/completions"), &body.to_string()).header("x-api-key", "sk-d").send().unwrap()
    };
    let first = send();
    assert_eq!(first.json()["model"], "gpt-4o");
    let second = send();
    assert_eq!(second.status, 200, "degrade lets the request through");
    assert_eq!(second.json()["model"], "gpt-4o-mini");
    // The echo endpoint shows the marker header and the rewritten body the upstream got.
    let body = json!({"model": "gpt-4o", "messages": []});
    let echo =
        Request::post(&envoy.url("/v1/echo"), &body.to_string()).header("x-api-key", "sk-d").send().unwrap().json();
    assert_eq!(echo["headers"]["x-tollgate-degraded"], "premium");
    assert_eq!(echo["json"]["model"], "gpt-4o-mini");
    match mode {
        EnvoyMode::StopIteration => assert_eq!(echo["headers"]["content-length"], echo["body_bytes"].to_string()),
        // The headers left before the body: the rewritten body goes chunked.
        EnvoyMode::WasmPlugin => assert_eq!(echo["headers"]["transfer-encoding"], "chunked"),
    }
}

#[test]
fn per_model_rules_match_the_body_model() {
    for mode in EnvoyMode::BOTH {
        per_model_rules_match_the_body_model_in(mode);
    }
}

fn per_model_rules_match_the_body_model_in(mode: EnvoyMode) {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "gpt4o", "key": ["api_key"], "match": {"models": ["gpt-4o"]},
        "algorithm": "fixed_window", "limit": 1, "window": "1h"}]});
    let envoy = Envoy::standalone_in(mode, &config.to_string(), llm.port);
    let send = |model: &str| {
        let body = json!({"model": model, "max_tokens": 1, "messages": []});
        Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
            .header("x-api-key", "sk-m")
            .send()
            .unwrap()
            .status
    };
    assert_eq!(send("gpt-4o"), 200);
    assert_eq!(send("gpt-4o"), 429);
    assert_eq!(send("gpt-4o-mini"), 200, "another model is not limited by this rule");
}

/// The body with the mock's per-request id (`...-mock-N`, N its request count) made neutral,
/// so that two answers to the same request compare equal.
fn neutral_ids(r: &Response) -> String {
    let n = r.header("x-mock-request-count").unwrap_or_default();
    r.text().replace(&format!("-mock-{n}\""), "-mock-N\"")
}

/// Poll `key`'s tokens counter (each probe reserves and uses 1 token) until it shows `used`.
fn assert_tokens_charged(envoy: &Envoy, key: &str, used: u64, limit: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut probes = 0;
    loop {
        let r = chat(envoy, key, 1, 0);
        probes += 1;
        let left: u64 = r.header("x-ratelimit-remaining-tokens").and_then(|v| v.parse().ok()).unwrap();
        if limit - left - probes == used {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{key}: charged {} tokens, not {used}", limit - left - probes);
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn the_usage_chunk_tollgate_asked_for_is_withheld_from_the_client_and_still_charged_exactly() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&tpm(100_000), llm.port);
    let send = |url: String, body: &serde_json::Value, key: &str, split: Option<&str>| {
        let mut req = Request::post(&url, &body.to_string())
            .header("x-api-key", key)
            .header("x-mock-prompt-tokens", "37")
            .header("x-mock-completion-tokens", "55")
            // One byte per write: no pause (a thousand writes); others: Envoy reads each piece.
            .header("x-mock-chunk-delay-ms", if split == Some("1") { "0" } else { "1" });
        if let Some(s) = split {
            req = req.header("x-mock-split", s);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r
    };
    let upstream = |path: &str| format!("http://127.0.0.1:{}{path}", llm.port);
    for (path, prompt) in
        [("/v1/chat/completions", json!({"messages": []})), ("/v1/completions", json!({"prompt": "x"}))]
    {
        let mut not_asked = json!({"model": "gpt-4o", "max_tokens": 500, "stream": true});
        not_asked.as_object_mut().unwrap().extend(prompt.as_object().unwrap().clone());
        let mut asked = not_asked.clone();
        asked["stream_options"] = json!({"include_usage": true});
        // What the upstream sends once include_usage is on, and that stream without its
        // usage-only chunk (the one event with "choices":[]).
        let full = neutral_ids(&send(upstream(path), &asked, "direct", None));
        let usage_chunk = full.split_inclusive("\n\n").find(|e| e.contains("\"choices\":[]")).unwrap().to_string();
        assert!(usage_chunk.contains("\"total_tokens\":92"), "{usage_chunk}");
        let expected = full.replacen(&usage_chunk, "", 1);
        for split in [None, Some("1"), Some("awkward"), Some("random:3")] {
            let key = format!("sk-strip{}-{}", path.replace('/', "-"), split.unwrap_or("none"));
            let r = send(envoy.url(path), &not_asked, &key, split);
            let got = neutral_ids(&r);
            assert_eq!(got, expected, "{path} split {split:?}: the client gets the stream without the usage chunk");
            // Only that chunk: the "usage":null members of the other chunks stay (the upstream
            // adds them once include_usage is on).
            assert!(got.contains("\"usage\":null") && !got.contains("total_tokens"), "{got}");
            assert_tokens_charged(&envoy, &key, 37 + 55, 100_000);
        }
        // A client that asked for the usage itself gets it, unchanged.
        let key = format!("sk-asked{}", path.replace('/', "-"));
        let r = send(envoy.url(path), &asked, &key, Some("awkward"));
        assert_eq!(neutral_ids(&r), full, "{path}: asked for usage");
        assert_tokens_charged(&envoy, &key, 37 + 55, 100_000);
    }
}
