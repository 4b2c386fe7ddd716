//! The measured rounds: every selected case's Envoy started up front (with the mock LLM, one
//! Redis and one tollgate-store per global case), checked, warmed up for 1 s, then driven by
//! wrk round-robin over the cases, round after round, so that drift on the machine hits every
//! case alike; after each round the `LIGHT` cases run again at one connection. Everything is
//! stopped before the flood.

use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::Store;
use tollgate_e2e::MockLlm;

use crate::cases::{Case, Slot, Upstream, LIGHT, LIGHT_SECS};
use crate::envoys::{probe_wasm, sanity_check, start_envoy, Proxy};
use crate::machine::start_pinned;
use crate::settings::Settings;
use crate::stats::Row;
use crate::store_traffic::GlobalCounts;
use crate::units::{fmt_int, fmt_us};
use crate::wrk::{wrk, Run};

/// The medians of every case measured, and of the light (one-connection) runs.
pub struct Measured {
    pub rows: Vec<(Row, Case)>,
    pub light: Vec<Row>,
}

impl Measured {
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|(r, _)| r.name == name).map(|(r, _)| r)
    }

    pub fn light(&self, name: &str) -> Option<&Row> {
        self.light.iter().find(|r| r.name == name)
    }

    /// Two ratios of `case` over `base`: by Envoy CPU per request (the throughput ratio once
    /// Envoy is the bottleneck, and steady when it is not) and by measured requests/s.
    pub fn ratios(&self, case: &Row, base: &str) -> (f64, f64) {
        self.row(base).map(|b| case.ratios(b)).unwrap_or((0.0, 0.0))
    }
}

/// A case being measured: its Envoy, its store (global cases) and its runs so far.
struct Running {
    case: Case,
    proxy: Proxy,
    store: Option<Store>,
    runs: Vec<Run>,
}

/// "  (N non-2xx, M socket errors)" after a run's line, when it had any.
fn errors_note(run: &Run) -> String {
    if run.non2xx + run.socket_errors > 0 {
        format!("  ({} non-2xx, {} socket errors)", run.non2xx, run.socket_errors)
    } else {
        String::new()
    }
}

pub fn measure(settings: &Settings, slots: Vec<Slot>) -> Measured {
    let needs_llm = slots.iter().any(|s| matches!(s, Slot::Ready(c) if c.upstream == Upstream::MockLlm));
    let llm = needs_llm.then(|| start_pinned("mock-llm", settings.pin.map(|p| p.1), MockLlm::start).0);
    // The global cases: one Redis, and one tollgate-store per case (so that each case's store
    // traffic is its own), on loopback and pinned with the load, like the mock LLM.
    let load_cpu = settings.pin.map(|p| p.1);
    let needs_store = slots.iter().any(|s| matches!(s, Slot::Ready(c) if c.store));
    let redis = needs_store.then(|| start_pinned("redis-server", load_cpu, Redis::start).0);
    let mut running: Vec<Running> = Vec::new();
    for slot in slots {
        let Slot::Ready(case) = slot else { continue };
        let mut vars = match (case.upstream, &llm) {
            (Upstream::MockLlm, Some(l)) => vec![("UPSTREAM_PORT".to_string(), l.port.to_string())],
            _ => Vec::new(),
        };
        let store = case.store.then(|| {
            let url = redis.as_ref().expect("Redis is started for the store cases").url();
            let store =
                start_pinned("tollgate-store", load_cpu, || Store::start(&url, &["--redis-timeout-ms", "2000"])).0;
            vars.push(("STORE_PORT".to_string(), store.port.to_string()));
            store
        });
        if case.probe {
            vars.push(("WASM".to_string(), probe_wasm().display().to_string()));
        }
        let proxy = start_envoy(settings, case.template, case.plugin_config.as_ref(), vars, case.mode);
        let before = store.as_ref().map(|s| GlobalCounts::read(s, &proxy.envoy));
        sanity_check(&case, &proxy.envoy);
        if let (Some(store), Some(before)) = (&store, before) {
            // The request went through the store: a check (strict) or a first lease (batched).
            let d = GlobalCounts::read(store, &proxy.envoy).since(&before);
            assert!(
                d.calls >= 1 && d.failed == 0 && d.fallbacks == 0,
                "{}: the sanity request did not reach tollgate-store as expected: {d:?}\n{}",
                case.name,
                store.stderr()
            );
        }
        let with = store.as_ref().map(|s| format!(", tollgate-store port {}", s.port)).unwrap_or_default();
        println!("started {:<48} envoy/{} port {}{with}", case.name, case.template, proxy.envoy.port);
        running.push(Running { case, proxy, store, runs: Vec::new() });
    }
    println!("warm-up: 1 s per case ...");
    for r in &running {
        wrk(settings, &r.proxy, r.case.script, 1, &[], None);
    }
    let light_settings = Settings { connections: 1, ..settings.clone() };
    let mut light: Vec<(&'static str, Vec<Run>)> =
        LIGHT.iter().filter(|n| running.iter().any(|r| r.case.name == **n)).map(|n| (*n, Vec::new())).collect();
    for round in 1..=settings.rounds {
        for r in running.iter_mut() {
            let run = measured_run(settings, r);
            println!(
                "round {round}/{}  {:<46} {:>8} req/s {:>5.1} µs CPU/req  p50 {:>9}  p99 {:>9}{}{}",
                settings.rounds,
                r.case.name,
                fmt_int(run.rps()),
                run.cpu_us_per_request(),
                fmt_us(run.p50_us as f64),
                fmt_us(run.p99_us as f64),
                errors_note(&run),
                store_note(&run, r.store.is_some())
            );
            r.runs.push(run);
        }
        for (name, runs) in light.iter_mut() {
            let Some(r) = running.iter().find(|r| r.case.name == *name) else { continue };
            let run = wrk(&light_settings, &r.proxy, r.case.script, settings.duration_s.min(LIGHT_SECS), &[], None);
            println!(
                "round {round}/{}  {:<46} {:>8} req/s  p50 {:>9}  p99 {:>9}{}",
                settings.rounds,
                format!("{name}, 1 connection"),
                fmt_int(run.rps()),
                fmt_us(run.p50_us as f64),
                fmt_us(run.p99_us as f64),
                errors_note(&run)
            );
            runs.push(run);
        }
    }
    let light: Vec<Row> = light.into_iter().map(|(name, runs)| Row::of(name, &runs)).collect();
    // Stop every Envoy (and the mock LLM, the stores and Redis) before the flood.
    let mut rows: Vec<(Row, Case)> = Vec::new();
    for r in running {
        rows.push((Row::of(r.case.name, &r.runs), r.case));
        drop(r.proxy);
        drop(r.store);
    }
    drop(llm);
    drop(redis);
    Measured { rows, light }
}

/// One run of a case at the settings' connections, with the store traffic it caused.
fn measured_run(settings: &Settings, r: &Running) -> Run {
    let before = r.store.as_ref().map(|s| GlobalCounts::read(s, &r.proxy.envoy));
    let mut run = wrk(settings, &r.proxy, r.case.script, settings.duration_s, &[], None);
    if let (Some(store), Some(before)) = (r.store.as_ref(), before) {
        run.global = GlobalCounts::read(store, &r.proxy.envoy).since(&before);
    }
    run
}

/// "  store calls/req …, waited …" after a global case's line.
fn store_note(run: &Run, global: bool) -> String {
    if !global {
        return String::new();
    }
    format!(
        "  store calls/req {:.3}, waited {}{}",
        run.global.calls as f64 / run.requests.max(1) as f64,
        fmt_int(run.global.waited as f64),
        if run.global.failed + run.global.fallbacks > 0 {
            format!(", {} store failures, {} failure_mode", run.global.failed, run.global.fallbacks)
        } else {
            String::new()
        }
    )
}
