//! Gemini's `generateContent` and `streamGenerateContent` (SSE with `alt=sse`, else one JSON
//! array written element by element), usage in `usageMetadata`.

use serde_json::{json, Value};

use crate::llm::{set_or_remove, Gen};

/// A Gemini `GenerateContentResponse` carrying `text`, with usage counting
/// `completed` candidate tokens so far.
pub fn gemini_chunk(g: &Gen, text: &str, completed: u64, last: bool) -> Value {
    let mut candidate = json!({
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    });
    if last {
        set_or_remove(&mut candidate, "finishReason", true, json!("STOP"));
    }
    let mut v = json!({
        "candidates": [candidate],
        "modelVersion": g.model,
        "responseId": format!("mock-{}", g.id),
    });
    set_or_remove(
        &mut v,
        "usageMetadata",
        g.usage,
        json!({
            "promptTokenCount": g.prompt,
            "candidatesTokenCount": completed,
            "totalTokenCount": g.prompt.saturating_add(completed),
        }),
    );
    v
}

/// Gemini stream chunks; always at least one (the last carries the final usage).
pub fn gemini_chunks(g: &Gen) -> Vec<Value> {
    let mut deltas = g.deltas();
    if deltas.is_empty() {
        deltas.push((g.content(), g.completion));
    }
    let count = deltas.len();
    let mut done = 0u64;
    deltas
        .into_iter()
        .enumerate()
        .map(|(i, (text, k))| {
            done += k;
            gemini_chunk(g, &text, done, i + 1 == count)
        })
        .collect()
}

/// `?alt=sse`: Server-Sent Events, CRLF line endings as Google sends them.
pub fn gemini_stream_sse(g: &Gen) -> Vec<Vec<u8>> {
    gemini_chunks(g).iter().map(|v| format!("data: {v}\r\n\r\n").into_bytes()).collect()
}

/// Without `alt=sse`: one JSON array, written element by element.
pub fn gemini_stream_array(g: &Gen) -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = gemini_chunks(g)
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}{v}", if i == 0 { "[" } else { ",\r\n" }).into_bytes())
        .collect();
    pieces.push(b"]".to_vec());
    pieces
}
