//! One wrk run against a case's Envoy, read from the `BENCH {...}` line of
//! bench/wrk/report.lua, with the Envoy CPU time it cost.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use tollgate_e2e::repo_root;

use crate::envoys::Proxy;
use crate::machine::cpu_ns;
use crate::settings::Settings;
use crate::store_traffic::GlobalCounts;

/// One wrk run, from the `BENCH {...}` line of bench/wrk/report.lua.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub requests: u64,
    pub duration_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub non2xx: u64,
    pub socket_errors: u64,
    /// Keys sent, for scripts that count them (flood.lua).
    pub sent: Option<u64>,
    pub rss: u64,
    /// Envoy's CPU time during the run.
    pub envoy_cpu_ns: u64,
    /// What the global cases asked of tollgate-store during the run.
    pub global: GlobalCounts,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    /// Envoy CPU time per request, in µs: the cost of a case even when something else (the
    /// mock LLM, wrk) is the bottleneck.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.envoy_cpu_ns as f64 / 1e3 / self.requests.max(1) as f64
    }
}

/// Run wrk against `proxy` for at most `seconds`; `stop_when` (polled every 100 ms) may end
/// the run early (SIGINT: wrk stops and prints its summary over the real duration).
pub fn wrk(
    settings: &Settings,
    proxy: &Proxy,
    script: &str,
    seconds: u64,
    env: &[(&str, String)],
    stop_when: Option<&dyn Fn() -> bool>,
) -> Run {
    let script_path = repo_root().join("bench/wrk").join(script);
    let mut cmd = match settings.pin {
        // taskset execs wrk: same pid.
        Some((_, load_cpu)) => {
            let mut c = Command::new("taskset");
            c.args(["-c", load_cpu, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    cmd.args(["-t1", &format!("-c{}", settings.connections), &format!("-d{seconds}s"), "--timeout", "10s", "-s"])
        .arg(&script_path)
        .arg(format!("http://127.0.0.1:{}/", proxy.envoy.port))
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let cpu_before = cpu_ns(proxy.pid);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run wrk ({e}): run `make setup`"));
    let mut interrupted = false;
    while child.try_wait().ok().flatten().is_none() {
        if !interrupted && stop_when.is_some_and(|f| f()) {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            interrupted = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let envoy_cpu_ns = cpu_ns(proxy.pid).saturating_sub(cpu_before);
    let out = child.wait_with_output().expect("wrk output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("BENCH ")).unwrap_or_else(|| {
        panic!(
            "wrk printed no BENCH line (exit {:?}):\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("wrk BENCH line {line:?}: {e}"));
    let n = |k: &str| v[k].as_i64().unwrap_or(0).max(0) as u64;
    Run {
        requests: n("requests"),
        duration_us: n("duration_us"),
        p50_us: n("p50_us"),
        p99_us: n("p99_us"),
        non2xx: n("non2xx"),
        socket_errors: n("socket_errors"),
        sent: v["sent"].as_i64().filter(|s| *s >= 0).map(|s| s as u64),
        rss: proxy.envoy.rss_bytes(),
        envoy_cpu_ns,
        global: GlobalCounts::default(),
    }
}
