//! The settings of a run: the BENCH_* variables (see the header of main.rs), `--flood-only`
//! (`make soak`), and whether to pin Envoy and the load to separate CPUs.

use std::path::PathBuf;
use tollgate_e2e::repo_root;

use crate::machine::which;

#[derive(Clone)]
pub struct Settings {
    pub duration_s: u64,
    pub rounds: usize,
    pub connections: u32,
    pub flood_keys: u64,
    pub flood_max_s: u64,
    /// (Envoy's CPU, the load's CPU) when pinning.
    pub pin: Option<(&'static str, &'static str)>,
    pub doc: Option<PathBuf>,
    /// The BENCH_* variables set, to quote with the command.
    pub overrides: Vec<String>,
    /// BENCH_ONLY: run only the cases whose names contain one of these (comma-separated), and
    /// the cases they are compared with. For a quick look; a full run measures every case.
    pub only: Option<Vec<String>>,
    /// `--flood-only` (`make soak`): only the 1,000,000-key flood and its checks; no
    /// throughput cases, and the doc is not written.
    pub flood_only: bool,
}

impl Settings {
    pub fn from_env() -> Settings {
        let mut flood_only = false;
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--flood-only" => flood_only = true,
                other => {
                    panic!("unknown argument {other:?}: usage: bench [--flood-only] (settings: BENCH_* variables)")
                }
            }
        }
        let mut overrides = Vec::new();
        let mut num = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) => {
                    overrides.push(format!("{name}={v}"));
                    v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number"))
                }
                Err(_) => default,
            }
        };
        let duration_s = num("BENCH_DURATION", 3).max(1);
        let rounds = num("BENCH_ROUNDS", 5).max(1) as usize;
        let connections = num("BENCH_CONNECTIONS", 32).max(1) as u32;
        let flood_keys = num("BENCH_FLOOD_KEYS", 1_000_000).max(1);
        let flood_max_s = num("BENCH_FLOOD_MAX_SECS", 240).max(1);
        let doc = match std::env::var("BENCH_DOC") {
            Ok(v) if v == "-" => None,
            Ok(v) => Some(PathBuf::from(v)),
            Err(_) => Some(repo_root().join("docs/benchmarks.md")),
        };
        let only = std::env::var("BENCH_ONLY").ok().filter(|v| !v.is_empty()).map(|v| {
            overrides.push(format!("BENCH_ONLY={v:?}"));
            v.split(',').map(|s| s.trim().to_string()).collect()
        });
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let pin = (cores >= 2 && which("taskset")).then_some(("0", "1"));
        Settings { duration_s, rounds, connections, flood_keys, flood_max_s, pin, doc, overrides, only, flood_only }
    }
}
