//! Every recorded provider response of `../shared/llm-usage/` (real bodies from OpenAI, Azure,
//! Anthropic, Gemini, Vertex, Groq, Mistral, DeepSeek, OpenRouter, vLLM, ...: see its
//! README.md) served verbatim by the mock LLM through the real Envoy, written in pieces cut at
//! awkward places (inside CRLFs and UTF-8 sequences, mid-line, one byte at a time for small
//! bodies) and at random ones: the client receives every byte unchanged, and the `tokens`,
//! `input_tokens` and `output_tokens` rules are each charged exactly what the response
//! reported (docs/usage.md), whatever the body's size.
//!
//! The fixtures are read at run time from the directory next to the repository (they are
//! never copied into it); a missing directory is a failure that says where it is expected.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::{repo_root, Envoy, MockLlm};

/// Each rule's limit: never reached.
const LIMIT: u64 = 1_000_000_000;
/// How long a charge may take to appear (settlement happens when Envoy logs the stream).
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// Requests in flight at once (Envoy runs 2 workers).
const PARALLEL: usize = 4;

struct Fixture {
    name: String,
    meta: Value,
    body: Vec<u8>,
    /// (input, output, total) to charge.
    expected: (u64, u64, u64),
}

fn fixtures_dir() -> PathBuf {
    let dir = repo_root().join("../shared/llm-usage");
    assert!(
        dir.is_dir(),
        "the recorded LLM responses are expected at {} (../shared/llm-usage/ next to the repository); \
         they are test data kept outside the repository",
        dir.display()
    );
    dir
}

fn load_fixtures() -> Vec<Fixture> {
    let dir = fixtures_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".json").map(String::from))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let meta: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap())
                .unwrap_or_else(|e| panic!("{name}.json: {e}"));
            let body = std::fs::read(dir.join(format!("{name}.body"))).unwrap_or_else(|e| panic!("{name}.body: {e}"));
            let n = |k: &str| meta["expected"][k].as_u64().unwrap_or_else(|| panic!("{name}.json: expected.{k}"));
            let mut expected = (n("input"), n("output"), n("total"));
            if name == "gemini_json_tool_use_prompt" {
                // The fixture's expected.input (13) follows the README's Gemini convention,
                // input = promptTokenCount. Tollgate charges the 289 toolUsePromptTokenCount
                // (search grounding results, billed as input) as input too: 13 + 289 = 302,
                // so that input + output = totalTokenCount (docs/usage.md).
                expected.0 = 302;
            }
            Fixture { name, meta, body, expected }
        })
        .collect()
}

fn config() -> String {
    let rule = |name: &str, unit: &str| json!({"name": name, "key": ["api_key"], "unit": unit, "algorithm": "fixed_window", "limit": LIMIT, "window": "1d"});
    json!({
        // A known reservation (1 per unit) and no include_usage: the requests ask for what the
        // recordings asked for, so every body reaches the client as recorded.
        "llm": {"estimate": "fixed:1", "include_usage": false},
        "api_key": {"headers": ["authorization", "x-api-key", "api-key", "x-goog-api-key"]},
        "response": {"headers": ["ietf"]},
        "rules": [rule("tokens", "tokens"), rule("input", "input_tokens"), rule("output", "output_tokens")],
    })
    .to_string()
}

/// The request a client of this API would send (its content does not change the recorded
/// answer; Tollgate reads it for the estimate).
fn request_body(f: &Fixture) -> Value {
    let model = f.meta["model"].as_str().unwrap_or("model");
    let stream = f.meta["stream"].as_bool().unwrap_or(false);
    let path = f.meta["request_path"].as_str().unwrap_or("/");
    let notes = f.meta["notes"].as_str().unwrap_or("");
    let path_only = path.split('?').next().unwrap_or(path);
    let mut body = match f.meta["provider"].as_str() {
        Some("gemini") => json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        Some("anthropic") => {
            json!({"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]})
        }
        _ if path_only.ends_with("/embeddings") => json!({"model": model, "input": "hi"}),
        _ if path_only.ends_with("/responses") => json!({"model": model, "input": "hi"}),
        _ if path_only.ends_with("/completions") && !path_only.ends_with("/chat/completions") => {
            json!({"model": model, "prompt": "hi"})
        }
        _ => json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    };
    if stream && !path_only.contains(":streamGenerateContent") {
        body["stream"] = json!(true);
    }
    if notes.contains("include_usage") {
        body["stream_options"] = json!({"include_usage": true});
    }
    if notes.contains("continuous_usage_stats") {
        body["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
    }
    body
}

/// The API key header the client of this provider sends.
fn with_key(req: Request, f: &Fixture, key: &str) -> Request {
    match (f.meta["auth_header"].as_str(), f.meta["provider"].as_str()) {
        (Some("api-key"), _) => req.header("api-key", key),
        (Some("authorization"), _) | (None, Some("openai" | "openai-compatible")) => {
            req.header("authorization", &format!("Bearer {key}"))
        }
        (_, Some("anthropic")) => req.header("x-api-key", key),
        (_, Some("gemini")) => req.header("x-goog-api-key", key),
        (Some(other), _) => req.header(other, key),
        (None, _) => req.header("authorization", &format!("Bearer {key}")),
    }
}

/// `"name";r=N` of the `RateLimit` header, by rule name.
fn remaining(r: &Response, rule: &str) -> Option<u64> {
    let header = r.header("ratelimit")?;
    header.split(", ").find_map(|item| {
        let rest = item.strip_prefix(&format!("\"{rule}\";"))?;
        rest.split(';').find_map(|kv| kv.strip_prefix("r=")).and_then(|v| v.parse().ok())
    })
}

/// The (input, output, total) charged to `key` so far, read from the next requests' headers
/// until they show `expected` or the deadline passes. Each probe (a GET to the echo endpoint,
/// whose answer reports no usage) keeps its own 1-unit estimate: after the k-th probe a rule
/// shows r = LIMIT - charged - k.
fn charged(envoy: &Envoy, f: &Fixture, key: &str, expected: (u64, u64, u64)) -> Result<(u64, u64, u64), String> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut probes = 0u64;
    loop {
        let r = with_key(Request::get(&envoy.url("/tollgate-fixture-probe")), f, key)
            .send()
            .map_err(|e| format!("probe failed: {e}"))?;
        probes += 1;
        if r.status != 200 {
            return Err(format!("probe answered {}: {}", r.status, r.text()));
        }
        let used = |rule: &str| {
            remaining(&r, rule)
                .map(|left| LIMIT - left - probes)
                .ok_or_else(|| format!("no {rule:?} in the RateLimit header: {:?}", r.header("ratelimit")))
        };
        let got = (used("input")?, used("output")?, used("tokens")?);
        if got == expected {
            return Ok(got);
        }
        if Instant::now() > deadline {
            return Err(format!("charged (input, output, tokens) = {got:?} after {SETTLE_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Serve `f` split as `split`; Err says what went wrong.
fn serve_one(envoy: &Envoy, f: &Fixture, split: &str, key: &str) -> Result<(), String> {
    let path = f.meta["request_path"].as_str().unwrap_or("/");
    // Small bodies come one byte per write: a pause lets Envoy read them one by one.
    let delay = if f.body.len() <= 1024 || split.starts_with("random") { "1" } else { "0" };
    let req = Request::post(&envoy.url(path), &request_body(f).to_string())
        .header("x-mock-fixture", &f.name)
        .header("x-mock-split", split)
        .header("x-mock-chunk-delay-ms", delay);
    let r = with_key(req, f, key).send().map_err(|e| format!("request failed: {e}"))?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.text()));
    }
    let content_type = f.meta["content_type"].as_str().unwrap_or("");
    if r.header("content-type") != Some(content_type) {
        return Err(format!("content-type {:?}, recorded {content_type:?}", r.header("content-type")));
    }
    if r.body != f.body {
        let at = r.body.iter().zip(&f.body).position(|(a, b)| a != b).unwrap_or(r.body.len().min(f.body.len()));
        return Err(format!(
            "the client got {} bytes, not the recorded {} (first difference at byte {at})",
            r.body.len(),
            f.body.len()
        ));
    }
    charged(envoy, f, key, f.expected).map(|_| ())
}

#[test]
fn every_recorded_provider_response_is_charged_exactly_and_reaches_the_client_unchanged() {
    let fixtures = load_fixtures();
    assert!(
        fixtures.len() >= 40,
        "{} fixtures in {}: expected the 40 recorded responses",
        fixtures.len(),
        fixtures_dir().display()
    );
    let llm = MockLlm::with_fixtures(&fixtures_dir());
    tollgate_e2e::away_from_window_edge(Duration::from_secs(86_400), Duration::from_secs(600));
    let envoy = Envoy::standalone(&config(), llm.port);
    // Each fixture twice: cut at every awkward place, and at random places (seeded by its
    // position, so a failure can be replayed).
    let cases: Vec<(usize, String)> =
        (0..fixtures.len()).flat_map(|i| [(i, "awkward".to_string()), (i, format!("random:{}", 1000 + i))]).collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                while let Some((i, split)) = cases.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let f = &fixtures[*i];
                    let key = format!("sk-fixture-{}-{}", f.name, split.replace(':', "-"));
                    if let Err(e) = serve_one(&envoy, f, split, &key) {
                        failures.lock().unwrap().push(format!("{} (split {split}): {e}", f.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let failed: std::collections::BTreeSet<&str> =
        failures.iter().map(|f| f.split(' ').next().unwrap_or_default()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures not charged exactly or not delivered unchanged:\n{}",
        failed.len(),
        fixtures.len(),
        failures.join("\n")
    );
}
