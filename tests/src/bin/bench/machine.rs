//! Facts about the machine a run quotes (CPU model, Envoy version, date, other load on the
//! CPUs) and CPU pinning: the child processes a start spawned, pinned with taskset, and the
//! CPU time they use.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;
use tollgate_e2e::envoy_bin;

pub fn which(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn envoy_version() -> String {
    let out = Command::new(envoy_bin()).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    let text = String::from_utf8_lossy(&out);
    // "…/envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    text.split("version: ").nth(1).and_then(|v| v.split('/').nth(1)).unwrap_or("(unknown version)").to_string()
}

pub fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Busy share of all CPUs over `window` (from /proc/stat), to notice other load on the machine.
pub fn busy_share(window: Duration) -> f64 {
    let sample = || -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let nums: Vec<u64> =
            stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect();
        let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
        (nums.iter().sum(), idle)
    };
    let (t0, i0) = sample();
    std::thread::sleep(window);
    let (t1, i1) = sample();
    let total = t1.saturating_sub(t0).max(1);
    1.0 - i1.saturating_sub(i0) as f64 / total as f64
}

/// Direct children of this process named `comm`.
pub fn children(comm: &str) -> HashSet<u32> {
    let me = std::process::id();
    let mut out = HashSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if &stat[open + 1..close] == comm && ppid == Some(me) {
            out.insert(pid);
        }
    }
    out
}

/// Pin every thread of `pid` to `cpus`.
pub fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("warning: could not pin pid {pid} to CPU {cpus}");
    }
}

/// Start something that spawns one child process named `comm`; pin that child to `cpus`.
/// Returns what `start` returned and the child's pid.
pub fn start_pinned<T>(comm: &str, cpus: Option<&str>, start: impl FnOnce() -> T) -> (T, Option<u32>) {
    let before = children(comm);
    let started = start();
    let new: Vec<u32> = children(comm).difference(&before).copied().collect();
    if let Some(cpus) = cpus {
        for pid in &new {
            pin(*pid, cpus);
        }
    }
    (started, new.first().copied())
}

/// CPU time used so far by every thread of `pid`, in nanoseconds (/proc/PID/task/*/schedstat).
pub fn cpu_ns(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}
