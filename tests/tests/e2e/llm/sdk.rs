//! The official provider SDKs (`openai`, `anthropic`, `google-genai`, pinned in `.venv` by
//! `make setup`), unmodified, through Envoy + Tollgate in both Envoy modes: each behaves as
//! against its provider. The classic OpenAI streaming loop never meets a chunk it did not ask
//! for, Anthropic's stream helper gets its final message, every SDK raises its own rate-limit
//! error with a body it can read, the SDKs' retries wait `Retry-After` and succeed, and usage
//! is charged exactly. The scenarios are in tests/sdk/clients.py.

use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::{repo_root, sdk_python, Envoy, EnvoyMode, MockLlm};

/// The mock LLM counts ceil(9 / 4) = 3 prompt tokens for "Say hello"; completions are
/// `max_tokens` (5) long.
const PROMPT: u64 = 3;
const COMPLETION: u64 = 5;
const TPM: u64 = 100_000;

fn config() -> Value {
    // Scenario keys pick their rules through static tiers: `sk-limited-*` get one request an
    // hour, `sk-retry-*` one every 2 s; every key counts tokens and requests.
    let mut tiers = serde_json::Map::new();
    for provider in ["openai", "anthropic", "gemini"] {
        tiers.insert(format!("sk-limited-{provider}"), json!("limited"));
        tiers.insert(format!("sk-retry-{provider}"), json!("retry"));
    }
    json!({
        "response": {"headers": ["ietf", "openai", "anthropic"]},
        "tier": {"keys": tiers},
        "rules": [
            {"name": "tpm", "key": ["api_key"], "unit": "tokens", "algorithm": "fixed_window",
             "limit": TPM, "window": "1h"},
            {"name": "rph", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1000, "window": "1h"},
            {"name": "limited", "match": {"tiers": ["limited"]}, "key": ["api_key"],
             "algorithm": "fixed_window", "limit": 1, "window": "1h"},
            {"name": "retry", "match": {"tiers": ["retry"]}, "key": ["api_key"],
             "algorithm": "token_bucket", "limit": 1, "window": "2s", "burst": 1},
        ]
    })
}

fn run(envoy: &Envoy, scenario: &str, key: &str, extra: &[&str]) -> Value {
    let out = Command::new(sdk_python())
        .arg(repo_root().join("tests/sdk/clients.py"))
        .args([scenario, "--base-url", &format!("http://127.0.0.1:{}", envoy.port), "--key", key])
        .args(extra)
        .env("NO_PROXY", "*")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{scenario} ({key}) failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{scenario}: {e}: {stdout}"))
}

/// What remains of one rule for a key, read from the IETF `RateLimit` header of requests of its
/// own: each probe (a GET without a body) is charged 1 request and keeps its 1-token
/// reservation, and `made` counts them, so `remaining` gives what remained before any probe.
/// Settlement follows the last byte the client read: the probe polls until the figure is the
/// expected one (or 10 s passed), and returns what it saw.
struct Probe<'a> {
    envoy: &'a Envoy,
    key: &'a str,
    made: u64,
}

impl<'a> Probe<'a> {
    fn new(envoy: &'a Envoy, key: &'a str) -> Probe<'a> {
        Probe { envoy, key, made: 0 }
    }

    fn remaining(&mut self, rule: &str, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = Request::get(&self.envoy.url("/v1/probe")).header("x-api-key", self.key).send().unwrap();
            self.made += 1;
            let header = r.header("ratelimit").unwrap_or_default().to_string();
            let value: u64 = header
                .split(", ")
                .find(|item| item.starts_with(&format!("\"{rule}\";")))
                .and_then(|item| item.split(';').find_map(|p| p.strip_prefix("r=")))
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("no {rule} in RateLimit: {header:?}"));
            let before = value + self.made;
            if before == expected || Instant::now() > deadline {
                return before;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn each_mode(check: impl Fn(&Envoy, EnvoyMode)) {
    let llm = MockLlm::start();
    for mode in EnvoyMode::BOTH {
        let envoy = Envoy::standalone_in(mode, &config().to_string(), llm.port);
        check(&envoy, mode);
    }
}

#[test]
fn openai_streams_are_exactly_what_the_client_asked_for_and_charged_in_full() {
    each_mode(|envoy, mode| {
        // Tollgate asks the upstream for usage; the classic loop (chunk.choices[0]) must never
        // see the usage-only chunk that this adds.
        let out = run(envoy, "openai_stream_loop", "sk-stream-openai", &[]);
        assert_eq!(out["text"], "tok tok tok tok tok", "{mode:?}: {out}");
        // Charged prompt + completion (not the 5 reserved).
        let expected = TPM - PROMPT - COMPLETION;
        assert_eq!(Probe::new(envoy, "sk-stream-openai").remaining("tpm", expected), expected, "{mode:?}");
        // A client that asks for usage itself gets it.
        let out = run(envoy, "openai_stream_with_usage", "sk-usage-openai", &[]);
        assert_eq!(out["usage"]["prompt_tokens"], PROMPT, "{mode:?}: {out}");
        assert_eq!(out["usage"]["completion_tokens"], COMPLETION, "{mode:?}: {out}");
        assert_eq!(out["usage"]["total_tokens"], PROMPT + COMPLETION);
    });
}

#[test]
fn anthropics_stream_helper_gets_its_final_message_and_usage_is_charged() {
    each_mode(|envoy, mode| {
        let out = run(envoy, "anthropic_stream", "sk-stream-anthropic", &[]);
        assert_eq!(out["text"], "tok tok tok tok tok", "{mode:?}: {out}");
        assert_eq!(out["usage"]["input_tokens"], PROMPT);
        assert_eq!(out["usage"]["output_tokens"], COMPLETION);
        let expected = TPM - PROMPT - COMPLETION;
        assert_eq!(Probe::new(envoy, "sk-stream-anthropic").remaining("tpm", expected), expected, "{mode:?}");
    });
}

#[test]
fn gemini_keys_from_the_sdk_are_told_apart_and_charged() {
    each_mode(|envoy, mode| {
        let out = run(envoy, "gemini_generate", "sk-gen-gemini-a", &[]);
        assert!(out["text"].as_str().unwrap().starts_with("tok"), "{mode:?}: {out}");
        assert_eq!(out["stream_text"], out["text"], "{mode:?}");
        // Two requests (generate, stream) on key a, charged their real usage: 2 × (3 prompt +
        // 5 output). Key b has counters of its own.
        let mut a = Probe::new(envoy, "sk-gen-gemini-a");
        let expected = TPM - 2 * (PROMPT + COMPLETION);
        assert_eq!(a.remaining("tpm", expected), expected, "{mode:?}");
        assert_eq!(a.remaining("rph", 1000 - 2), 1000 - 2, "{mode:?}");
        assert_eq!(Probe::new(envoy, "sk-gen-gemini-b").remaining("rph", 1000), 1000, "{mode:?}");
    });
}

#[test]
fn every_sdk_raises_its_own_rate_limit_error_with_a_body_it_can_read() {
    each_mode(|envoy, mode| {
        let o = run(envoy, "openai_rate_limited", "sk-limited-openai", &[]);
        assert_eq!(o["error"], "RateLimitError", "{mode:?}: {o}");
        assert_eq!(o["status"], 429);
        assert_eq!(o["code"], "rate_limit_exceeded");
        assert_eq!(o["type"], "requests");
        assert_eq!(o["body"]["rule"], "limited");
        assert!(o["retry_after"].is_string(), "{o}");

        let a = run(envoy, "anthropic_rate_limited", "sk-limited-anthropic", &[]);
        assert_eq!(a["error"], "RateLimitError", "{mode:?}: {a}");
        assert_eq!(a["status"], 429);
        assert_eq!(a["body"]["type"], "error");
        assert_eq!(a["body"]["error"]["type"], "rate_limit_error");
        assert_eq!(a["body"]["error"]["rule"], "limited");
        assert!(a["ratelimit_reset"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339: {a}");

        let g = run(envoy, "gemini_rate_limited", "sk-limited-gemini", &[]);
        assert_eq!(g["error"], "ClientError", "{mode:?}: {g}");
        assert_eq!(g["code"], 429);
        assert_eq!(g["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(g["details"]["error"]["details"][0]["metadata"]["rule"], "limited", "{g}");
    });
}

#[test]
fn the_sdks_own_retries_wait_retry_after_and_succeed() {
    each_mode(|envoy, mode| {
        // One request every 2 s: the second call is denied with Retry-After and retried.
        let denied_before = denied(envoy, "retry");
        for (scenario, key) in [("openai_retry", "sk-retry-openai"), ("anthropic_retry", "sk-retry-anthropic")] {
            let out = run(envoy, scenario, key, &[]);
            assert_eq!(out["text"], "tok tok tok tok tok", "{mode:?} {scenario}: {out}");
            // Waiting Retry-After (rounded up to whole seconds) is what let it through.
            assert!(out["waited_s"].as_f64().unwrap() >= 1.0, "{mode:?} {scenario}: {out}");
        }
        let out = run(envoy, "gemini_retry", "sk-retry-gemini", &["--retry-delay", "2"]);
        assert!(out["text"].as_str().unwrap().starts_with("tok"), "{mode:?}: {out}");
        assert!(denied(envoy, "retry") >= denied_before + 3, "{mode:?}: each SDK met a 429 first");
    });
}

fn denied(envoy: &Envoy, rule: &str) -> u64 {
    envoy.prometheus_value(&format!("tollgate_rule_denied{{rule=\"{rule}\"}}")).unwrap_or(0.0) as u64
}
