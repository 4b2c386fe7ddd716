//! Hardening, requests at and beyond the limits, through the real Envoy: huge and numerous
//! headers, long API keys, header values and JSON bodies that are not UTF-8, malformed and
//! deeply nested JSON, bodies at and beyond `max_body_bytes` for body keys and LLM rules.
//! After each, Envoy still serves, the counts are what the README says, and its log has no
//! panic, wasm trap or crashed plugin.

use serde_json::json;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;
use tollgate_e2e::http::{read_response, Request, Response};
use tollgate_e2e::keys::per_key_config;
use tollgate_e2e::{Envoy, MockLlm};

/// Send raw bytes as one request and read the answer.
fn raw(envoy: &Envoy, bytes: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    read_response(&mut BufReader::new(s))
}

/// A raw POST with `headers` (already formatted lines) and `body`.
fn raw_post(envoy: &Envoy, path: &str, headers: &[u8], body: &[u8]) -> Response {
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n", body.len())
        .into_bytes();
    req.extend_from_slice(headers);
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    raw(envoy, &req).unwrap()
}

#[test]
fn long_api_keys_huge_headers_and_many_headers() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["api_key"], 3, json!({})), llm.port);
    // An 8 KiB API key is a key like any other: 3 admitted, then limited; a key that differs
    // in its last byte has its own counter.
    let long_a = format!("sk-{}a", "x".repeat(8 * 1024));
    let long_b = format!("sk-{}b", "x".repeat(8 * 1024));
    let got: Vec<u16> = (0..4).map(|_| envoy.status_with_key("/x", &long_a)).collect();
    assert_eq!(got, vec![200, 200, 200, 429]);
    assert_eq!(envoy.status_with_key("/x", &long_b), 200);

    // A header value just under Envoy's 60 KiB header limit reaches the filter and the
    // upstream; a 60 KiB value is refused by Envoy itself (431) before any filter runs.
    let big = |n: usize, key: &str| {
        Request::get(&envoy.url("/x")).header("x-api-key", key).header("x-big", &"v".repeat(n)).send().unwrap()
    };
    let r = big(58 * 1024, "sk-big");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-big"].as_str().map(str::len), Some(58 * 1024));
    assert_eq!(big(60 * 1024, "sk-big").status, 431);
    // The refused request was not counted: sk-big has 2 of its 3 left.
    assert_eq!(envoy.status_with_key("/x", "sk-big"), 200);
    assert_eq!(envoy.status_with_key("/x", "sk-big"), 200);
    assert_eq!(envoy.status_with_key("/x", "sk-big"), 429);

    // Envoy accepts up to 100 headers; above that it answers 431 itself.
    let many = |n: usize, key: &str| {
        let mut r = Request::get(&envoy.url("/x")).header("x-api-key", key);
        for i in 0..n {
            r = r.header(&format!("x-h{i}"), "v");
        }
        r.send().unwrap()
    };
    let r = many(90, "sk-many");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(many(100, "sk-many").status, 431);
    assert_eq!(envoy.status_with_key("/x", "sk-many"), 200);
    assert_eq!(envoy.status_with_key("/x", "sk-many"), 200);
    assert_eq!(envoy.status_with_key("/x", "sk-many"), 429);
    envoy.assert_clean_log();
}

#[test]
fn header_values_that_are_not_utf8() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["api_key"], 2, json!({"debug": true})), llm.port);
    // Bytes 0x80..0xFF are allowed in HTTP/1 header values (obs-text); the filter reads them
    // without trapping, and a key made of them is limited like any other.
    let key = b"x-api-key: sk-\xff\xfe\x80abc\r\n";
    let got: Vec<u16> = (0..3).map(|_| raw_post(&envoy, "/x", key, b"{}").status).collect();
    assert_eq!(got, vec![200, 200, 429]);
    // Such bytes in a cookie, a JWT or an X-Forwarded-For list are just as harmless.
    let r = raw_post(
        &envoy,
        "/x",
        b"x-api-key: sk-ok\r\ncookie: a=\xff; session=\xc3\x28\r\nauthorization: Bearer \xff.\xfe.\xfd\r\nx-forwarded-for: \xff, 1.2.3.4\r\n",
        b"{}",
    );
    // `authorization` comes first among the API key headers: its value (not UTF-8) is the key.
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-tollgate-rules").is_some());
    assert_eq!(envoy.status_with_key("/x", "sk-fresh"), 200);
    envoy.assert_clean_log();
}

/// Header values that are not UTF-8 are kept byte for byte (`request::header_text` escapes each
/// invalid byte), so two keys that differ only in such bytes have their own counters. (Before,
/// they were decoded lossily: `sk-\xff` and `sk-\xfe` both became `sk-\u{fffd}`, one counter.)
#[test]
fn keys_that_differ_only_in_non_utf8_bytes_have_their_own_counters() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["api_key"], 1, json!({})), llm.port);
    assert_eq!(raw_post(&envoy, "/x", b"x-api-key: sk-\xff\r\n", b"{}").status, 200);
    assert_eq!(raw_post(&envoy, "/x", b"x-api-key: sk-\xfe\r\n", b"{}").status, 200, "another key, its own counter");
    assert_eq!(raw_post(&envoy, "/x", b"x-api-key: sk-\xff\r\n", b"{}").status, 429, "the first key is still limited");
    assert_eq!(
        raw_post(&envoy, "/x", "x-api-key: sk-\u{fffd}\r\n".as_bytes(), b"{}").status,
        200,
        "a literal U+FFFD is yet another key"
    );
    envoy.assert_clean_log();
}

#[test]
fn bodies_that_are_not_utf8_malformed_or_deeply_nested() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["body:/user/id"], 1, json!({"max_body_bytes": 65536})), llm.port);
    let post = |body: &[u8]| raw_post(&envoy, "/v1/jobs", b"content-type: application/json\r\n", body);
    // A JSON string that is not UTF-8 is not JSON: the key is missing (one shared counter).
    let r = post(b"{\"user\":{\"id\":\"\xff\xfe\"}}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_bytes"], 20, "the upstream got the bytes untouched");
    assert_eq!(post(b"{\"user\":{\"id\":\"u1\"").status, 429, "truncated JSON: the same missing-key counter");
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    assert_eq!(post(deep.as_bytes()).status, 429, "nesting beyond serde_json's limit: missing key");
    assert_eq!(post(b"\x00\x01\x02").status, 429);
    // Valid bodies are still keyed one by one.
    assert_eq!(post(br#"{"user":{"id":"u1"}}"#).status, 200);
    assert_eq!(post(br#"{"user":{"id":"u1"}}"#).status, 429);
    assert_eq!(post(br#"{"user":{"id":"u2"},"user":{"id":"u3"}}"#).status, 200, "duplicate members: the last wins");
    assert_eq!(post(br#"{"user":{"id":"u3"}}"#).status, 429);
    envoy.assert_clean_log();
}

#[test]
fn body_keys_at_and_beyond_max_body_bytes() {
    let llm = MockLlm::start();
    let cap = 4096;
    let envoy = Envoy::standalone(&per_key_config(&["body:/user/id"], 1, json!({"max_body_bytes": cap})), llm.port);
    // Exactly `cap` bytes: read, keyed.
    let body = |id: &str, len: usize| {
        let mut b = json!({"user": {"id": id}, "pad": ""}).to_string();
        let pad = len - b.len();
        b = json!({"user": {"id": id}, "pad": "p".repeat(pad)}).to_string();
        assert_eq!(b.len(), len);
        b
    };
    let post = |b: String| Request::post(&envoy.url("/v1/jobs"), &b).send().unwrap();
    assert_eq!(post(body("u1", cap)).status, 200);
    assert_eq!(post(body("u1", cap)).status, 429, "at the cap the body is read: u1 is limited");
    assert_eq!(post(body("u2", cap)).status, 200);
    // One byte more: not read, the key is missing (shared counter), and the request goes
    // through whole.
    let r = post(body("u3", cap + 1));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], cap + 1);
    assert_eq!(post(body("u4", cap + 1)).status, 429, "over the cap: the shared missing-key counter");
    // Sent in many small writes (several body callbacks) it is the same.
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    let b = body("u5", cap);
    s.write_all(
        format!("POST /v1/jobs HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n", b.len())
            .as_bytes(),
    )
    .unwrap();
    for chunk in b.as_bytes().chunks(500) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    assert_eq!(post(body("u5", cap)).status, 429);
    envoy.assert_clean_log();
}

/// Far beyond a small cap: the filter stops buffering at the cap and the body streams on.
#[test]
fn a_body_far_beyond_a_small_cap_streams_through() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["body:/user/id"], 1, json!({"max_body_bytes": 4096})), llm.port);
    let b = json!({"user": {"id": "big"}, "pad": "p".repeat(3 << 20)}).to_string();
    let r = Request::post(&envoy.url("/v1/jobs"), &b).send().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_bytes"], b.len());
    envoy.assert_clean_log();
}

/// With the default `max_body_bytes` (1 MiB, 1048576), a body just over it: the README says
/// the key is then missing and the request still goes through. Envoy answers 413 instead: the
/// filter keeps the body buffered (StopIterationAndBuffer) while it is at most
/// `max_body_bytes`, and Envoy's own buffer limit (`per_connection_buffer_limit_bytes`, also
/// 1 MiB by default) is reached first, so Envoy refuses the request before the filter lets it
/// go. Every rule that needs the body (body keys, LLM units, degrade with set_model) is hit,
/// and so is any `max_body_bytes` at or above Envoy's buffer limit. Fix: a default cap below
/// Envoy's (e.g. 1 MiB - 64 KiB) and documentation that `max_body_bytes` must stay below
/// the listener's `per_connection_buffer_limit_bytes` (validated by `tollgatectl` if it can).
#[test]
fn a_body_just_over_the_default_cap_still_goes_through() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["body:/user/id"], 1, json!({})), llm.port);
    let b = json!({"user": {"id": "big"}, "pad": "p".repeat((1 << 20) + 10_000)}).to_string();
    let r = Request::post(&envoy.url("/v1/jobs"), &b).send().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body_bytes"], b.len());
    envoy.assert_clean_log();
}

/// The same with an LLM rule: a chat request of just over 1 MiB (a long prompt) is refused.
#[test]
fn an_llm_request_just_over_the_default_cap_still_goes_through() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 100000000, "window": "1h"}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let b = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x".repeat((1 << 20) + 10_000)}]})
        .to_string();
    let r = Request::post(&envoy.url("/v1/chat/completions"), &b).header("x-api-key", "sk-1").send().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn llm_rules_with_request_and_response_bodies_beyond_the_cap() {
    let llm = MockLlm::start();
    let config = json!({"max_body_bytes": 4096, "response": {"headers": ["openai"]},
        "rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 10000, "window": "1h"}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let chat = |body: String, extra: &[(&str, &str)]| {
        let mut r = Request::post(&envoy.url("/v1/chat/completions"), &body).header("x-api-key", "sk-llm");
        for (k, v) in extra {
            r = r.header(k, v);
        }
        r.send().unwrap()
    };
    let remaining = |r: &Response| r.header("x-ratelimit-remaining-tokens").unwrap().parse::<u64>().unwrap();
    // A request over the cap cannot be read: no max_tokens estimate (1 unit is reserved), it
    // goes through, and the usage of its (small) response settles it exactly.
    let big = json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x".repeat(5000)}]})
        .to_string();
    let r = chat(big, &[("x-mock-prompt-tokens", "10"), ("x-mock-completion-tokens", "20")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(remaining(&r), 9999, "one unit reserved for an unreadable request");
    envoy.wait_settled();
    let small = || json!({"model": "m", "max_tokens": 100, "messages": []}).to_string();
    let r = chat(small(), &[("x-mock-prompt-tokens", "0"), ("x-mock-completion-tokens", "0")]);
    assert_eq!(remaining(&r), 10000 - 30 - 100, "settled to 30 used; this one reserves 100");
    envoy.wait_settled();
    // A response over the cap: the cap bounds memory, not what is read. Its usage (1 prompt
    // token + 5) is read as it streams by, usage_missing does not count it, and the client
    // still gets every byte.
    let before = envoy.prometheus_value("tollgate_usage_missing{}").unwrap_or(0.0);
    let r = chat(small(), &[("x-mock-body-bytes", "9000"), ("x-mock-completion-tokens", "5")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 9000);
    envoy.wait_settled();
    assert_eq!(envoy.prometheus_value("tollgate_usage_missing{}").unwrap_or(0.0), before);
    let r = chat(small(), &[("x-mock-prompt-tokens", "0"), ("x-mock-completion-tokens", "0")]);
    // 30 + 0 (settled) + 6 (settled) + 100 reserved now.
    assert_eq!(remaining(&r), 10000 - 30 - 6 - 100);
    envoy.assert_clean_log();
}

/// A small key flood against the smallest table (64 slots): what `make soak` does with a
/// million keys, in a second. 600 fresh keys, one request each, after a key was limited.
fn small_flood(envoy: &Envoy) -> (usize, usize) {
    let (mut ok, mut denied) = (0, 0);
    let results: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (0..150).map(|i| envoy.status_with_key("/x", &format!("sk-flood-{t}-{i}"))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for s in results {
        match s {
            200 => ok += 1,
            429 => denied += 1,
            other => panic!("status {other}"),
        }
    }
    (ok, denied)
}

#[test]
fn a_key_flood_never_frees_a_limited_key() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["api_key"], 1, json!({"slots": {"capacity": 64}})), llm.port);
    assert_eq!((0..2).map(|_| envoy.status_with_key("/x", "sk-victim")).collect::<Vec<_>>(), vec![200, 429]);
    let (ok, denied) = small_flood(&envoy);
    // At most 63 other keys got a record of their own; the rest share the overflow counter
    // (limit 1): so at most 64 of the 600 were admitted.
    assert!(ok <= 64 && ok + denied == 600, "admitted {ok}, denied {denied}");
    assert_eq!(envoy.status_with_key("/x", "sk-victim"), 429, "the limited key is still limited");
    envoy.assert_clean_log();
}

/// `tollgate_slots_overflow` counts every request decided on an overflow counter, admitted or
/// not ("the overflow metric says when it is too small"). Found by the soak: before ab9ac20 the
/// engine counted only the admitted ones, so a flood of 1,045,177 keys through 65,536 slots read
/// 5. A regression test now.
#[test]
fn the_overflow_metric_counts_every_request_sent_to_the_overflow_counter() {
    let llm = MockLlm::start();
    let envoy = Envoy::standalone(&per_key_config(&["api_key"], 1, json!({"slots": {"capacity": 64}})), llm.port);
    let (ok, denied) = small_flood(&envoy);
    let overflow = envoy.prometheus_value("tollgate_slots_overflow{}").unwrap_or(0.0);
    // Every denied request here is a fresh key (limit 1): it was denied by the overflow counter.
    assert!(overflow >= denied as f64, "admitted {ok}, denied {denied}, tollgate_slots_overflow {overflow}");
}

/// `exempt_paths` and `match.path_prefix` see the raw `:path`. Envoy does not normalize paths by
/// default, so `/healthz/../v1/x` is exempt (it starts with `/healthz`) and `/./v1/x` escapes a
/// `/v1/` rule, while an upstream that resolves dot segments serves `/v1/x`: a bypass that
/// docs/security.md tells operators to close with `normalize_path` and `merge_slashes`. Both
/// halves are tested: the bypass with Envoy's defaults, and no bypass once they are on.
#[test]
fn dot_segments_bypass_path_rules_unless_envoy_normalizes_paths() {
    let llm = MockLlm::start();
    let config = json!({"exempt_paths": ["/healthz"], "rules": [
        {"name": "v1", "match": {"path_prefix": "/v1/"}, "algorithm": "fixed_window", "limit": 1, "window": "1h"}]})
    .to_string();
    let tricks = ["/healthz/../v1/x", "/./v1/x", "/v1/../v1/x"];
    let run = |envoy: &Envoy| -> Vec<(u16, String)> {
        assert_eq!(Request::get(&envoy.url("/v1/x")).send().unwrap().status, 200);
        assert_eq!(Request::get(&envoy.url("/v1/x")).send().unwrap().status, 429);
        tricks
            .iter()
            .map(|p| {
                let r = Request::get(&envoy.url(p)).send().unwrap();
                let seen =
                    if r.status == 200 { r.json()["path"].as_str().unwrap_or("").to_string() } else { String::new() };
                (r.status, seen)
            })
            .collect()
    };
    // Envoy's defaults: the raw path reaches both the filter and the upstream.
    let envoy = Envoy::standalone(&config, llm.port);
    let got = run(&envoy);
    assert_eq!(got[0], (200, "/healthz/../v1/x".to_string()), "exempt by prefix: {got:?}");
    assert_eq!(got[1], (200, "/./v1/x".to_string()), "escapes path_prefix /v1/: {got:?}");
    drop(envoy);
    // With normalize_path and merge_slashes, the filter and the upstream see /v1/x.
    let dir = tollgate_e2e::TempDir::new("normalize");
    let template = dir.0.join("normalized.yaml");
    let text = tollgate_e2e::read("envoy/standalone.yaml").replacen(
        "stat_prefix: ingress",
        "stat_prefix: ingress\n          normalize_path: true\n          merge_slashes: true",
        1,
    );
    assert!(text.contains("normalize_path: true"));
    std::fs::write(&template, text).unwrap();
    let mut opts = tollgate_e2e::EnvoyOptions::standalone(&config, llm.port);
    opts.template = template;
    let envoy = Envoy::start(opts);
    let got = run(&envoy);
    assert!(got.iter().all(|(status, _)| *status == 429), "normalized paths are limited: {got:?}");
    envoy.assert_clean_log();
}
