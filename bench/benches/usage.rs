//! Reading usage from response bodies as Envoy hands them over (16 KiB chunks), natively:
//! the 2 MB Responses JSON whose usage comes after a base64 image, and event streams (285 KB
//! and 278 KB of small chunks; an OpenAI stream with the usage chunk withheld). Throughput in
//! bytes per second of body.
//!
//! The bodies are the recorded responses of `../shared/llm-usage/` next to the repository,
//! read at run time; without that directory, synthetic bodies of the same shape are used.
//!
//! Run: `cargo bench -p tollgate-bench --bench usage -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use tollgate_core::llm::{BodyKind, Forward, ResponseReader};

const CHUNK: usize = 16 * 1024;

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/llm-usage");
    std::fs::read(dir.join(format!("{name}.body"))).ok()
}

fn synthetic_json() -> Vec<u8> {
    let image = "iVBORw0KGgoAAAANSUhEUgAA".repeat(80_000);
    format!(
        r#"{{"id":"resp_1","output":[{{"type":"image_generation_call","result":"{image}"}}],"usage":{{"input_tokens":2253,"output_tokens":1755,"total_tokens":4008}}}}"#
    )
    .into_bytes()
}

fn synthetic_sse(chunks: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..chunks {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":955,\"total_tokens\":965}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn read(body: &[u8], kind: BodyKind, strip: bool) -> u64 {
    let mut r = ResponseReader::new(kind, strip);
    let mut sent = 0;
    for chunk in body.chunks(CHUNK) {
        sent += match r.feed(black_box(chunk), false) {
            Forward::Unchanged => chunk.len(),
            Forward::Replace(bytes) => bytes.len(),
        };
    }
    black_box(sent);
    r.finish().total_tokens()
}

fn usage(c: &mut Criterion) {
    let cases: [(&str, Vec<u8>, BodyKind, bool); 4] = [
        (
            "JSON 2 MB, usage after a base64 image",
            fixture("openai_responses_json_image_2mb").unwrap_or_else(synthetic_json),
            BodyKind::Json,
            false,
        ),
        (
            "SSE 285 KB, ~1000 OpenAI-style chunks",
            fixture("together_hf_router_sse").unwrap_or_else(|| synthetic_sse(1000)),
            BodyKind::Sse,
            false,
        ),
        (
            "SSE 278 KB, Groq x_groq.usage",
            fixture("groq_sse_x_groq_only").unwrap_or_else(|| synthetic_sse(1000)),
            BodyKind::Sse,
            false,
        ),
        ("SSE synthetic 1000 chunks, usage chunk withheld", synthetic_sse(1000), BodyKind::Sse, true),
    ];
    let mut group = c.benchmark_group("usage");
    for (name, body, kind, strip) in cases {
        assert!(read(&body, kind, strip) > 0, "{name}: no usage found");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| read(&body, kind, strip)));
    }
    group.finish();
}

criterion_group!(benches, usage);
criterion_main!(benches);
