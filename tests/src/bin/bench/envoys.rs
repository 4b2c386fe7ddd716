//! A case's Envoy: started from its envoy/bench-*.yaml template with `--concurrency 1`,
//! pinned, and checked with one request like its wrk script sends before it is measured.

use serde_json::{json, Value};
use std::path::PathBuf;
use tollgate_e2e::http::Request;
use tollgate_e2e::{repo_root, Envoy, EnvoyMode, EnvoyOptions};

use crate::cases::{Case, REALISTIC};
use crate::machine::start_pinned;
use crate::settings::Settings;

/// A case's Envoy and its pid (for pinning and CPU time).
pub struct Proxy {
    pub envoy: Envoy,
    pub pid: Option<u32>,
}

/// The reference filter, built by scripts/bench.sh.
pub fn probe_wasm() -> PathBuf {
    repo_root().join("target/probe/wasm32-wasip1/release/tollgate_bench_probe.wasm")
}

pub fn start_envoy(
    settings: &Settings,
    template: &str,
    plugin_config: Option<&Value>,
    vars: Vec<(String, String)>,
    mode: EnvoyMode,
) -> Proxy {
    let opts = EnvoyOptions {
        template: repo_root().join("envoy").join(template),
        plugin_config: plugin_config.map(Value::to_string).unwrap_or_default(),
        vars,
        concurrency: 1,
        mode,
    };
    let (envoy, pid) = start_pinned("envoy", settings.pin.map(|p| p.0), || Envoy::start(opts));
    // Without the pid there is no CPU time per request, and no ratio worth printing.
    assert!(pid.is_some(), "started Envoy from {template} but found no child process named `envoy`");
    Proxy { envoy, pid }
}

/// One request like the case's wrk script sends, to check the Envoy answers what the case
/// claims to measure before measuring it.
pub fn sanity_check(case: &Case, envoy: &Envoy) {
    let chat = |stream: bool| {
        Request::post(
            &envoy.url("/v1/chat/completions"),
            &json!({"model": "gpt-4o-mini", "max_tokens": 64, "stream": stream,
                    "messages": [{"role": "user", "content": "hello"}]})
            .to_string(),
        )
    };
    let req = match case.script {
        "llm-json.lua" => chat(false).header("x-mock-body-bytes", "2048"),
        "llm-sse.lua" => chat(true).header("x-mock-stream-chunks", "50").header("x-mock-chunk-delay-ms", "0"),
        "rotate-keys.lua" => Request::get(&envoy.url("/")).header("authorization", "Bearer sk-bench-000"),
        _ => Request::get(&envoy.url("/")).header("authorization", "Bearer sk-bench"),
    };
    let r = req.send().unwrap_or_else(|e| panic!("{}: request failed: {e}", case.name));
    assert_eq!(r.status, 200, "{}: {}\n{}", case.name, r.text(), envoy.log());
    match case.script {
        "llm-json.lua" => assert_eq!(r.body.len(), 2048, "{}: mock body size", case.name),
        "llm-sse.lua" => assert!(r.text().trim_end().ends_with("data: [DONE]"), "{}: not a full SSE stream", case.name),
        _ => {}
    }
    let has_headers = r.header("ratelimit").is_some();
    let wants_headers = case.plugin_config.as_ref().is_some_and(|c| match c {
        Value::String(calls) => calls.contains("response_headers"),
        _ => {
            c.get("rules").is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty()))
                && c.pointer("/response/headers").and_then(Value::as_array).is_none_or(|h| !h.is_empty())
        }
    });
    assert_eq!(has_headers, wants_headers, "{}: rate-limit headers on the response: {:?}", case.name, r.headers);
    if case.name == REALISTIC || case.store {
        let policy = r.header("ratelimit-policy").unwrap_or("");
        assert!(["per-key-rpm", "per-ip", "global"].iter().all(|n| policy.contains(n)), "{policy}");
    }
}
