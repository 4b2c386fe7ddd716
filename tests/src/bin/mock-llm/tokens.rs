//! Deterministic token counts: prompt tokens from the text of the request's prompt fields
//! (`ceil(bytes / 4)`, at least 1), completion tokens from the request's maximum (see the
//! header of main.rs and docs/mock-llm.md).

use serde_json::Value;

/// Completion tokens when the request names no maximum.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 16;

/// Fields whose text counts toward the prompt, in every API.
pub const PROMPT_FIELDS: [&str; 7] =
    ["messages", "prompt", "input", "instructions", "system", "contents", "systemInstruction"];

/// Byte length of the text in `v` (see the module documentation).
pub fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(obj) => ["text", "content", "parts"].iter().filter_map(|k| obj.get(*k)).map(text_bytes).sum(),
        _ => 0,
    }
}

pub fn prompt_tokens(body: &Value) -> u64 {
    let bytes: u64 = PROMPT_FIELDS.iter().filter_map(|f| body.get(*f)).map(text_bytes).sum();
    bytes.div_ceil(4).max(1)
}

pub fn completion_tokens(body: &Value) -> u64 {
    ["/max_completion_tokens", "/max_tokens", "/max_output_tokens", "/generationConfig/maxOutputTokens"]
        .iter()
        .find_map(|p| body.pointer(p).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_COMPLETION_TOKENS)
}
