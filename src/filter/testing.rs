//! An in-memory host for testing the filter natively: a clock the test moves, shared data in
//! memory, store calls recorded for the test to answer, and a stream that behaves like Envoy's
//! (request headers cannot change once they went upstream, a local reply ends the request).
//! The tests below drive whole requests through `Worker` and `Flow` as a host would.

use super::{Flow, Host, Step, StoreAnswer, StoreCall, Stream, Worker};
use crate::config::Config;
use crate::engine::algorithm::Nanos;
use crate::engine::shared_store::{MemoryStore, SharedStore};
use crate::limiter::Limiter;
use crate::metrics::{ProxyMetric, RuleMetric, Sample};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};

pub const T0: Nanos = 1_700_000_000_000_000_000;

pub struct TestHost {
    pub now: Cell<Nanos>,
    pub store: MemoryStore,
    pub calls: RefCell<Vec<(u32, StoreCall)>>,
    next_token: Cell<u32>,
}

impl TestHost {
    pub fn new() -> TestHost {
        TestHost {
            now: Cell::new(T0),
            store: MemoryStore::new(),
            calls: RefCell::new(Vec::new()),
            next_token: Cell::new(1),
        }
    }

    pub fn advance(&self, ns: Nanos) {
        self.now.set(self.now.get() + ns);
    }

    pub fn take_calls(&self) -> Vec<(u32, StoreCall)> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }
}

impl Host for TestHost {
    fn now(&self) -> Nanos {
        self.now.get()
    }

    fn shared(&self) -> &dyn SharedStore {
        &self.store
    }

    fn dispatch(&self, call: &StoreCall) -> Option<u32> {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.calls.borrow_mut().push((token, call.clone()));
        Some(token)
    }
}

/// A local reply: status, headers, body.
pub type Reply = (u32, Vec<(String, String)>, Vec<u8>);

/// A request and its response as Envoy would hold them.
#[derive(Default)]
pub struct TestStream {
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    /// The request headers went upstream: they can no longer change.
    pub headers_sent: bool,
    pub reply: Option<Reply>,
    pub response_headers: Vec<(String, String)>,
    /// The response chunk of the current body callback (what the filter may replace).
    pub chunk: Vec<u8>,
}

impl TestStream {
    pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> TestStream {
        let mut all = vec![(":method".to_string(), method.to_string()), (":path".to_string(), path.to_string())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if !body.is_empty() {
            all.push(("content-length".into(), body.len().to_string()));
        }
        TestStream { request_headers: all, request_body: body.as_bytes().to_vec(), ..TestStream::default() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn reply_json(&self) -> Value {
        let (_, _, body) = self.reply.as_ref().expect("a local reply");
        serde_json::from_slice(body).expect("JSON")
    }
}

impl Stream for TestStream {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.request_headers.clone()
    }

    fn peer_address(&self) -> Option<String> {
        Some("10.0.0.1:5555".into())
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        if self.headers_sent {
            return false;
        }
        self.request_headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.request_headers.push((name.to_string(), v.to_string()));
        }
        true
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        self.request_body.get(..size).map(<[u8]>::to_vec)
    }

    fn set_request_body(&mut self, _size: usize, body: &[u8]) -> bool {
        self.request_body = body.to_vec();
        true
    }

    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.reply = Some((status, headers, body.to_vec()));
        true
    }

    fn response_header(&self, name: &str) -> Option<String> {
        TestStream::response_header(self, name).map(str::to_string)
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> bool {
        self.response_headers.push((name.to_string(), value.to_string()));
        true
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> bool {
        self.response_headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.response_headers.push((name.to_string(), v.to_string()));
        }
        true
    }

    fn response_body(&self, _size: usize) -> Vec<u8> {
        self.chunk.clone()
    }

    fn set_response_body(&mut self, _size: usize, body: &[u8]) -> bool {
        self.chunk = body.to_vec();
        true
    }
}

pub fn worker(config: Value, host: &TestHost) -> Worker {
    let limiter = Limiter::new(Config::from_value(&config).expect("valid config"));
    limiter.prepare(host.shared()).expect("shared data");
    Worker::new(limiter, 7)
}

/// A whole request: headers, then the body (if any) the way Envoy delivers it when the
/// headers go on (`hold`: false) or wait (`hold`: true). Returns the flow, the stream and
/// whether the request went upstream.
pub fn send(w: &Worker, host: &TestHost, mut s: TestStream) -> (Flow, TestStream, bool) {
    let mut flow = Flow::new(1);
    let has_body = !s.request_body.is_empty();
    let step = flow.on_request_headers(w, host, &mut s, !has_body);
    if s.reply.is_some() {
        return (flow, s, false);
    }
    if step == Step::Continue {
        s.headers_sent = true;
    }
    if has_body {
        let size = s.request_body.len();
        if flow.on_request_body(w, host, &mut s, size, true) == Step::Pause || s.reply.is_some() {
            return (flow, s, false);
        }
        s.headers_sent = true;
    }
    let upstream = s.reply.is_none();
    (flow, s, upstream)
}

/// The response: headers with `content_type`, then the body in `chunks`; returns what the
/// client received.
pub fn respond(
    flow: &mut Flow,
    w: &Worker,
    host: &TestHost,
    s: &mut TestStream,
    content_type: &str,
    chunks: &[&str],
) -> String {
    s.response_headers.push(("content-type".into(), content_type.into()));
    flow.on_response_headers(w, s);
    let mut received = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        s.chunk = chunk.as_bytes().to_vec();
        flow.on_response_body(s, chunk.len(), i + 1 == chunks.len());
        received.push_str(&String::from_utf8_lossy(&s.chunk));
    }
    flow.on_done(w, host);
    received
}

pub fn drained(w: &Worker) -> Vec<Sample> {
    let mut out = Vec::new();
    w.tally.drain(|s| out.push(s));
    out
}

// ---------------------------------------------------------------------------------------------

fn tpm(limit: u64) -> Value {
    json!({"rules": [{"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window",
                      "limit": limit, "window": "1h"}]})
}

fn chat(stream: bool) -> TestStream {
    let body = json!({"model": "gpt-4o", "max_tokens": 50, "stream": stream, "messages": []}).to_string();
    TestStream::request("POST", "/v1/chat/completions", &[("x-api-key", "sk-1")], &body)
}

/// What remains of the first rule for `sk-1`, read by a request without a body.
fn remaining(w: &Worker, host: &TestHost) -> u64 {
    let s = TestStream::request("GET", "/v1/models", &[("x-api-key", "sk-1")], "");
    let (mut flow, mut s, _) = send(w, host, s);
    flow.on_response_headers(w, &mut s);
    let header = s.response_header("ratelimit").unwrap_or_default().to_string();
    flow.on_done(w, host);
    let r = header.split(';').find_map(|p| p.strip_prefix("r=")).expect("r=");
    r.parse::<u64>().unwrap() + 1 // this probe's own reservation of 1
}

const OPENAI_STREAM: [&str; 4] = [
    "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"com",
    "pletion_tokens\":3,\"total_tokens\":10}}\n\n",
    "data: [DONE]\n\n",
];

#[test]
fn a_streamed_chat_is_rewritten_to_report_usage_and_the_client_gets_only_what_it_asked_for() {
    let host = TestHost::new();
    let w = worker(tpm(1000), &host);
    let (mut flow, mut s, upstream) = send(&w, &host, chat(true));
    assert!(upstream);
    assert_eq!(s.header("content-length"), None, "the headers went on first: the body goes chunked");
    assert_eq!(s.header("accept-encoding"), None);
    let sent: Value = serde_json::from_slice(&s.request_body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let received = respond(&mut flow, &w, &host, &mut s, "text/event-stream", &OPENAI_STREAM);
    assert!(!received.contains("\"choices\":[]"), "the usage chunk Tollgate caused is withheld: {received}");
    assert!(received.contains("[DONE]") && received.contains("\"hi\""));
    assert_eq!(remaining(&w, &host), 1000 - 10, "charged the 10 tokens used, not the 50 reserved");
}

#[test]
fn a_client_that_asked_for_usage_gets_it_and_the_length_is_exact_when_headers_wait() {
    let host = TestHost::new();
    let mut config = tpm(1000);
    config["hold_headers"] = json!(true);
    let w = worker(config, &host);
    let body = json!({"model": "gpt-4o", "max_tokens": 50, "stream": true, "messages": [],
                      "stream_options": {"include_usage": true}})
    .to_string();
    let s = TestStream::request("POST", "/v1/chat/completions", &[("x-api-key", "sk-1")], &body);
    let mut flow = Flow::new(1);
    let mut s = s;
    assert_eq!(flow.on_request_headers(&w, &host, &mut s, false), Step::Pause, "hold_headers: the headers wait");
    assert_eq!(flow.on_request_body(&w, &host, &mut s, body.len(), true), Step::Continue);
    assert_eq!(s.header("content-length"), Some(body.len().to_string().as_str()), "nothing rewritten");
    let received = respond(&mut flow, &w, &host, &mut s, "text/event-stream", &OPENAI_STREAM);
    assert_eq!(received, OPENAI_STREAM.concat(), "the stream it asked for, byte for byte");
    assert_eq!(remaining(&w, &host), 990);
}

#[test]
fn usage_in_a_json_body_settles_and_no_usage_keeps_the_reservation_and_counts_it() {
    let host = TestHost::new();
    let w = worker(tpm(1000), &host);
    let (mut flow, mut s, _) = send(&w, &host, chat(false));
    let usage = r#"{"id":"x","usage":{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25}}"#;
    respond(&mut flow, &w, &host, &mut s, "application/json", &[&usage[..10], &usage[10..]]);
    assert_eq!(remaining(&w, &host), 975);
    drained(&w);
    let (mut flow, mut s, _) = send(&w, &host, chat(false));
    respond(&mut flow, &w, &host, &mut s, "application/json", &["{\"id\":\"x\"}"]);
    assert!(drained(&w).contains(&Sample::Proxy(ProxyMetric::UsageMissing, 1)));
    assert_eq!(remaining(&w, &host), 975 - 1 - 50, "no usage: the 50 reserved stand (and the first probe's 1)");
}

#[test]
fn header_rules_deny_before_the_body_and_count_the_denial() {
    let host = TestHost::new();
    let config = json!({"rules": [
        {"name": "rpm", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1, "window": "1m"},
        {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window", "limit": 1000, "window": "1m"}]});
    let w = worker(config, &host);
    let (_, _, upstream) = send(&w, &host, chat(false));
    assert!(upstream);
    let mut flow = Flow::new(2);
    let mut s = chat(false);
    assert_eq!(flow.on_request_headers(&w, &host, &mut s, false), Step::Pause);
    let (status, _, _) = s.reply.as_ref().expect("denied on the headers");
    assert_eq!(*status, 429);
    assert_eq!(s.reply_json()["error"]["rule"], "rpm");
    assert!(drained(&w).contains(&Sample::Rule(0, RuleMetric::Denied, 1)));
}

#[test]
fn a_throttled_request_is_held_until_the_tick_releases_it_or_refunded_when_its_client_leaves() {
    let host = TestHost::new();
    let config = json!({"rules": [{"name": "tb", "key": ["api_key"], "algorithm": "token_bucket", "limit": 10,
        "window": "1s", "burst": 1, "strategy": "throttle", "max_wait": "1s"}]});
    let w = worker(config, &host);
    let get = || TestStream::request("GET", "/", &[("x-api-key", "sk-1")], "");
    assert!(send(&w, &host, get()).2);
    let mut held = Flow::new(9);
    assert_eq!(held.on_request_headers(&w, &host, &mut get(), true), Step::Pause);
    assert!(w.tick(&host).is_empty(), "not due yet");
    host.advance(100_000_000);
    let released = w.tick(&host);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, 9);
    w.resumed(released[0], true);
    // A second held request whose client leaves: its charge comes back.
    let mut gone = Flow::new(10);
    assert_eq!(gone.on_request_headers(&w, &host, &mut get(), true), Step::Pause);
    gone.on_done(&w, &host);
    assert!(w.tick(&host).is_empty());
    let samples = drained(&w);
    assert!(samples.contains(&Sample::ThrottleWaitMs(100)), "{samples:?}");
    // Held twice, released once, abandoned once: the gauge is back where it was.
    assert!(!samples.iter().any(|s| matches!(s, Sample::ThrottleQueue(_))), "{samples:?}");
}

fn global(sync: &str, failure_mode: &str) -> Value {
    json!({"store": {"cluster": "store", "authority": "tollgate-store", "token": "P", "failure_mode": failure_mode},
           "rules": [{"name": "fleet", "key": ["api_key"], "scope": "global", "sync": sync,
                      "algorithm": "fixed_window", "limit": 10, "window": "1m"}]})
}

#[test]
fn a_strict_global_rule_waits_for_the_store_and_follows_its_answer() {
    let host = TestHost::new();
    let w = worker(global("strict", "closed"), &host);
    let mut flow = Flow::new(1);
    let mut s = TestStream::request("GET", "/", &[("x-api-key", "sk-1")], "");
    assert_eq!(flow.on_request_headers(&w, &host, &mut s, true), Step::Pause);
    let calls = host.take_calls();
    let (token, call) = &calls[0];
    assert_eq!(call.cluster, "store");
    assert!(call.headers.contains(&(":path", "/v1/check".to_string())));
    assert!(call.headers.contains(&("authorization", "Bearer P".to_string())));
    assert!(flow.awaits(*token));
    let answer = json!({"allowed": false, "results": [{"allowed": false, "remaining": 0, "reset_after_ms": 5000,
                                                       "retry_after_ms": 5000}]})
    .to_string();
    let resume = flow.on_store_answer(&w, &host, &mut s, StoreAnswer { status: Some(200), body: answer.as_bytes() });
    assert!(!resume, "denied: answered locally, not resumed");
    let (status, headers, _) = s.reply.clone().unwrap();
    assert_eq!(status, 429);
    assert!(headers.contains(&("retry-after".to_string(), "5".to_string())));
}

#[test]
fn without_the_store_each_failure_mode_does_what_it_says() {
    for (mode, expected) in [("closed", Some(503)), ("open", None), ("local", None)] {
        let host = TestHost::new();
        let w = worker(global("strict", mode), &host);
        let mut flow = Flow::new(1);
        let mut s = TestStream::request("GET", "/", &[("x-api-key", "sk-1")], "");
        assert_eq!(flow.on_request_headers(&w, &host, &mut s, true), Step::Pause);
        let (token, _) = host.take_calls()[0].clone();
        assert!(flow.awaits(token));
        let resume = flow.on_store_answer(&w, &host, &mut s, StoreAnswer { status: None, body: b"" });
        assert_eq!(s.reply.as_ref().map(|r| r.0), expected, "{mode}");
        assert_eq!(resume, expected.is_none(), "{mode}");
        let samples = drained(&w);
        assert!(samples.contains(&Sample::Proxy(ProxyMetric::StoreTimeouts, 1)), "{mode}: {samples:?}");
        assert!(samples.contains(&Sample::Proxy(ProxyMetric::FailureModeUsed, 1)), "{mode}");
    }
}

#[test]
fn batched_leases_serve_requests_without_a_call_once_granted() {
    let host = TestHost::new();
    let w = worker(global("batched", "closed"), &host);
    let mut flow = Flow::new(1);
    let mut s = TestStream::request("GET", "/", &[("x-api-key", "sk-1")], "");
    assert_eq!(flow.on_request_headers(&w, &host, &mut s, true), Step::Pause);
    let (token, call) = host.take_calls()[0].clone();
    assert!(call.headers.contains(&(":path", "/v1/lease".to_string())));
    let grant = json!({"leases": [{"granted": 5, "allowed": true, "remaining": 5, "reset_after_ms": 30000,
                                    "retry_after_ms": 0}]})
    .to_string();
    assert!(flow.awaits(token));
    assert!(flow.on_store_answer(&w, &host, &mut s, StoreAnswer { status: Some(200), body: grant.as_bytes() }));
    // The next requests spend the lease: no call.
    for _ in 0..4 {
        let mut next = Flow::new(2);
        let mut s = TestStream::request("GET", "/", &[("x-api-key", "sk-1")], "");
        assert_eq!(next.on_request_headers(&w, &host, &mut s, true), Step::Continue);
    }
    assert!(host.take_calls().is_empty());
}

#[test]
fn the_worker_polls_overrides_with_its_version_and_keeps_the_last_good_copy() {
    let host = TestHost::new();
    let w = worker(global("strict", "open"), &host);
    assert!(w.tick(&host).is_empty());
    let (token, call) = host.take_calls()[0].clone();
    assert!(call.headers.contains(&(":path", "/v1/sync".to_string())));
    let sync = json!({"version": 7, "emergency": null, "allow_keys": [], "allow_ips": [], "grants": [],
                      "key_limits": []})
    .to_string();
    w.on_store_answer(&host, token, StoreAnswer { status: Some(200), body: sync.as_bytes() });
    assert_eq!(w.overrides().version, "7");
    host.advance(2_000_000_000);
    w.tick(&host);
    let (token, call) = host.take_calls()[0].clone();
    assert!(call.headers.contains(&("if-none-match", "\"7\"".to_string())));
    w.on_store_answer(&host, token, StoreAnswer { status: None, body: b"" });
    assert_eq!(w.overrides().version, "7", "kept while the store is away");
    assert!(drained(&w).contains(&Sample::Proxy(ProxyMetric::StoreErrors, 1)));
}
