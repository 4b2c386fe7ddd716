//! The targets a run is held to (docs/benchmarks.md) and the checks that its figures are
//! sound: each a line of the "Targets" table, PASS or FAIL. `make bench` fails when one fails.

use crate::cases::{
    GLOBAL_BATCHED, GLOBAL_STRICT, LLM_JSON_NO_FILTER, LLM_JSON_TOKENS, LLM_JSON_TOKENS_HOLD, LLM_SSE_REQUESTS,
    LLM_SSE_TOKENS, NO_FILTER, ONE_RULE, PROBE_ONE_RULE, PROBE_REALISTIC, REALISTIC,
};
use crate::rounds::Measured;
use crate::units::{fmt_int, fmt_us, MIB};

pub struct Target {
    pub what: String,
    pub measured: String,
    pub pass: bool,
}

/// The throughput, latency and size targets (the memory target is the flood's).
pub fn targets(m: &Measured, wasm_bytes: u64) -> Vec<Target> {
    vec![
        throughput(m, ONE_RULE, 0.70, PROBE_ONE_RULE),
        throughput(m, REALISTIC, 0.60, PROBE_REALISTIC),
        global_batched(m),
        global_strict_latency(m),
        llm_json_latency(m),
        llm_sse_parsing(m),
        Target {
            what: "tollgate.wasm < 2 MiB".into(),
            measured: format!("{} bytes ({:.2} MiB)", fmt_int(wasm_bytes as f64), wasm_bytes as f64 / MIB),
            pass: wasm_bytes < 2 * 1024 * 1024,
        },
    ]
}

/// `case` at least `min` × no filter by Envoy CPU per request; with the reference filter making
/// the same host calls and nothing else: what any proxy-wasm filter reaches on this machine,
/// so whether the target is reachable at all.
fn throughput(m: &Measured, case: &str, min: f64, reference: &str) -> Target {
    let (cpu, rps) = m.row(case).map(|r| m.ratios(r, NO_FILTER)).unwrap_or((0.0, 0.0));
    let floor = m.row(reference).map(|r| m.ratios(r, NO_FILTER).0);
    let context = match floor {
        Some(f) if f < min => format!(
            "; the reference filter making only its host calls reaches {f:.2}: not reachable through proxy-wasm here"
        ),
        Some(f) => format!("; the reference filter making only its host calls reaches {f:.2}"),
        None => String::new(),
    };
    Target {
        what: format!("{case} ≥ {min:.2} × no filter"),
        measured: format!("{cpu:.2} by Envoy CPU/request ({rps:.2} by requests/s){context}"),
        pass: cpu >= min,
    }
}

fn global_batched(m: &Measured) -> Target {
    let (cpu, rps) = m.row(GLOBAL_BATCHED).map(|r| m.ratios(r, REALISTIC)).unwrap_or((0.0, 0.0));
    Target {
        what: format!("{GLOBAL_BATCHED} within 10 % of realistic (≥ 0.90 ×)"),
        measured: format!("{cpu:.2} by Envoy CPU/request ({rps:.2} by requests/s)"),
        pass: cpu >= 0.90,
    }
}

/// What the store round trip adds to a request's latency: measured without queueing (one
/// connection). At 32 connections Envoy's core is saturated, so there p99 is mostly the queue,
/// which grows with the CPU the callout costs (quoted as context).
fn global_strict_latency(m: &Measured) -> Target {
    let unqueued = match (m.light(GLOBAL_STRICT), m.light(REALISTIC)) {
        (Some(s), Some(b)) => Some((s.p99_over(b), s.p99, b.p99)),
        _ => None,
    };
    let saturated = match (m.row(GLOBAL_STRICT), m.row(REALISTIC)) {
        (Some(s), Some(b)) => {
            format!("; at 32 connections (Envoy saturated, queueing) {:+.2} ms", s.p99_over(b) / 1000.0)
        }
        _ => String::new(),
    };
    Target {
        what: format!("{GLOBAL_STRICT}: p99 ≤ realistic's + 2 ms without queueing (store and Redis on loopback)"),
        measured: match unqueued {
            Some((d, s, b)) => {
                format!("{:+.2} ms at 1 connection (p99 {} against {}){saturated}", d / 1000.0, fmt_us(s), fmt_us(b))
            }
            None => "not measured".into(),
        },
        pass: unqueued.is_some_and(|(d, _, _)| d <= 2000.0),
    }
}

/// A token-rule request: its body buffered and decided on, its usage parsed. What it adds to
/// the latency of the same Envoy without Tollgate, at one connection.
fn llm_json_latency(m: &Measured) -> Target {
    let added = |name: &str| match (m.light(name), m.light(LLM_JSON_NO_FILTER)) {
        (Some(t), Some(b)) => Some(t.p50_over(b)),
        _ => None,
    };
    let (flagless, held) = (added(LLM_JSON_TOKENS), added(LLM_JSON_TOKENS_HOLD));
    let show = |d: Option<f64>| d.map(|d| format!("{:+.2} ms", d / 1000.0)).unwrap_or("not measured".into());
    Target {
        what: "LLM JSON token rule: p50 ≤ no filter's + 2 ms at 1 connection, in both Envoy modes".into(),
        measured: format!(
            "{} without allow_on_headers_stop_iteration (WasmPlugin), {} with it and hold_headers \
             (no filter: p50 {})",
            show(flagless),
            show(held),
            m.light(LLM_JSON_NO_FILTER).map(|b| fmt_us(b.p50)).unwrap_or_default()
        ),
        pass: flagless.is_some_and(|d| d <= 2000.0) && held.is_some_and(|d| d <= 2000.0),
    }
}

fn llm_sse_parsing(m: &Measured) -> Target {
    let (cpu, rps) = m.row(LLM_SSE_TOKENS).map(|r| m.ratios(r, LLM_SSE_REQUESTS)).unwrap_or((0.0, 0.0));
    Target {
        what: "LLM SSE: usage parsed within 10 % of the same stream without usage parsing (≥ 0.90 ×)".into(),
        measured: format!("{cpu:.2} by Envoy CPU/request ({rps:.2} by requests/s)"),
        pass: cpu >= 0.90,
    }
}

/// No request of the throughput cases was denied or failed (nor a store call, for the global
/// cases): otherwise the figures measure something else than the case claims.
pub fn no_failures(m: &Measured) -> Target {
    let dirty: Vec<String> =
        m.rows
            .iter()
            .filter(|(r, _)| r.non2xx + r.socket_errors + r.global.failed + r.global.fallbacks > 0)
            .map(|(r, c)| {
                let store = if c.store {
                    format!(", {} failed store calls, {} failure_mode", r.global.failed, r.global.fallbacks)
                } else {
                    String::new()
                };
                format!("{}: {} non-2xx, {} socket errors{store}", r.name, r.non2xx, r.socket_errors)
            })
            .chain(
                m.light.iter().filter(|r| r.non2xx + r.socket_errors > 0).map(|r| {
                    format!("{}, 1 connection: {} non-2xx, {} socket errors", r.name, r.non2xx, r.socket_errors)
                }),
            )
            .collect();
    Target {
        what: "check: no request denied or failed in the throughput cases".into(),
        measured: if dirty.is_empty() { "none".into() } else { dirty.join("; ") },
        pass: dirty.is_empty(),
    }
}
