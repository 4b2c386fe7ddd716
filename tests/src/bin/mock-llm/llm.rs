//! A generated LLM answer: its token counts and text (`tok tok …`, split into stream deltas),
//! the SSE framing, and which API's JSON or stream is built for the request.

use serde_json::Value;

use crate::anthropic::{messages_json, messages_stream};
use crate::gemini::{gemini_chunk, gemini_stream_array, gemini_stream_sse};
use crate::http::Request;
use crate::openai::{
    chat_json, chat_stream, completions_json, completions_stream, embeddings_json, responses_json, responses_stream,
};
use crate::options::MockOpts;
use crate::reply::Reply;
use crate::routes::Api;
use crate::tokens::{completion_tokens, prompt_tokens};

/// Content delta events in a stream by default.
pub const DEFAULT_STREAM_CHUNKS: u64 = 5;

/// At most this many "tok" words of content are generated (usage is unaffected).
pub const MAX_CONTENT_TOKENS: u64 = 65_536;
/// Fixed `created` timestamp, for deterministic bodies.
pub const CREATED: u64 = 1_700_000_000;

/// Everything a response builder needs.
pub struct Gen {
    pub id: u64,
    pub model: String,
    pub prompt: u64,
    pub completion: u64,
    pub usage: bool,
    pub chunks: u64,
    pub include_usage: bool,
}

impl Gen {
    /// The full completion text: `tok tok tok …`, `completion` words (capped).
    pub fn content(&self) -> String {
        words(0, self.completion)
    }

    /// The completion split into `chunks` deltas: (text, tokens in it).
    /// Tokens are spread evenly, the first deltas taking the remainder.
    pub fn deltas(&self) -> Vec<(String, u64)> {
        let n = self.chunks;
        if n == 0 {
            return Vec::new();
        }
        let (base, rem) = (self.completion / n, self.completion % n);
        let mut start = 0;
        (0..n)
            .map(|i| {
                let k = base + u64::from(i < rem);
                let text = words(start, k);
                start += k;
                (text, k)
            })
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }
}

/// Words `start..start+count` of the content: "tok", then " tok" each.
pub fn words(start: u64, count: u64) -> String {
    let end = start.saturating_add(count).min(MAX_CONTENT_TOKENS);
    let mut s = String::new();
    for i in start..end {
        s.push_str(if i == 0 { "tok" } else { " tok" });
    }
    s
}

pub fn sse_data(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

pub fn sse_event(name: &str, v: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {v}\n\n").into_bytes()
}

/// Sets `obj[key] = value` when `present`, removes the key otherwise.
pub fn set_or_remove(obj: &mut Value, key: &str, present: bool, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        if present {
            map.insert(key.to_string(), value);
        } else {
            map.remove(key);
        }
    }
}

pub fn llm(req: &Request, api: Api, n: u64, opts: &MockOpts) -> Reply {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Reply::error(400, "invalid_request_error", "request body must be a JSON object"),
        Err(e) => return Reply::error(400, "invalid_request_error", &format!("malformed JSON request body: {e}")),
    };
    let model = match api {
        Api::Gemini | Api::GeminiStream => {
            let last = req.path().rsplit('/').next().unwrap_or_default();
            last.split(':').next().unwrap_or_default().to_string()
        }
        _ => body.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_string(),
    };
    let g = Gen {
        id: n,
        model,
        prompt: opts.prompt_tokens.unwrap_or_else(|| prompt_tokens(&body)),
        completion: match api {
            Api::Embeddings => 0,
            _ => opts.completion_tokens.unwrap_or_else(|| completion_tokens(&body)),
        },
        usage: !opts.no_usage,
        chunks: opts.stream_chunks,
        include_usage: body.pointer("/stream_options/include_usage") == Some(&Value::Bool(true)),
    };
    let stream = match api {
        Api::GeminiStream => true,
        Api::Gemini | Api::Embeddings => false,
        _ => body.get("stream") == Some(&Value::Bool(true)),
    };
    let mut reply = match (api, stream) {
        (Api::Chat, false) => Reply::json(200, &chat_json(&g)),
        (Api::Chat, true) => Reply::stream("text/event-stream", chat_stream(&g)),
        (Api::Completions, false) => Reply::json(200, &completions_json(&g)),
        (Api::Completions, true) => Reply::stream("text/event-stream", completions_stream(&g)),
        (Api::Responses, false) => Reply::json(200, &responses_json(&g, true)),
        (Api::Responses, true) => Reply::stream("text/event-stream", responses_stream(&g)),
        (Api::Embeddings, _) => Reply::json(200, &embeddings_json(&g, &body)),
        (Api::Messages, false) => Reply::json(200, &messages_json(&g)),
        (Api::Messages, true) => Reply::stream("text/event-stream", messages_stream(&g)),
        (Api::Gemini, _) => Reply::json(200, &gemini_chunk(&g, &g.content(), g.completion, true)),
        (Api::GeminiStream, _) => {
            let sse = req.query().split('&').any(|kv| kv.eq_ignore_ascii_case("alt=sse"));
            if sse {
                Reply::stream("text/event-stream", gemini_stream_sse(&g))
            } else {
                Reply::stream("application/json", gemini_stream_array(&g))
            }
        }
    };
    if g.usage {
        reply.headers.push(("x-mock-usage", format!("{},{}", g.prompt, g.completion)));
    }
    reply.note = format!(" usage={},{}", g.prompt, g.completion);
    reply
}
