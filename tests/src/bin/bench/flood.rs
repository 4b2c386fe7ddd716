//! The flood of 1,000,000 distinct API keys (`make bench`, and alone as `make soak`): one
//! Envoy with the default slot table takes a key per request. What it keeps: Envoy's memory
//! stays within the slot table's bound (after the flood and at its peak), a key limited before
//! the flood is still limited after it, no request fails with a 5xx, and the Envoy log has no
//! panic, wasm trap or crashed plugin.

use serde_json::{json, Value};
use std::cell::Cell;
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::{Envoy, EnvoyMode};

use crate::envoys::{start_envoy, Proxy};
use crate::settings::Settings;
use crate::targets::Target;
use crate::units::{fmt_int, mib};
use crate::wrk::{wrk, Run};

/// Shared-data memory may cost this many times the slot table's value bytes (see
/// docs/benchmarks.md, "The memory bound").
pub const RSS_OVERHEAD_FACTOR: u64 = 3;

/// A progress line at most this often while the flood runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

pub struct Flood {
    pub slots: u64,
    pub table_kib: u64,
    pub baseline_rss: u64,
    pub before_rss: u64,
    pub after_rss: u64,
    /// The highest RSS sampled while the flood ran (every 100 ms).
    pub peak_rss: u64,
    pub bound: u64,
    pub run: Run,
    pub keys: u64,
    pub victim_allowed: u32,
    pub victim_limited_before: bool,
    pub victim_after: u16,
    /// Envoy's responses by class over the flood Envoy's life: (2xx, 4xx, 5xx).
    pub responses: (u64, u64, u64),
    /// What the Envoy log shows of a panic, wasm trap or crashed plugin (none expected).
    pub log_problems: Vec<String>,
    pub metrics: Vec<String>,
}

/// Per-key limit small enough to limit the victim in a few requests; every flood key takes
/// one token and its record stays live (refilling takes 20 minutes).
fn flood_config(capacity: Option<u32>) -> Value {
    let mut c = json!({"rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "token_bucket", "limit": 3, "window": "1h"}]});
    if let Some(cap) = capacity {
        c["slots"] = json!({"capacity": cap});
    }
    c
}

/// "configured N rule(s), C counter slots (K KiB of shared data)" from the filter's log.
fn configured_slots(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().find(|l| l.contains("counter slots ("))?;
    let after = line.split("rule(s), ").nth(1)?;
    let slots = after.split_whitespace().next()?.parse().ok()?;
    let kib = after.split('(').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some((slots, kib))
}

/// One of Envoy's ingress counters (`http.ingress.NAME`), 0 when absent.
fn ingress_stat(envoy: &Envoy, name: &str) -> u64 {
    let text = envoy.admin(&format!("/stats?filter=^http\\.ingress\\.{name}$"));
    text.split(':').nth(1).and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0)
}

pub fn flood(settings: &Settings) -> Flood {
    let victim = |envoy: &Envoy| {
        Request::get(&envoy.url("/")).header("authorization", "Bearer sk-victim").send().map(|r| r.status).unwrap_or(0)
    };
    // Baseline: the same filter and traffic with the smallest slot table (64 records), so
    // what it holds is Envoy + V8 + Tollgate without counters.
    println!("\n1,000,000 distinct keys: baseline Envoy (slots.capacity 64), 3 s of the flood script ...");
    let baseline =
        start_envoy(settings, "bench-tollgate.yaml", Some(&flood_config(Some(64))), Vec::new(), EnvoyMode::WasmPlugin);
    let warm = wrk(settings, &baseline, "flood.lua", 3, &[("BENCH_FLOOD_KEYS", "1000000000".into())], None);
    std::thread::sleep(Duration::from_millis(300));
    let baseline_rss = baseline.envoy.rss_bytes();
    println!("  baseline RSS {} MiB after {} requests", mib(baseline_rss as f64), fmt_int(warm.requests as f64));
    drop(baseline);

    let proxy: Proxy =
        start_envoy(settings, "bench-tollgate.yaml", Some(&flood_config(None)), Vec::new(), EnvoyMode::WasmPlugin);
    let envoy = &proxy.envoy;
    let (slots, table_kib) = configured_slots(&envoy.log()).unwrap_or_else(|| {
        panic!("no \"configured ... counter slots (... KiB of shared data)\" line in the Envoy log:\n{}", envoy.log())
    });
    let mut victim_allowed = 0;
    let mut victim_limited_before = false;
    for _ in 0..10 {
        match victim(envoy) {
            200 => victim_allowed += 1,
            429 => {
                victim_limited_before = true;
                break;
            }
            s => panic!("victim key got {s} before the flood"),
        }
    }
    let before_rss = envoy.rss_bytes();
    println!(
        "  flood Envoy: {} counter slots ({} KiB of shared data); sk-victim limited after {} requests; RSS {} MiB",
        fmt_int(slots as f64),
        table_kib,
        victim_allowed,
        mib(before_rss as f64)
    );
    println!(
        "  sending {} distinct keys (at most {} s) ...",
        fmt_int(settings.flood_keys as f64),
        settings.flood_max_s
    );
    // flood.lua stops sending at BENCH_FLOOD_KEYS keys, but wrk itself waits for -d: end the
    // run once Envoy has answered them all (less the requests in flight when the script stopped).
    // Polled every 100 ms, which also samples the peak RSS and prints progress now and then.
    let completed = || ingress_stat(envoy, "downstream_rq_completed");
    let start_completed = completed();
    let done_at = start_completed + settings.flood_keys.saturating_sub(settings.connections as u64);
    let peak_rss = Cell::new(before_rss);
    let last_progress = Cell::new(Instant::now());
    let all_answered = || {
        let rss = envoy.rss_bytes();
        peak_rss.set(peak_rss.get().max(rss));
        let answered = completed();
        if last_progress.get().elapsed() >= PROGRESS_EVERY {
            last_progress.set(Instant::now());
            println!(
                "  {} keys answered so far, RSS {} MiB",
                fmt_int(answered.saturating_sub(start_completed) as f64),
                mib(rss as f64)
            );
        }
        answered >= done_at
    };
    let run = wrk(
        settings,
        &proxy,
        "flood.lua",
        settings.flood_max_s,
        &[("BENCH_FLOOD_KEYS", settings.flood_keys.to_string())],
        Some(&all_answered),
    );
    std::thread::sleep(Duration::from_millis(300));
    let after_rss = envoy.rss_bytes();
    let peak_rss = peak_rss.get().max(after_rss);
    let victim_after = victim(envoy);
    let responses = (
        ingress_stat(envoy, "downstream_rq_2xx"),
        ingress_stat(envoy, "downstream_rq_4xx"),
        ingress_stat(envoy, "downstream_rq_5xx"),
    );
    let log_problems = envoy.log_problems();
    let metrics: Vec<String> = envoy
        .prometheus()
        .lines()
        .filter(|l| l.starts_with("tollgate") && !l.ends_with(" 0"))
        .map(str::to_string)
        .collect();
    let keys = run.sent.unwrap_or(0);
    let bound = baseline_rss + table_kib * 1024 * RSS_OVERHEAD_FACTOR;
    println!(
        "  {} keys in {:.1} s ({} req/s, {:.1} µs Envoy CPU/request, {} answered 429); RSS {} -> {} MiB, peak {} MiB (bound {} MiB); sk-victim now gets {}",
        fmt_int(keys as f64),
        run.duration_us as f64 / 1e6,
        fmt_int(run.rps()),
        run.cpu_us_per_request(),
        fmt_int(run.non2xx as f64),
        mib(before_rss as f64),
        mib(after_rss as f64),
        mib(peak_rss as f64),
        mib(bound as f64),
        victim_after
    );
    Flood {
        slots,
        table_kib,
        baseline_rss,
        before_rss,
        after_rss,
        peak_rss,
        bound,
        run,
        keys,
        victim_allowed,
        victim_limited_before,
        victim_after,
        responses,
        log_problems,
        metrics,
    }
}

impl Flood {
    /// The memory target: RSS after the flood, and at its peak, within the bound.
    pub fn memory_target(&self) -> Target {
        Target {
            what: format!("1M-key RSS ≤ baseline + {RSS_OVERHEAD_FACTOR} × slot table"),
            measured: format!(
                "{} MiB ≤ {} + {RSS_OVERHEAD_FACTOR} × {:.2} = {} MiB (peak during the flood {} MiB)",
                mib(self.after_rss as f64),
                mib(self.baseline_rss as f64),
                self.table_kib as f64 / 1024.0,
                mib(self.bound as f64),
                mib(self.peak_rss as f64)
            ),
            pass: self.after_rss > 0 && self.after_rss <= self.bound && self.peak_rss <= self.bound,
        }
    }

    /// What the flood checks besides memory.
    pub fn checks(&self) -> Vec<Target> {
        vec![
            Target {
                what: "check: a key limited before the flood is still limited after it".into(),
                measured: format!(
                    "sk-victim: {} allowed then 429 before; {} after",
                    self.victim_allowed, self.victim_after
                ),
                pass: self.victim_limited_before && self.victim_after == 429,
            },
            Target {
                what: "check: no 5xx during the flood, and no panic, wasm trap or crashed plugin in Envoy's log".into(),
                measured: format!(
                    "{} 5xx; log: {}",
                    self.responses.2,
                    if self.log_problems.is_empty() { "clean".to_string() } else { self.log_problems.join("; ") }
                ),
                pass: self.responses.2 == 0 && self.log_problems.is_empty(),
            },
        ]
    }

    /// The flood's table of docs/benchmarks.md.
    pub fn table(&self) -> String {
        format!(
            "| measure | value |\n|---|---|\n\
             | distinct API keys sent | {} in {:.1} s ({} req/s, {:.1} µs Envoy CPU/request; {} answered 429, {} socket errors) |\n\
             | responses 2xx / 4xx / 5xx (Envoy's counters) | {} / {} / {} |\n\
             | slot table | {} counter slots, {} KiB of shared-data values (from the filter's log) |\n\
             | baseline RSS (same filter, slots.capacity 64, 3 s of flood) | {} MiB |\n\
             | RSS before the flood (table allocated, sk-victim limited) | {} MiB |\n\
             | RSS after the flood | {} MiB (growth {} MiB; peak during the flood {} MiB) |\n\
             | bound: baseline + {} × slot table | {} MiB |\n\
             | sk-victim after the flood | {} |\n\
             | Tollgate metrics (non-zero) | {} |\n",
            fmt_int(self.keys as f64),
            self.run.duration_us as f64 / 1e6,
            fmt_int(self.run.rps()),
            self.run.cpu_us_per_request(),
            fmt_int(self.run.non2xx as f64),
            self.run.socket_errors,
            fmt_int(self.responses.0 as f64),
            fmt_int(self.responses.1 as f64),
            fmt_int(self.responses.2 as f64),
            fmt_int(self.slots as f64),
            fmt_int(self.table_kib as f64),
            mib(self.baseline_rss as f64),
            mib(self.before_rss as f64),
            mib(self.after_rss as f64),
            mib(self.after_rss as f64 - self.before_rss as f64),
            mib(self.peak_rss as f64),
            RSS_OVERHEAD_FACTOR,
            mib(self.bound as f64),
            self.victim_after,
            if self.metrics.is_empty() { "none".to_string() } else { format!("`{}`", self.metrics.join("`, `")) },
        )
    }

    /// The note when the flood hit its time cap before sending every key.
    pub fn cap_note(&self, settings: &Settings) -> Option<String> {
        (self.keys < settings.flood_keys).then(|| {
            format!(
                "The flood hit its {} s cap (BENCH_FLOOD_MAX_SECS) after {} of the {} distinct keys.",
                settings.flood_max_s,
                fmt_int(self.keys as f64),
                fmt_int(settings.flood_keys as f64)
            )
        })
    }
}
