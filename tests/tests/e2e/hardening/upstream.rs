//! Hardening, the response side and aborts, through the real Envoy: malformed JSON and
//! malformed, oversized or truncated SSE from the upstream (from a tiny inline upstream where
//! the mock LLM cannot produce it), a slow upstream with a concurrency rule, and clients that
//! hang up at every stage (before the body is complete, while the filter waits for the body,
//! while the upstream thinks, mid-stream). Afterwards the counts are consistent (every
//! concurrency slot came back: N slots admit N again), Envoy still serves, and its log has no
//! panic, wasm trap or crashed plugin.

use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::{Envoy, MockLlm};

// ---------------------------------------------------------------------------------------------
// A tiny upstream that answers canned, broken responses by path.

/// What the inline upstream sends for a path: raw bytes, then (when `close_early`) it drops
/// the connection without finishing the response.
fn canned(path: &str) -> (Vec<u8>, bool) {
    let json = |body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    let chunked = |chunks: &[&[u8]], finish: bool| {
        let mut out =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for c in chunks {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        if finish {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        out
    };
    let big_line = format!("data: {{\"usage\":{{\"total_tokens\":77}},\"pad\":\"{}\"}}\n\n", "x".repeat(300 * 1024));
    match path {
        "/json-truncated" => (json(br#"{"usage":{"prompt_tokens":5,"completion_tokens":"#), false),
        "/json-not-utf8" => (json(b"{\"usage\":{\"total_tokens\":7},\"text\":\"\xff\xfe\"}"), false),
        "/json-not-an-object" => (json(br#"[1, "usage", {"usage": 3}, null]"#), false),
        "/json-huge-numbers" => (
            json(br#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#),
            false,
        ),
        "/json-negative" => (json(br#"{"usage":{"total_tokens":-5,"prompt_tokens":1.5}}"#), false),
        // Garbage, a line that is not UTF-8, a 300 KiB event (read like any other: 77), a
        // field without a colon, then a good event: 42 tokens (the last report wins).
        "/sse-garbage" => (
            chunked(
                &[
                    b"\xff\xfe\x00garbage\n\n",
                    b"data: {not json but usage\n\n",
                    big_line.as_bytes(),
                    b"event\n: comment\nretry: x\n\n",
                    b"data: {\"usage\":{\"total_",
                    b"tokens\":42}}\r\n\r\n",
                ],
                true,
            ),
            false,
        ),
        // The upstream dies mid-event: the last complete event (9 tokens) counts.
        "/sse-truncated" => {
            (chunked(&[b"data: {\"usage\":{\"total_tokens\":9}}\n\n", b"data: {\"usage\":{\"total_tok"], false), true)
        }
        // A last event without its blank line, stream properly ended: it counts (11).
        "/sse-unterminated-event" => (chunked(&[b"data: {\"usage\":{\"total_tokens\":11}}"], true), false),
        // Zero usage reported: settled to 0.
        _ => (json(br#"{"usage":{"total_tokens":0}}"#), false),
    }
}

fn serve(mut s: TcpStream) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut path = String::new();
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if path.is_empty() {
            path = l.split_whitespace().nth(1).unwrap_or("/").to_string();
        } else if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    let _ = reader.read_exact(&mut body);
    let (bytes, close_early) = canned(&path);
    let _ = s.write_all(&bytes);
    let _ = s.flush();
    if close_early {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// Start the inline upstream; returns its port. Its thread ends with the test process.
fn broken_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

/// POST to `path` with key `key`; the body may be cut (errors are returned as status 0).
fn post(envoy: &Envoy, path: &str, key: &str) -> (u16, Option<u64>) {
    let body = json!({"model": "m", "messages": []}).to_string();
    match Request::post(&envoy.url(path), &body).header("x-api-key", key).send() {
        Ok(r) => (r.status, r.header("x-ratelimit-remaining-tokens").and_then(|v| v.parse().ok())),
        Err(_) => (0, None),
    }
}

#[test]
fn malformed_json_and_sse_from_the_upstream() {
    let port = broken_upstream();
    let limit = 1_000_000u64;
    let config = json!({"llm": {"estimate": "fixed:1000"}, "response": {"headers": ["openai"]},
        "rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": limit, "window": "1h"}]});
    let envoy = Envoy::standalone(&config.to_string(), port);
    // (path, tokens the counter keeps: the usage read, or the 1000 estimate when none is found)
    let cases: [(&str, u64); 8] = [
        ("/json-truncated", 1000),
        // The usage is complete and valid before the bad bytes (which are in a text): read.
        ("/json-not-utf8", 7),
        ("/json-not-an-object", 1000),
        ("/json-negative", 1000),
        ("/sse-garbage", 42),
        ("/sse-truncated", 9),
        ("/sse-unterminated-event", 11),
        ("/ok", 0),
    ];
    let missing_before = envoy.prometheus_value("tollgate_usage_missing{}").unwrap_or(0.0);
    let mut missing = 0.0;
    for (path, kept) in cases {
        let key = format!("sk{}", path.replace('/', "-"));
        let (status, _) = post(&envoy, path, &key);
        if path != "/sse-truncated" {
            assert_eq!(status, 200, "{path}");
        }
        envoy.wait_settled();
        let (status, remaining) = post(&envoy, "/ok", &key);
        assert_eq!(status, 200);
        assert_eq!(remaining, Some(limit - kept - 1000), "{path}: the counter kept {kept} (+1000 reserved now)");
        if kept == 1000 {
            missing += 1.0;
        }
    }
    assert_eq!(envoy.prometheus_value("tollgate_usage_missing{}").unwrap_or(0.0) - missing_before, missing);
    // An upstream that reports absurd usage (u64::MAX tokens) is believed: the counter
    // saturates and the key is limited for the rest of the window (the upstream is trusted).
    let (status, _) = post(&envoy, "/json-huge-numbers", "sk-huge");
    assert_eq!(status, 200);
    envoy.wait_settled();
    assert_eq!(post(&envoy, "/ok", "sk-huge").0, 429);
    assert_eq!(post(&envoy, "/ok", "sk-other").0, 200, "only that key");
    envoy.assert_clean_log();
}

#[test]
fn streams_split_byte_by_byte_or_cut_by_the_upstream_settle() {
    let llm = MockLlm::start();
    let config = json!({"response": {"headers": ["openai"]},
        "rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 100000, "window": "1h"},
                  {"name": "conc", "key": ["api_key"], "unit": "concurrent", "limit": 2}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let stream = |path: &str, key: &str, extra: &[(&str, &str)]| {
        let body = json!({"model": "m", "max_tokens": 50, "stream": true, "messages": []}).to_string();
        let mut r = Request::post(&envoy.url(path), &body)
            .header("x-api-key", key)
            .header("x-mock-prompt-tokens", "7")
            .header("x-mock-completion-tokens", "30")
            .header("x-mock-chunk-delay-ms", "0");
        for (k, v) in extra {
            r = r.header(k, v);
        }
        r.send()
    };
    let remaining = |key: &str| {
        let r = Request::post(&envoy.url("/v1/embeddings"), &json!({"model": "m", "input": "x"}).to_string())
            .header("x-api-key", key)
            .header("x-mock-prompt-tokens", "0")
            .send()
            .unwrap();
        r.header("x-ratelimit-remaining-tokens").unwrap().parse::<u64>().unwrap()
    };
    // Anthropic SSE in 1-byte HTTP chunks: every event, line and UTF-8 sequence split.
    let r: Response = stream("/v1/messages", "sk-split", &[("x-mock-split", "1")]).unwrap();
    assert_eq!(r.status, 200);
    envoy.wait_settled();
    assert_eq!(remaining("sk-split"), 100000 - 37 - 1, "usage 7 + 30 read from a byte-by-byte stream");
    // The upstream resets after 3 chunks, before the usage chunk: the 50-token estimate stays.
    let _ = stream("/v1/chat/completions", "sk-cut", &[("x-mock-abort-after", "3")]);
    envoy.wait_settled();
    assert_eq!(remaining("sk-cut"), 100000 - 50 - 1, "no usage: the estimate (max_tokens 50) stands");
    // A stream that reports no usage at all.
    let r = stream("/v1/chat/completions", "sk-none", &[("x-mock-no-usage", "1")]).unwrap();
    assert_eq!(r.status, 200);
    envoy.wait_settled();
    assert_eq!(remaining("sk-none"), 100000 - 50 - 1);
    // None of these left a concurrency slot taken: 2 slow requests per key fit at once.
    for key in ["sk-split", "sk-cut", "sk-none"] {
        assert_eq!(concurrent_admitted(&envoy, key, 3), (2, 1), "{key}");
    }
    envoy.assert_clean_log();
}

/// Start `n` slow requests (1.2 s upstream delay) for `key` at about the same time, the last
/// one 300 ms after the others: (admitted, denied with type concurrent).
fn concurrent_admitted(envoy: &Envoy, key: &str, n: usize) -> (usize, usize) {
    let ok = AtomicUsize::new(0);
    let denied = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..n {
            let (ok, denied) = (&ok, &denied);
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(if i == n - 1 { 300 } else { 0 }));
                let r = Request::get(&envoy.url("/slow"))
                    .header("x-api-key", key)
                    .header("x-mock-delay-ms", "1200")
                    .send()
                    .unwrap();
                match r.status {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    429 => {
                        assert_eq!(r.json()["error"]["type"], "concurrent", "{}", r.text());
                        denied.fetch_add(1, Ordering::SeqCst)
                    }
                    s => panic!("status {s}: {}", r.text()),
                };
            });
        }
    });
    (ok.load(Ordering::SeqCst), denied.load(Ordering::SeqCst))
}

/// Open a connection, send `bytes`, optionally read `read_first` bytes of the answer, hang up.
fn hang_up(envoy: &Envoy, bytes: &[u8], read_first: bool) {
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    s.write_all(bytes).unwrap();
    if read_first {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    } else {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = s.shutdown(Shutdown::Both);
}

#[test]
fn clients_hanging_up_at_every_stage_leave_no_slot_behind() {
    let llm = MockLlm::start();
    // The body rule makes the filter wait for the body (the request is paused until then).
    let config = json!({"rules": [
        {"name": "conc", "key": ["api_key"], "unit": "concurrent", "limit": 3},
        {"name": "per-user", "key": ["body:/user"], "missing_key": "skip", "algorithm": "gcra", "limit": 1000000, "window": "1s"},
        {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "token_bucket", "limit": 100000000, "window": "1m"}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let body = json!({"user": "u", "model": "m", "max_tokens": 10, "stream": true, "messages": []}).to_string();
    let head = |extra: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-key: sk-a\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n",
            body.len()
        )
    };
    let stages: Vec<(&str, Vec<u8>, bool)> = vec![
        // Headers only: the filter is waiting for the body.
        ("headers only", head("").into_bytes(), false),
        // Half the body: still waiting.
        ("half the body", [head("").as_bytes(), &body.as_bytes()[..body.len() / 2]].concat(), false),
        // The whole request, then gone while the upstream thinks (slot taken).
        ("during a slow upstream", [head("x-mock-delay-ms: 1500\r\n").as_bytes(), body.as_bytes()].concat(), false),
        // Mid-stream, after the first bytes of a slow stream.
        (
            "mid-stream",
            [head("x-mock-stream-chunks: 50\r\nx-mock-chunk-delay-ms: 100\r\n").as_bytes(), body.as_bytes()].concat(),
            true,
        ),
    ];
    std::thread::scope(|s| {
        for (name, bytes, read_first) in &stages {
            let envoy = &envoy;
            s.spawn(move || {
                for _ in 0..6 {
                    hang_up(envoy, bytes, *read_first);
                }
                let _ = name;
            });
        }
    });
    // Chunked bodies that never end, and a request line that never ends, for good measure.
    hang_up(&envoy, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-key: sk-a\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"use", false);
    hang_up(&envoy, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-", false);
    envoy.wait_settled();
    // Every slot came back: 3 slow requests fit at once, a 4th does not.
    assert_eq!(concurrent_admitted(&envoy, "sk-a", 4), (3, 1));
    assert_eq!(Request::get(&envoy.url("/after")).header("x-api-key", "sk-b").send().unwrap().status, 200);
    envoy.assert_clean_log();
}

#[test]
fn a_slow_upstream_with_a_concurrency_rule() {
    let llm = MockLlm::start();
    let config = json!({"rules": [{"name": "conc", "key": ["api_key"], "unit": "concurrent", "limit": 2}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    // Twice in a row: the slots of the first round come back when its responses end.
    assert_eq!(concurrent_admitted(&envoy, "sk-slow", 3), (2, 1));
    assert_eq!(concurrent_admitted(&envoy, "sk-slow", 3), (2, 1));
    // Another key is not affected while sk-slow is full.
    std::thread::scope(|s| {
        s.spawn(|| concurrent_admitted(&envoy, "sk-slow", 2));
        std::thread::sleep(Duration::from_millis(200));
        let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-other").send().unwrap();
        assert_eq!(r.status, 200);
    });
    envoy.assert_clean_log();
}
