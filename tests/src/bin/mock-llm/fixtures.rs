//! Recorded responses (`--fixtures DIR`, `x-mock-fixture: NAME`): `DIR/NAME.body` served
//! verbatim with the `content_type` of `DIR/NAME.json`; an event stream one event per chunk.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::reply::{Body, Reply};

/// The directory of recorded responses (`--fixtures`), set once at start.
pub static FIXTURES: OnceLock<Option<PathBuf>> = OnceLock::new();

/// A recorded response, verbatim: `NAME.body` with the `content_type` of `NAME.json`. An
/// event stream is written one event per HTTP chunk (unless `x-mock-split`).
pub fn fixture(name: &str) -> Reply {
    let Some(dir) = FIXTURES.get().and_then(Option::as_ref) else {
        return Reply::error(
            500,
            "mock_fixture_error",
            "x-mock-fixture needs mock-llm --fixtures DIR (or MOCK_LLM_FIXTURES)",
        );
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Reply::error(400, "mock_fixture_error", &format!("invalid fixture name {name:?}"));
    }
    let (meta, body) =
        match (std::fs::read(dir.join(format!("{name}.json"))), std::fs::read(dir.join(format!("{name}.body")))) {
            (Ok(meta), Ok(body)) => (meta, body),
            _ => {
                let msg = format!("no fixture {name:?} in {}", dir.display());
                return Reply::error(404, "mock_fixture_not_found", &msg);
            }
        };
    let meta: Value = serde_json::from_slice(&meta).unwrap_or(Value::Null);
    let Some(content_type) = meta.get("content_type").and_then(Value::as_str) else {
        return Reply::error(500, "mock_fixture_error", &format!("{name}.json has no content_type"));
    };
    let mut reply = if content_type.to_ascii_lowercase().starts_with("text/event-stream") {
        Reply::stream(content_type, sse_events(&body))
    } else {
        Reply { content_type: content_type.to_string(), body: Body::Full(body), ..Reply::json(200, &Value::Null) }
    };
    reply.note = format!(" fixture={name}");
    reply
}

/// A stream cut after each blank line (each event with its line ends).
pub fn sse_events(body: &[u8]) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let sep = [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"].into_iter().find(|sep| body[i..].starts_with(sep));
        match sep {
            Some(sep) => {
                i += sep.len();
                events.push(body[start..i].to_vec());
                start = i;
            }
            None => i += 1,
        }
    }
    if start < body.len() {
        events.push(body[start..].to_vec());
    }
    events
}
