//! `make bench`: Tollgate's throughput, latency and memory next to Envoy alone and Envoy's
//! native `local_ratelimit`, measured side by side in one run (docs/benchmarks.md).
//!
//! Every case is one Envoy (`--concurrency 1`, the same binary) started from an
//! `envoy/bench-*.yaml` template; all are started up front, then wrk (`-t1 -c32`, a script from
//! `bench/wrk/`) drives them in rounds, round-robin over the cases so that drift hits every case
//! alike, and the medians are quoted. With 2+ cores, Envoy is pinned to CPU 0 and wrk (and the
//! mock LLM) to CPU 1. The global cases also start one Redis and one tollgate-store per case
//! (on loopback, pinned with wrk); after each round, "realistic" and "global strict" run again
//! at one connection, for their latency without queueing. Then one flood of 1,000,000 distinct
//! API keys checks that memory stays within the slot table's bound, that a limited key stays
//! limited, and that nothing failed or crashed.
//!
//! Settings (environment): BENCH_DURATION (seconds per run, 3), BENCH_ROUNDS (5),
//! BENCH_CONNECTIONS (32), BENCH_FLOOD_KEYS (1000000), BENCH_FLOOD_MAX_SECS (240),
//! BENCH_DOC (where to write the results, docs/benchmarks.md; `-` to skip), BENCH_ONLY (run only
//! the cases whose names contain one of these comma-separated strings, with their base cases).
//! `--flood-only` (`make soak`): the flood alone, with its checks; nothing is written.
//!
//! Modules: `settings`, `cases` (what each Envoy runs), `machine` (facts, CPU pinning),
//! `envoys` (starting and checking a case's Envoy), `wrk` (one load run), `store_traffic`
//! (what the global cases ask of tollgate-store), `rounds` (the measured rounds), `stats`
//! (medians, rows, ratios), `flood` (the 1,000,000 keys), `targets`, `report` (tables and
//! docs/benchmarks.md), `units` (how figures are written).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
mod envoys;
mod flood;
mod machine;
mod report;
mod rounds;
mod settings;
mod stats;
mod store_traffic;
mod targets;
mod units;
mod wrk;

use std::time::{Duration, Instant};
use tollgate_e2e::wasm_path;

use report::Report;
use settings::Settings;

fn main() {
    let settings = Settings::from_env();
    assert!(machine::which("wrk"), "wrk not found: run `make setup` (installs the Debian package wrk)");
    if settings.flood_only {
        return flood_only(&settings);
    }
    let wasm_bytes = std::fs::metadata(wasm_path()).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let background = machine::busy_share(Duration::from_secs(1));
    let facts = report::facts(&settings, wasm_bytes);
    for (k, v) in &facts {
        println!("{k}: {v}");
    }
    println!("CPU busy before start (other work on the machine): {:.0} %", background * 100.0);

    let measured = rounds::measure(&settings, cases::selected(&settings));
    let (table, pending) = report::throughput_table(&measured);
    let global_table = report::global_table(&settings, &measured);
    let flood = flood::flood(&settings);
    let mut targets = targets::targets(&measured, wasm_bytes);
    targets.push(flood.memory_target());
    let mut checks = vec![targets::no_failures(&measured)];
    checks.extend(flood.checks());
    let notes = report::notes(&settings, &measured, &flood, pending, background, started.elapsed());
    let report = Report { facts, table, global_table, targets, checks, flood_table: flood.table(), notes };
    report.print();
    if let Some(path) = &settings.doc {
        report::write_doc(path, &report.markdown());
    }
    exit_on_failures(report.failed());
}

/// `make soak`: the flood alone, its table and its checks.
fn flood_only(settings: &Settings) {
    let flood = flood::flood(settings);
    println!("\n{}", flood.table());
    let verdicts: Vec<targets::Target> = std::iter::once(flood.memory_target()).chain(flood.checks()).collect();
    report::print_verdicts(verdicts.iter());
    if let Some(note) = flood.cap_note(settings) {
        println!("note: {note}");
    }
    exit_on_failures(verdicts.iter().filter(|t| !t.pass).count());
}

fn exit_on_failures(failed: usize) {
    if failed > 0 {
        eprintln!("\n{failed} target(s) or check(s) FAILED (see above)");
        std::process::exit(1);
    }
}
