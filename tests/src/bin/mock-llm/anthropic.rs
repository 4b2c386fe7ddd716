//! Anthropic's messages API: the JSON answer and the event stream (`message_start` with the
//! input tokens, `message_delta` with the output tokens).

use serde_json::{json, Value};

use crate::llm::{set_or_remove, sse_event, Gen};

pub fn messages_json(g: &Gen) -> Value {
    let mut v = json!({
        "id": format!("msg_mock_{}", g.id),
        "type": "message",
        "role": "assistant",
        "model": g.model,
        "content": [{"type": "text", "text": g.content()}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
    });
    set_or_remove(&mut v, "usage", g.usage, json!({"input_tokens": g.prompt, "output_tokens": g.completion}));
    v
}

pub fn messages_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut message = json!({
        "id": format!("msg_mock_{}", g.id),
        "type": "message",
        "role": "assistant",
        "model": g.model,
        "content": [],
        "stop_reason": null,
        "stop_sequence": null,
    });
    set_or_remove(&mut message, "usage", g.usage, json!({"input_tokens": g.prompt, "output_tokens": 1}));
    let mut events = vec![
        sse_event("message_start", &json!({"type": "message_start", "message": message})),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
    ];
    for (text, _) in g.deltas() {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    events.push(sse_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
    let mut delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
    });
    set_or_remove(&mut delta, "usage", g.usage, json!({"output_tokens": g.completion}));
    events.push(sse_event("message_delta", &delta));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    events
}
