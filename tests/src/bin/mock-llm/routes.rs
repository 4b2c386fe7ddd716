//! Which answer a request gets: the `/__mock/*` control endpoints, a recorded fixture
//! (`x-mock-fixture`), a generated LLM response for a known API path, or an echo of the
//! request for everything else (and for `x-mock-echo`). Every other request is counted.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fixtures::fixture;
use crate::http::Request;
use crate::llm::llm;
use crate::options::{pad_json, MockOpts};
use crate::reply::{Body, Reply};

/// Requests served (every parsed request except the `/__mock/*` control ones).
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The echo response carries at most this many bytes of the request body.
pub const ECHO_BODY_LIMIT: usize = 64 * 1024;

pub fn handle(req: &Request) -> Reply {
    match (req.method.as_str(), req.path()) {
        ("GET", "/__mock/stats") => return Reply::json(200, &json!({"requests": REQUESTS.load(Ordering::SeqCst)})),
        ("POST", "/__mock/reset") => {
            REQUESTS.store(0, Ordering::SeqCst);
            return Reply::json(200, &json!({"requests": 0}));
        }
        _ => {}
    }
    let n = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
    let mut reply = match MockOpts::from_request(req) {
        Ok(opts) => {
            let mut reply = route(req, n, &opts);
            reply.delay_ms = opts.delay_ms;
            reply.chunk_delay_ms = opts.chunk_delay_ms;
            reply.split = opts.split;
            reply.abort_after = opts.abort_after;
            if let (Some(target), Body::Full(body)) = (opts.body_bytes, &mut reply.body) {
                pad_json(body, target);
            }
            reply
        }
        Err(msg) => Reply::error(400, "invalid_request_error", &msg),
    };
    reply.headers.push(("x-mock-request-count", n.to_string()));
    reply
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
    Responses,
    Embeddings,
    Messages,
    Gemini,
    GeminiStream,
}

impl Api {
    pub fn detect(req: &Request) -> Option<Api> {
        if req.method != "POST" {
            return None;
        }
        let path = req.path();
        if path.contains(":streamGenerateContent") {
            Some(Api::GeminiStream)
        } else if path.contains(":generateContent") {
            Some(Api::Gemini)
        } else if path.ends_with("/chat/completions") {
            Some(Api::Chat)
        } else if path.ends_with("/completions") {
            Some(Api::Completions)
        } else if path.ends_with("/responses") {
            Some(Api::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Api::Embeddings)
        } else if path.ends_with("/messages") {
            Some(Api::Messages)
        } else {
            None
        }
    }
}

pub fn route(req: &Request, n: u64, opts: &MockOpts) -> Reply {
    if let Some(status) = opts.status.filter(|&s| s >= 400) {
        return Reply::error(status, "mock_forced_status", &format!("status {status} forced by x-mock-status"));
    }
    // `x-mock-echo`: show what an LLM endpoint would have received.
    let forced_echo = req.header("x-mock-echo").is_some();
    let mut reply = match (req.header("x-mock-fixture"), Api::detect(req).filter(|_| !forced_echo)) {
        (Some(name), _) => fixture(name),
        (None, Some(api)) => llm(req, api, n, opts),
        (None, None) => echo(req),
    };
    if let Some(status) = opts.status {
        if reply.status == 200 {
            reply.status = status;
        }
    }
    reply
}

pub fn echo(req: &Request) -> Reply {
    let mut headers = Map::new();
    for (name, value) in &req.headers {
        match headers.get_mut(name) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let shown = &req.body[..req.body.len().min(ECHO_BODY_LIMIT)];
    let parsed = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
    Reply::json(
        200,
        &json!({
            "path": req.target,
            "method": req.method,
            "headers": headers,
            "body": String::from_utf8_lossy(shown),
            "body_bytes": req.body.len(),
            "json": parsed,
        }),
    )
}
