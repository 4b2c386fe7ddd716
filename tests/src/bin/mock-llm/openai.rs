//! OpenAI's APIs: chat completions, completions, responses (JSON and streams) and embeddings,
//! with usage where OpenAI puts it (in a stream only with `stream_options.include_usage`).

use serde_json::{json, Value};

use crate::llm::{set_or_remove, sse_data, sse_event, Gen, CREATED};

pub fn openai_usage(g: &Gen) -> Value {
    json!({
        "prompt_tokens": g.prompt,
        "completion_tokens": g.completion,
        "total_tokens": g.total(),
    })
}

pub fn chat_json(g: &Gen) -> Value {
    let mut v = json!({
        "id": format!("chatcmpl-mock-{}", g.id),
        "object": "chat.completion",
        "created": CREATED,
        "model": g.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": g.content()},
            "logprobs": null,
            "finish_reason": "stop",
        }],
    });
    set_or_remove(&mut v, "usage", g.usage, openai_usage(g));
    v
}

pub fn chat_chunk(g: &Gen, choices: Value) -> Value {
    let mut v = json!({
        "id": format!("chatcmpl-mock-{}", g.id),
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": g.model,
        "choices": choices,
    });
    if g.include_usage && g.usage {
        // Like OpenAI: every chunk but the last carries `"usage": null`.
        set_or_remove(&mut v, "usage", true, Value::Null);
    }
    v
}

pub fn chat_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut events: Vec<Vec<u8>> = g
        .deltas()
        .into_iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let delta = if i == 0 { json!({"role": "assistant", "content": text}) } else { json!({"content": text}) };
            sse_data(&chat_chunk(g, json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}])))
        })
        .collect();
    events
        .push(sse_data(&chat_chunk(g, json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]))));
    if g.include_usage && g.usage {
        let mut last = chat_chunk(g, json!([]));
        set_or_remove(&mut last, "usage", true, openai_usage(g));
        events.push(sse_data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

pub fn completions_chunk(g: &Gen, object: &str, text: &str, finish: Value) -> Value {
    json!({
        "id": format!("cmpl-mock-{}", g.id),
        "object": object,
        "created": CREATED,
        "model": g.model,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
    })
}

pub fn completions_json(g: &Gen) -> Value {
    let mut v = completions_chunk(g, "text_completion", &g.content(), json!("stop"));
    set_or_remove(&mut v, "usage", g.usage, openai_usage(g));
    v
}

pub fn completions_stream(g: &Gen) -> Vec<Vec<u8>> {
    let with_usage = g.include_usage && g.usage;
    let chunk = |text: &str, finish: Value| {
        let mut v = completions_chunk(g, "text_completion", text, finish);
        if with_usage {
            set_or_remove(&mut v, "usage", true, Value::Null);
        }
        sse_data(&v)
    };
    let mut events: Vec<Vec<u8>> = g.deltas().iter().map(|(text, _)| chunk(text, Value::Null)).collect();
    events.push(chunk("", json!("stop")));
    if with_usage {
        let mut last = completions_chunk(g, "text_completion", "", Value::Null);
        if let Some(map) = last.as_object_mut() {
            map.insert("choices".into(), json!([]));
            map.insert("usage".into(), openai_usage(g));
        }
        events.push(sse_data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

pub fn responses_message(g: &Gen, text: &str, status: &str) -> Value {
    json!({
        "type": "message",
        "id": format!("msg_mock_{}", g.id),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// The Responses API object; `done` selects the completed (vs in-progress) form.
pub fn responses_json(g: &Gen, done: bool) -> Value {
    let mut v = json!({
        "id": format!("resp_mock_{}", g.id),
        "object": "response",
        "created_at": CREATED,
        "status": if done { "completed" } else { "in_progress" },
        "model": g.model,
        "output": if done { json!([responses_message(g, &g.content(), "completed")]) } else { json!([]) },
    });
    if done {
        set_or_remove(
            &mut v,
            "usage",
            g.usage,
            json!({
                "input_tokens": g.prompt,
                "output_tokens": g.completion,
                "total_tokens": g.total(),
            }),
        );
    } else {
        set_or_remove(&mut v, "usage", true, Value::Null);
    }
    v
}

pub fn responses_stream(g: &Gen) -> Vec<Vec<u8>> {
    let mut seq = 0u64;
    let mut ev = |name: &str, mut v: Value| {
        if let Some(map) = v.as_object_mut() {
            map.insert("type".into(), json!(name));
            map.insert("sequence_number".into(), json!(seq));
        }
        seq += 1;
        sse_event(name, &v)
    };
    let item_id = format!("msg_mock_{}", g.id);
    let content = g.content();
    let mut events = vec![
        ev("response.created", json!({"response": responses_json(g, false)})),
        ev("response.in_progress", json!({"response": responses_json(g, false)})),
        ev("response.output_item.added", json!({"output_index": 0, "item": responses_message(g, "", "in_progress")})),
        ev(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for (text, _) in g.deltas() {
        events.push(ev(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": text}),
        ));
    }
    events.push(ev(
        "response.output_text.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": content}),
    ));
    events.push(ev(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": content, "annotations": []}}),
    ));
    events.push(ev(
        "response.output_item.done",
        json!({"output_index": 0, "item": responses_message(g, &content, "completed")}),
    ));
    events.push(ev("response.completed", json!({"response": responses_json(g, true)})));
    events
}

pub fn embeddings_json(g: &Gen, body: &Value) -> Value {
    let inputs = match body.get("input") {
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_number()) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({
                "object": "embedding",
                "index": i,
                "embedding": [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875],
            })
        })
        .collect();
    let mut v = json!({"object": "list", "data": data, "model": g.model});
    set_or_remove(&mut v, "usage", g.usage, json!({"prompt_tokens": g.prompt, "total_tokens": g.prompt}));
    v
}
