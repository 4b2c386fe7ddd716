//! The `x-mock-*` request headers that shape an answer (token counts, status, delays,
//! splitting, stream length, body size, aborts), and the padding of JSON bodies to an exact
//! size (`x-mock-body-bytes`).

use crate::http::Request;
use crate::llm::DEFAULT_STREAM_CHUNKS;
use crate::reply::DEFAULT_CHUNK_DELAY_MS;
use crate::split::Split;

/// The `x-mock-*` request headers.
pub struct MockOpts {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub status: Option<u16>,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
    pub split: Option<Split>,
    pub no_usage: bool,
    pub stream_chunks: u64,
    pub body_bytes: Option<usize>,
    pub abort_after: Option<usize>,
}

impl MockOpts {
    pub fn from_request(req: &Request) -> Result<MockOpts, String> {
        let num = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            let Some(v) = req.header(name) else {
                return Ok(None);
            };
            match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!("invalid {name}: {v:?} (expected an integer in {min}..={max})")),
            }
        };
        let size = |v: Option<u64>| v.and_then(|n| usize::try_from(n).ok());
        const TOKENS_MAX: u64 = 1_000_000_000_000;
        Ok(MockOpts {
            prompt_tokens: num("x-mock-prompt-tokens", 0, TOKENS_MAX)?,
            completion_tokens: num("x-mock-completion-tokens", 0, TOKENS_MAX)?,
            status: num("x-mock-status", 200, 599)?.and_then(|s| u16::try_from(s).ok()),
            delay_ms: num("x-mock-delay-ms", 0, 600_000)?.unwrap_or(0),
            chunk_delay_ms: num("x-mock-chunk-delay-ms", 0, 60_000)?.unwrap_or(DEFAULT_CHUNK_DELAY_MS),
            split: req.header("x-mock-split").map(Split::parse).transpose()?,
            no_usage: req.header("x-mock-no-usage").is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("false"))),
            stream_chunks: num("x-mock-stream-chunks", 0, 10_000)?.unwrap_or(DEFAULT_STREAM_CHUNKS),
            body_bytes: size(num("x-mock-body-bytes", 0, 1 << 26)?),
            abort_after: size(num("x-mock-abort-after", 0, 1_000_000)?),
        })
    }
}

/// Name of the field `x-mock-body-bytes` adds to pad JSON bodies.
pub const PADDING_FIELD: &str = "mock_padding";

/// Grows a serialized JSON object to exactly `target` bytes by adding a
/// `"mock_padding":"xxx…"` member, when `target` leaves room for it.
pub fn pad_json(body: &mut Vec<u8>, target: usize) {
    if body.len() < 2 || body.last() != Some(&b'}') {
        return;
    }
    let empty = body.len() == 2;
    let overhead = PADDING_FIELD.len() + 5 + usize::from(!empty);
    let Some(fill) = target.checked_sub(body.len() + overhead) else {
        return;
    };
    body.pop();
    if !empty {
        body.push(b',');
    }
    body.extend_from_slice(format!("\"{PADDING_FIELD}\":\"").as_bytes());
    body.resize(body.len() + fill, b'x');
    body.extend_from_slice(b"\"}");
}
