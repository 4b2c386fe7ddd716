//! The throughput cases, in table order: what each Envoy runs (template, Tollgate's
//! configuration or the reference filter's host calls), what wrk sends, and which case it is
//! compared with. A new case is one function and one line in `CASES`.

use serde_json::{json, Value};
use std::collections::HashSet;
use tollgate_e2e::store::PROXY_TOKEN;
use tollgate_e2e::EnvoyMode;

use crate::settings::Settings;

/// What a case's Envoy forwards to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A `direct_response` route (200, "ok\n"): Envoy alone, no upstream.
    Direct,
    /// The mock LLM (tests/src/bin/mock-llm/).
    MockLlm,
}

pub struct Case {
    pub name: &'static str,
    /// Under envoy/.
    pub template: &'static str,
    /// Tollgate's configuration, for templates that load it.
    pub plugin_config: Option<Value>,
    /// Under bench/wrk/.
    pub script: &'static str,
    pub upstream: Upstream,
    /// The case without any filter that this one is compared with ("vs no filter").
    pub no_filter: &'static str,
    /// Whether the "vs local_ratelimit" column applies (direct_response cases).
    pub vs_native: bool,
    /// Needs tollgate-store (and Redis): the case gets its own store, its port as STORE_PORT.
    pub store: bool,
    /// Runs the reference filter (bench/probe) instead of Tollgate; `plugin_config` is then
    /// its list of host calls.
    pub probe: bool,
    /// With or without Envoy's `allow_on_headers_stop_iteration` (and `hold_headers`).
    pub mode: EnvoyMode,
}

/// A slot in the case list: a case to run, or one that waits for a feature.
pub enum Slot {
    Ready(Case),
    /// Named in the table as not measured yet, with the reason. Never a stand-in measurement.
    /// (No case waits today; kept for the next one, e.g. the LLM rows "with usage parsing".)
    #[allow(dead_code)]
    Pending {
        name: &'static str,
        why: &'static str,
    },
}

/// The throughput cases, in table order. Each is a function so that a new case is one line.
pub const CASES: &[fn() -> Slot] = &[
    no_filter,
    native_local_ratelimit,
    probe_empty,
    tollgate_zero_rules,
    probe_one_rule,
    tollgate_one_rule,
    tollgate_one_rule_headers,
    probe_realistic,
    tollgate_realistic,
    global_batched,
    global_strict,
    llm_json_no_filter,
    llm_json_tollgate,
    llm_json_tollgate_stop_iteration,
    llm_sse_no_filter,
    llm_sse_tollgate_requests,
    llm_sse_tollgate,
    llm_sse_tollgate_stop_iteration,
];

pub const NO_FILTER: &str = "no filter";
pub const NATIVE: &str = "native local_ratelimit";
pub const ONE_RULE: &str = "Tollgate: 1 rule";
pub const REALISTIC: &str = "Tollgate: realistic";
pub const GLOBAL_BATCHED: &str = "Tollgate: global batched";
pub const GLOBAL_STRICT: &str = "Tollgate: global strict";
pub const LLM_JSON_NO_FILTER: &str = "LLM JSON 2KB: no filter";
pub const LLM_SSE_NO_FILTER: &str = "LLM SSE 50 chunks: no filter";
pub const LLM_SSE_REQUESTS: &str = "LLM SSE 50 chunks: Tollgate, request rule (no usage parsing)";
pub const LLM_SSE_TOKENS: &str = "LLM SSE 50 chunks: Tollgate, token rule (usage parsed)";
pub const LLM_JSON_TOKENS: &str = "LLM JSON 2KB: Tollgate, token rule (usage parsed)";
pub const LLM_JSON_TOKENS_HOLD: &str = "LLM JSON 2KB: the same, stop-iteration + hold_headers";
pub const PROBE_ONE_RULE: &str = "reference filter: one rule's host calls";
pub const PROBE_REALISTIC: &str = "reference filter: realistic's host calls";

/// A limit no benchmark reaches: the rules are checked and charged, never deny.
pub const HUGE: u64 = 1_000_000_000_000;

/// The cases also run at one connection, for their latency without queueing in Envoy.
pub const LIGHT: [&str; 5] = [REALISTIC, GLOBAL_STRICT, LLM_JSON_NO_FILTER, LLM_JSON_TOKENS, LLM_JSON_TOKENS_HOLD];
/// Seconds per light run (or BENCH_DURATION if shorter).
pub const LIGHT_SECS: u64 = 2;

fn direct(name: &'static str, template: &'static str, plugin_config: Option<Value>, script: &'static str) -> Slot {
    Slot::Ready(Case {
        name,
        template,
        plugin_config,
        script,
        upstream: Upstream::Direct,
        no_filter: NO_FILTER,
        vs_native: true,
        store: false,
        probe: false,
        mode: EnvoyMode::WasmPlugin,
    })
}

/// The reference filter (bench/probe/) making only `host_calls`, in front of a direct_response.
fn probe(name: &'static str, host_calls: &str) -> Slot {
    Slot::Ready(Case {
        name,
        template: "bench-tollgate.yaml",
        plugin_config: Some(Value::String(host_calls.to_string())),
        script: "get.lua",
        upstream: Upstream::Direct,
        no_filter: NO_FILTER,
        vs_native: true,
        store: false,
        probe: true,
        mode: EnvoyMode::WasmPlugin,
    })
}

/// The floor of any proxy-wasm filter: a Rust HTTP context that does nothing.
fn probe_empty() -> Slot {
    probe("reference filter: empty", "")
}

/// The least one rule needs from the host: the key's header, the clock, one counter's CAS.
fn probe_one_rule() -> Slot {
    probe(PROBE_ONE_RULE, "header,clock,cas")
}

/// The least "realistic" needs: the header map (key, tier), the peer address (per-IP), the
/// clock, three counters' CAS, five response headers.
fn probe_realistic() -> Slot {
    probe(PROBE_REALISTIC, "headers,peer,clock,cas,cas,cas,response_headers")
}

fn llm(name: &'static str, plugin_config: Option<Value>, script: &'static str, no_filter: &'static str) -> Slot {
    llm_in(EnvoyMode::WasmPlugin, name, plugin_config, script, no_filter)
}

fn llm_in(
    mode: EnvoyMode,
    name: &'static str,
    plugin_config: Option<Value>,
    script: &'static str,
    no_filter: &'static str,
) -> Slot {
    let template = if plugin_config.is_some() { "bench-tollgate-upstream.yaml" } else { "bench-upstream.yaml" };
    Slot::Ready(Case {
        name,
        template,
        plugin_config,
        script,
        upstream: Upstream::MockLlm,
        no_filter,
        vs_native: false,
        store: false,
        probe: false,
        mode,
    })
}

/// One per-API-key token bucket that never empties.
fn one_rule_config() -> Value {
    json!({"rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "token_bucket", "limit": HUGE, "window": "1s"}]})
}

fn no_filter() -> Slot {
    direct(NO_FILTER, "bench-direct.yaml", None, "get.lua")
}

fn native_local_ratelimit() -> Slot {
    direct(NATIVE, "bench-native-ratelimit.yaml", None, "get.lua")
}

/// The filter loaded with no rules: the Wasm boundary and the header read, nothing else.
fn tollgate_zero_rules() -> Slot {
    direct("Tollgate: loaded, 0 rules", "bench-tollgate.yaml", Some(json!({})), "get.lua")
}

fn tollgate_one_rule() -> Slot {
    let mut config = one_rule_config();
    config["response"] = json!({"headers": []});
    direct(ONE_RULE, "bench-tollgate.yaml", Some(config), "get.lua")
}

/// The same rule with the default response headers (ietf + x-ratelimit: 5 headers).
fn tollgate_one_rule_headers() -> Slot {
    direct("Tollgate: 1 rule + headers", "bench-tollgate.yaml", Some(one_rule_config()), "get.lua")
}

/// Per-key RPM with free/pro tiers from a static key map, per-IP, one global counter, both
/// header formats; 100 keys in rotation.
fn tollgate_realistic() -> Slot {
    direct(REALISTIC, "bench-tollgate.yaml", Some(realistic_config()), "rotate-keys.lua")
}

fn realistic_config() -> Value {
    // Shared with the criterion bench (bench/benches/request.rs).
    serde_json::from_str(include_str!("../../../../bench/configs/realistic.json"))
        .expect("bench/configs/realistic.json")
}

/// The realistic configuration with its per-key rule made `scope: global` with `sync`, and a
/// `store` section for envoy/bench-tollgate-store.yaml. `failure_mode: closed`, so that a store
/// call that fails answers 503 (and fails the "no request denied or failed" check) instead of
/// quietly falling back to a local limit that would stand in for the store.
fn global_config(sync: &str) -> Value {
    let mut config = realistic_config();
    config["store"] = json!({"cluster": "tollgate_store", "authority": "tollgate-store", "token": PROXY_TOKEN,
                             "timeout": "100ms", "fleet_size": 1, "failure_mode": "closed"});
    config["rules"][0]["scope"] = json!("global");
    config["rules"][0]["sync"] = json!(sync);
    config
}

fn global(name: &'static str, sync: &str) -> Slot {
    Slot::Ready(Case {
        name,
        template: "bench-tollgate-store.yaml",
        plugin_config: Some(global_config(sync)),
        script: "rotate-keys.lua",
        upstream: Upstream::Direct,
        no_filter: NO_FILTER,
        vs_native: true,
        store: true,
        probe: false,
        mode: EnvoyMode::WasmPlugin,
    })
}

/// "realistic" with the per-key rule `scope: global, sync: batched`: its counters live in
/// tollgate-store (Redis behind it); the proxy spends quota leased ahead of need, renewed by
/// one flusher per Envoy, so in steady state no request waits for the store.
fn global_batched() -> Slot {
    global(GLOBAL_BATCHED, "batched")
}

/// The same with `sync: strict`: one store round trip (and Redis call) per request.
fn global_strict() -> Slot {
    global(GLOBAL_STRICT, "strict")
}

fn llm_json_no_filter() -> Slot {
    llm(LLM_JSON_NO_FILTER, None, "llm-json.lua", LLM_JSON_NO_FILTER)
}

/// One per-key token rule: the request body is read for the estimate (`max_tokens`), the
/// response's usage is parsed and the reservation settled.
fn token_rule_config() -> Value {
    json!({"rules": [{"name": "per-key-tokens", "key": ["api_key"], "unit": "tokens", "algorithm": "token_bucket",
                      "limit": HUGE, "window": "1m"}]})
}

/// Without Envoy's stop-iteration flag (an Istio WasmPlugin): the headers go on, the body is
/// buffered and decided on, the response's usage parsed.
fn llm_json_tollgate() -> Slot {
    llm(LLM_JSON_TOKENS, Some(token_rule_config()), "llm-json.lua", LLM_JSON_NO_FILTER)
}

/// With `allow_on_headers_stop_iteration: true` and `"hold_headers": true`: the headers wait too.
fn llm_json_tollgate_stop_iteration() -> Slot {
    llm_in(
        EnvoyMode::StopIteration,
        LLM_JSON_TOKENS_HOLD,
        Some(token_rule_config()),
        "llm-json.lua",
        LLM_JSON_NO_FILTER,
    )
}

fn llm_sse_no_filter() -> Slot {
    llm(LLM_SSE_NO_FILTER, None, "llm-sse.lua", LLM_SSE_NO_FILTER)
}

/// The same stream through Tollgate with a request rule: no body read, no usage parsing.
fn llm_sse_tollgate_requests() -> Slot {
    llm(LLM_SSE_REQUESTS, Some(one_rule_config()), "llm-sse.lua", LLM_SSE_NO_FILTER)
}

fn llm_sse_tollgate() -> Slot {
    llm(LLM_SSE_TOKENS, Some(token_rule_config()), "llm-sse.lua", LLM_SSE_NO_FILTER)
}

fn llm_sse_tollgate_stop_iteration() -> Slot {
    llm_in(
        EnvoyMode::StopIteration,
        "LLM SSE 50 chunks: the same, stop-iteration + hold_headers",
        Some(token_rule_config()),
        "llm-sse.lua",
        LLM_SSE_NO_FILTER,
    )
}

/// The cases to run: all of them, or with BENCH_ONLY the cases named and the cases they are
/// compared with.
pub fn selected(settings: &Settings) -> Vec<Slot> {
    let mut slots: Vec<Slot> = CASES.iter().map(|f| f()).collect();
    if let Some(only) = &settings.only {
        let named = |c: &Case| only.iter().any(|o| c.name.contains(o.as_str()));
        let bases: HashSet<&str> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Ready(c) if named(c) => Some(c.no_filter),
                _ => None,
            })
            .collect();
        slots.retain(|s| matches!(s, Slot::Ready(c) if named(c) || bases.contains(c.name) || c.name == NO_FILTER));
    }
    slots
}
