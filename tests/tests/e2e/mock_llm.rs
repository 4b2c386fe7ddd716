//! Tests of the `mock-llm` upstream (see docs/mock-llm.md), over raw TCP.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `mock-llm`, killed when dropped (also when a test panics).
struct MockServer {
    child: Child,
    addr: String,
}

impl MockServer {
    fn start() -> MockServer {
        MockServer::start_with(&[], &[])
    }

    /// With extra arguments and environment variables.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> MockServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mock-llm"));
        cmd.args(["--listen", "127.0.0.1:0", "--quiet"]).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
        cmd.env_remove("MOCK_LLM_FIXTURES").envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn mock-llm");
        let stdout = child.stdout.take().expect("child stdout");
        // Guard first, so the child is killed if reading the port fails.
        let mut server = MockServer { child, addr: String::new() };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        server.addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        server
    }

    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
        Conn { r: BufReader::new(stream) }
    }

    /// One request on a fresh connection.
    fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        self.connect().send("POST", path, headers, body.to_string().as_bytes())
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    r: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sizes of the chunks when the body was chunked.
    chunks: Option<Vec<usize>>,
}

impl Conn {
    fn write(&mut self, bytes: &[u8]) {
        let s = self.r.get_mut();
        s.write_all(bytes).expect("write request");
        s.flush().expect("flush");
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: mock\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes);
        self.read_response()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("read line");
        assert!(n > 0, "unexpected EOF");
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    fn read_response(&mut self) -> Response {
        let status_line = self.line();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().expect("status").parse().expect("status");
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header");
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        let mut chunks = None;
        if get("transfer-encoding").as_deref() == Some("chunked") {
            let mut sizes = Vec::new();
            loop {
                let size = usize::from_str_radix(&self.line(), 16).expect("chunk size");
                if size == 0 {
                    assert_eq!(self.line(), "", "no trailers expected");
                    break;
                }
                sizes.push(size);
                let start = body.len();
                body.resize(start + size, 0);
                self.r.read_exact(&mut body[start..]).expect("chunk data");
                assert_eq!(self.line(), "", "CRLF after chunk");
            }
            chunks = Some(sizes);
        } else if let Some(len) = get("content-length") {
            body.resize(len.parse().expect("content-length"), 0);
            self.r.read_exact(&mut body).expect("body");
        }
        Response { status, headers, body, chunks }
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.r.read(&mut buf), Ok(0) | Err(_))
    }
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// SSE events as (event name, data), in order.
    fn sse(&self) -> Vec<(Option<String>, String)> {
        let text = self.text().replace("\r\n", "\n");
        assert!(text.ends_with("\n\n"), "stream ends with a blank line");
        text.split("\n\n")
            .filter(|block| !block.is_empty())
            .map(|block| {
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                (event, data)
            })
            .collect()
    }

    fn sse_json(&self) -> Vec<Value> {
        self.sse()
            .into_iter()
            .filter(|(_, d)| d != "[DONE]")
            .map(|(_, d)| serde_json::from_str(&d).expect("JSON event data"))
            .collect()
    }
}

fn words(n: usize) -> String {
    vec!["tok"; n].join(" ")
}

#[test]
fn chat_json_usage() {
    let mock = MockServer::start();
    // "Hello, world!" is 13 bytes: P = ceil(13 / 4) = 4.
    let resp = mock.post(
        "/v1/chat/completions",
        &[],
        &json!({"model": "gpt-4o", "max_tokens": 7,
                "messages": [{"role": "user", "content": "Hello, world!"}]}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-mock-usage"), Some("4,7"));
    assert_eq!(resp.header("x-mock-request-count"), Some("1"));
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], words(7));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}));

    // Default C = 16; text in content parts and several messages is summed:
    // 4 + 5 + 3 = 12 bytes -> P = 3.
    let resp = mock.post(
        "/v1/chat/completions",
        &[],
        &json!({"model": "m", "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "hello"},
                                          {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "user", "content": "xyz"}]}),
    );
    assert_eq!(resp.header("x-mock-usage"), Some("3,16"));
    assert_eq!(resp.header("x-mock-request-count"), Some("2"));

    // max_completion_tokens wins over max_tokens; header overrides win over both.
    let body = json!({"model": "m", "max_tokens": 9, "max_completion_tokens": 2,
                      "messages": [{"role": "user", "content": ""}]});
    assert_eq!(mock.post("/v1/chat/completions", &[], &body).header("x-mock-usage"), Some("1,2"));
    let resp =
        mock.post("/v1/chat/completions", &[("x-mock-prompt-tokens", "100"), ("x-mock-completion-tokens", "3")], &body);
    assert_eq!(resp.header("x-mock-usage"), Some("100,3"));
    assert_eq!(resp.json()["usage"]["total_tokens"], 103);
    assert_eq!(resp.json()["choices"][0]["message"]["content"], words(3));
}

#[test]
fn chat_sse_with_include_usage() {
    let mock = MockServer::start();
    let resp = mock.post(
        "/v1/chat/completions",
        &[],
        &json!({"model": "gpt-4o", "stream": true, "max_tokens": 7,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Hello, world!"}]}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.header("x-mock-usage"), Some("4,7"));
    // One chunk per event: 5 deltas, finish, usage, [DONE].
    assert_eq!(resp.chunks.as_ref().map(Vec::len), Some(8));
    let events = resp.sse();
    assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let chunks = resp.sse_json();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, words(7));
    let deltas = chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].is_string()).count();
    assert_eq!(deltas, 5);
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["object"], "chat.completion.chunk");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], json!({"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}));
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));

    // Without include_usage there is no usage chunk at all.
    let resp = mock.post(
        "/v1/chat/completions",
        &[("x-mock-stream-chunks", "2")],
        &json!({"model": "m", "stream": true, "messages": []}),
    );
    assert_eq!(resp.header("x-mock-usage"), Some("1,16"));
    let chunks = resp.sse_json();
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));

    // x-mock-no-usage: no usage chunk and no x-mock-usage header.
    let resp = mock.post(
        "/v1/chat/completions",
        &[("x-mock-no-usage", "1")],
        &json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": []}),
    );
    assert_eq!(resp.header("x-mock-usage"), None);
    assert!(!resp.text().contains("usage"));
}

#[test]
fn anthropic_messages() {
    let mock = MockServer::start();
    // system "abcd" (4) + "hello" (5) = 9 bytes -> P = 3.
    let body = json!({"model": "claude-x", "max_tokens": 6, "system": "abcd",
                      "messages": [{"role": "user",
                                    "content": [{"type": "text", "text": "hello"}]}]});
    let resp = mock.post("/v1/messages", &[], &body);
    assert_eq!(resp.header("x-mock-usage"), Some("3,6"));
    let v = resp.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(v["content"][0], json!({"type": "text", "text": words(6)}));
    assert_eq!(v["usage"], json!({"input_tokens": 3, "output_tokens": 6}));

    let mut body = body;
    body["stream"] = json!(true);
    let resp = mock.post("/v1/messages", &[("x-mock-stream-chunks", "3")], &body);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = resp.sse();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().expect("event name")).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = resp.sse_json();
    for ((name, _), d) in events.iter().zip(&data) {
        assert_eq!(d["type"].as_str(), name.as_deref());
    }
    assert_eq!(data[0]["message"]["usage"], json!({"input_tokens": 3, "output_tokens": 1}));
    let text: String = data.iter().filter_map(|d| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, words(6));
    assert_eq!(data[7]["usage"], json!({"output_tokens": 6}));
}

#[test]
fn gemini() {
    let mock = MockServer::start();
    // "Hi there" (8) + system "sys" (3) = 11 bytes -> P = 3.
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}],
                      "systemInstruction": {"parts": [{"text": "sys"}]},
                      "generationConfig": {"maxOutputTokens": 10}});
    let resp = mock.post("/v1beta/models/gemini-2.0-flash:generateContent", &[], &body);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-mock-usage"), Some("3,10"));
    let v = resp.json();
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], words(10));
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"], json!({"promptTokenCount": 3, "candidatesTokenCount": 10, "totalTokenCount": 13}));

    let resp = mock.post(
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        &[("x-mock-stream-chunks", "4")],
        &body,
    );
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.text().contains("\r\n\r\n"), "Gemini SSE uses CRLF");
    let chunks = resp.sse_json();
    assert_eq!(chunks.len(), 4);
    let counts: Vec<u64> =
        chunks.iter().map(|c| c["usageMetadata"]["candidatesTokenCount"].as_u64().expect("count")).collect();
    assert_eq!(counts, [3, 6, 8, 10]);
    assert!(chunks.iter().all(|c| c["usageMetadata"]["promptTokenCount"] == 3));
    assert_eq!(chunks[3]["usageMetadata"]["totalTokenCount"], 13);
    assert_eq!(chunks[3]["candidates"][0]["finishReason"], "STOP");
    assert!(chunks[2]["candidates"][0].get("finishReason").is_none());

    // Without alt=sse: a JSON array, streamed.
    let resp = mock.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", &[], &body);
    let v = resp.json();
    assert_eq!(v.as_array().map(Vec::len), Some(5));
    assert_eq!(v[4]["usageMetadata"]["candidatesTokenCount"], 10);
}

#[test]
fn other_openai_endpoints() {
    let mock = MockServer::start();
    let resp = mock.post("/v1/completions", &[], &json!({"model": "davinci", "prompt": "12345678", "max_tokens": 4}));
    let v = resp.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], words(4));
    assert_eq!(v["usage"], json!({"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}));
    let resp = mock.post(
        "/v1/completions",
        &[],
        &json!({"model": "davinci", "prompt": "1", "stream": true,
                "stream_options": {"include_usage": true}}),
    );
    let chunks = resp.sse_json();
    assert_eq!(chunks.last().expect("usage")["usage"]["total_tokens"], 17);

    let resp = mock.post(
        "/v1/responses",
        &[],
        &json!({"model": "gpt-4.1", "instructions": "be", "input": "brief!",
                "max_output_tokens": 5}),
    );
    assert_eq!(resp.header("x-mock-usage"), Some("2,5"));
    let v = resp.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["text"], words(5));
    assert_eq!(v["usage"], json!({"input_tokens": 2, "output_tokens": 5, "total_tokens": 7}));

    let resp = mock.post(
        "/v1/responses",
        &[],
        &json!({"model": "gpt-4.1", "input": [{"role": "user", "content": "abcdefghi"}],
                "stream": true}),
    );
    let events = resp.sse();
    assert_eq!(events[0].0.as_deref(), Some("response.created"));
    let deltas = events.iter().filter(|(e, _)| e.as_deref() == Some("response.output_text.delta")).count();
    assert_eq!(deltas, 5);
    let (last_name, last_data) = events.last().expect("events");
    assert_eq!(last_name.as_deref(), Some("response.completed"));
    let last: Value = serde_json::from_str(last_data).expect("json");
    assert_eq!(last["response"]["usage"], json!({"input_tokens": 3, "output_tokens": 16, "total_tokens": 19}));

    let resp = mock.post("/v1/embeddings", &[], &json!({"model": "emb", "input": ["abcd", "efgh"], "max_tokens": 5}));
    assert_eq!(resp.header("x-mock-usage"), Some("2,0"));
    let v = resp.json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
}

#[test]
fn split_writes_fixed_size_chunks() {
    let mock = MockServer::start();
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]});
    let resp = mock.post("/v1/chat/completions", &[("x-mock-split", "7"), ("x-mock-chunk-delay-ms", "0")], &body);
    let sizes = resp.chunks.clone().expect("chunked");
    assert!(sizes.len() > 10);
    let (last, rest) = sizes.split_last().expect("chunks");
    assert!(rest.iter().all(|&s| s == 7), "{sizes:?}");
    assert!((1..=7).contains(last));
    // The reassembled stream is intact.
    let chunks = resp.sse_json();
    assert_eq!(chunks.len(), 7);
    assert_eq!(chunks[6]["usage"]["total_tokens"], 17);

    // Splitting also applies to JSON bodies.
    let resp = mock.post("/v1/messages", &[("x-mock-split", "1")], &json!({"model": "m", "messages": []}));
    let sizes = resp.chunks.clone().expect("chunked");
    assert_eq!(sizes.len(), resp.body.len());
    assert_eq!(resp.json()["usage"]["output_tokens"], 16);
}

#[test]
fn keep_alive_serves_several_requests() {
    let mock = MockServer::start();
    let mut conn = mock.connect();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "abcdefgh"}]});
    let first = conn.send("POST", "/v1/chat/completions", &[], body.to_string().as_bytes());
    assert_eq!(first.header("x-mock-usage"), Some("2,16"));
    assert_eq!(first.header("connection"), None);
    // A streamed (chunked) reply, then a chunked request body, same connection.
    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let second = conn.send("POST", "/v1/chat/completions", &[], stream_body.to_string().as_bytes());
    assert_eq!(second.header("x-mock-request-count"), Some("2"));
    assert!(second.chunks.is_some());

    let text = body.to_string();
    let (a, b) = text.split_at(10);
    conn.write(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ntransfer-encoding: chunked\r\n\r\n\
             {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    let third = conn.read_response();
    assert_eq!(third.status, 200);
    assert_eq!(third.header("x-mock-usage"), Some("2,16"));
    assert_eq!(third.header("x-mock-request-count"), Some("3"));

    // Expect: 100-continue gets an interim response before the body is sent.
    let text = body.to_string();
    conn.write(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            text.len()
        )
        .as_bytes(),
    );
    assert_eq!(conn.line(), "HTTP/1.1 100 Continue");
    assert_eq!(conn.line(), "");
    conn.write(text.as_bytes());
    assert_eq!(conn.read_response().header("x-mock-usage"), Some("2,16"));

    // Connection: close is honoured.
    let last = conn.send("GET", "/x", &[("connection", "close")], b"");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(conn.closed());
}

#[test]
fn echo_shows_what_upstream_received() {
    let mock = MockServer::start();
    let resp = mock.connect().send("GET", "/anything/here?x=1", &[("X-Custom", "yes")], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-mock-usage"), None);
    assert_eq!(resp.header("x-mock-request-count"), Some("1"));
    let v = resp.json();
    assert_eq!(v["path"], "/anything/here?x=1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["headers"]["x-custom"], "yes");
    assert_eq!(v["headers"]["host"], "mock");
    assert_eq!(v["body"], "");

    // GET on an LLM path echoes too; POST bodies are echoed as text.
    let v = mock.connect().send("GET", "/v1/chat/completions", &[], b"").json();
    assert_eq!(v["method"], "GET");
    let v = mock.connect().send("POST", "/other", &[], br#"{"model":"rewritten"}"#).json();
    assert_eq!(v["body"], r#"{"model":"rewritten"}"#);
    assert_eq!(v["json"]["model"], "rewritten");
    assert_eq!(v["body_bytes"], 21);

    // x-mock-body-bytes pads to the exact size.
    let resp = mock.connect().send("GET", "/pad", &[("x-mock-body-bytes", "3000")], b"");
    assert_eq!(resp.body.len(), 3000);
    assert_eq!(resp.json()["path"], "/pad");

    let stats = mock.connect().send("GET", "/__mock/stats", &[], b"").json();
    assert_eq!(stats, json!({"requests": 4}));
}

#[test]
fn errors_and_forced_statuses() {
    let mock = MockServer::start();
    let mut conn = mock.connect();
    // Malformed JSON: 400, and the connection stays usable.
    let resp = conn.send("POST", "/v1/chat/completions", &[], b"{not json");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert_eq!(resp.header("x-mock-usage"), None);
    let resp = conn.send("POST", "/v1/messages", &[], b"[1]");
    assert_eq!(resp.status, 400);

    // Forced status: error body, no usage.
    let body = br#"{"model":"m","messages":[]}"#;
    let resp = conn.send("POST", "/v1/chat/completions", &[("x-mock-status", "503")], body);
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("x-mock-usage"), None);
    assert_eq!(resp.json()["error"]["type"], "mock_forced_status");
    let resp = conn.send("POST", "/v1/chat/completions", &[("x-mock-status", "201")], body);
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("x-mock-usage"), Some("1,16"));

    // Bad x-mock-* values are rejected.
    let resp = conn.send("POST", "/v1/chat/completions", &[("x-mock-split", "0")], body);
    assert_eq!(resp.status, 400);

    // x-mock-abort-after: the stream is cut without its terminating chunk.
    let stream_body = br#"{"model":"m","messages":[],"stream":true}"#;
    conn.write(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\nx-mock-abort-after: 2\r\ncontent-length: {}\r\n\r\n",
            stream_body.len()
        )
        .as_bytes(),
    );
    conn.write(stream_body);
    let mut raw = Vec::new();
    let _ = conn.r.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert_eq!(raw.matches("data: ").count(), 2, "{raw}");
    assert!(!raw.ends_with("0\r\n\r\n"));

    // Oversized body: 413 (the body is never read).
    let mut conn = mock.connect();
    conn.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\ncontent-length: 9000000\r\n\r\n");
    assert_eq!(conn.read_response().status, 413);
    assert!(conn.closed());

    // A bad request line closes the connection without a reply.
    let mut conn = mock.connect();
    conn.write(b"garbage\r\n\r\n");
    assert!(conn.closed());

    // The server survived all of it.
    let resp = mock.post("/v1/chat/completions", &[], &json!({"messages": []}));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["model"], "mock-model");
}

#[test]
fn delays() {
    let mock = MockServer::start();
    let start = std::time::Instant::now();
    let resp = mock.post(
        "/v1/messages",
        &[("x-mock-delay-ms", "150"), ("x-mock-chunk-delay-ms", "20")],
        &json!({"model": "m", "stream": true, "messages": []}),
    );
    // 150 ms before the headers, 10 gaps of 20 ms between the 11 events.
    assert!(start.elapsed() >= Duration::from_millis(150 + 10 * 20));
    assert_eq!(resp.chunks.map(|c| c.len()), Some(11));
}

/// A fixture directory like `../shared/llm-usage/`: a CRLF event stream with multi-byte UTF-8
/// (over 1 KiB), a small one, and a JSON body with its own content type.
fn fixture_dir() -> tollgate_e2e::TempDir {
    let dir = tollgate_e2e::TempDir::new("mock-fixtures");
    let event = |i: usize| format!("data: {{\"i\":{i},\"text\":\"h\u{e9}llo \u{1f600} w\u{f6}rld\"}}\r\n\r\n");
    let big: String = (0..30).map(event).collect::<String>() + "data: [DONE]\r\n\r\n";
    assert!(big.len() > 1024);
    let files: [(&str, &str, String); 3] = [
        ("big_sse", "text/event-stream; charset=utf-8", big),
        ("small_sse", "text/event-stream", "event: e\ndata: {\"\u{e9}\":1}\n\ndata: [DONE]\n\n".to_string()),
        ("body_json", "application/json; charset=UTF-8", "{\n  \"usage\": {\"total_tokens\": 3}\n}".to_string()),
    ];
    for (name, content_type, body) in files {
        std::fs::write(dir.0.join(format!("{name}.body")), body).unwrap();
        let meta = json!({"content_type": content_type, "expected": {"input": 1, "output": 2, "total": 3}});
        std::fs::write(dir.0.join(format!("{name}.json")), meta.to_string()).unwrap();
    }
    dir
}

fn fixture_body(dir: &tollgate_e2e::TempDir, name: &str) -> Vec<u8> {
    std::fs::read(dir.0.join(format!("{name}.body"))).unwrap()
}

#[test]
fn fixtures_are_served_verbatim_with_their_content_type() {
    let dir = fixture_dir();
    let mock = MockServer::start_with(&["--fixtures", dir.0.to_str().unwrap()], &[]);
    let req = |name: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("x-mock-fixture", name), ("x-mock-chunk-delay-ms", "0")];
        headers.extend_from_slice(extra);
        // Any method, path and body: the fixture answers.
        mock.post("/whatever/chat/completions", &headers, &json!({"stream": false}))
    };
    let resp = req("big_sse", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream; charset=utf-8"));
    assert_eq!(resp.body, fixture_body(&dir, "big_sse"));
    // A stream is written one event per HTTP chunk.
    assert_eq!(resp.chunks.as_ref().unwrap().len(), 31);
    let resp = req("body_json", &[]);
    assert_eq!(resp.header("content-type"), Some("application/json; charset=UTF-8"));
    assert_eq!(resp.chunks, None, "a JSON body has a content-length");
    assert_eq!(resp.body, fixture_body(&dir, "body_json"));
    assert!(resp.header("x-mock-usage").is_none());
    // Unknown or unsafe names.
    assert_eq!(req("missing", &[]).status, 404);
    assert_eq!(req("missing", &[]).json()["error"]["type"], "mock_fixture_not_found");
    assert_eq!(req("../body_json", &[]).status, 400);
    assert_eq!(req("big_sse", &[("x-mock-split", "banana")]).status, 400);
    // The directory may come from the environment instead.
    let from_env = MockServer::start_with(&[], &[("MOCK_LLM_FIXTURES", dir.0.to_str().unwrap())]);
    let resp = from_env.post("/", &[("x-mock-fixture", "small_sse")], &json!({}));
    assert_eq!(resp.body, fixture_body(&dir, "small_sse"));
    // Without a directory, a fixture request is an error that says what is missing.
    let resp = MockServer::start().post("/", &[("x-mock-fixture", "small_sse")], &json!({}));
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("--fixtures"), "{}", resp.text());
}

/// The pieces a response was written in.
fn pieces(body: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        out.push(body[at..at + n].to_vec());
        at += n;
    }
    assert_eq!(at, body.len());
    out
}

#[test]
fn awkward_and_random_splits() {
    let dir = fixture_dir();
    let mock = MockServer::start_with(&["--fixtures", dir.0.to_str().unwrap()], &[]);
    let get = |name: &str, split: &str| {
        mock.post("/", &[("x-mock-fixture", name), ("x-mock-split", split), ("x-mock-chunk-delay-ms", "0")], &json!({}))
    };
    // Small bodies: one byte per chunk.
    let resp = get("small_sse", "awkward");
    assert_eq!(resp.body, fixture_body(&dir, "small_sse"));
    assert!(resp.chunks.as_ref().unwrap().iter().all(|&n| n == 1));
    // Bigger ones: inside every CRLF and UTF-8 sequence, mid-line, after `data:`, and the
    // blank line alone.
    let resp = get("big_sse", "awkward");
    let body = fixture_body(&dir, "big_sse");
    assert_eq!(resp.body, body);
    let parts = pieces(&body, resp.chunks.as_ref().unwrap());
    let ends_with = |tail: &[u8]| parts.iter().filter(|p| p.ends_with(tail)).count();
    assert!(ends_with(b"\r") >= 60, "every CRLF is cut");
    assert!(parts.iter().any(|p| p.last().is_some_and(|b| (0xc0..0xf8).contains(b))), "a UTF-8 sequence is cut");
    assert!(ends_with(b"data:") >= 30);
    assert!(parts.iter().filter(|p| p.as_slice() == b"\r").count() >= 30, "blank lines come alone");
    // Random: at most 64 cuts, the same for the same seed, others for another.
    let a = get("big_sse", "random:7");
    let b = get("big_sse", "random:7");
    let c = get("big_sse", "random:8");
    assert_eq!(a.body, body);
    assert_eq!(a.chunks, b.chunks);
    assert_ne!(a.chunks, c.chunks);
    assert!((2..=65).contains(&a.chunks.as_ref().unwrap().len()));
    // JSON bodies are split too (and then sent chunked).
    let resp = get("body_json", "random:1");
    assert_eq!(resp.body, fixture_body(&dir, "body_json"));
    assert!(resp.chunks.is_some());
}
