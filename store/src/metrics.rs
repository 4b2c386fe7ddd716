//! Prometheus metrics of the store, rendered as text at `GET /metrics`. No label ever carries
//! user data (rule names and key hashes stay out), so the series stay few.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the Redis latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    /// By endpoint (a route as written, `/ui` or `other`: few) and status.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    pub checks_allowed: AtomicU64,
    pub checks_denied: AtomicU64,
    pub lease_units_granted: AtomicU64,
    pub lease_units_returned: AtomicU64,
    pub adjustments: AtomicU64,
    pub cas_retries: AtomicU64,
    pub cas_exhausted: AtomicU64,
    pub busy: AtomicU64,
    pub redis_errors: AtomicU64,
    pub redis_timeouts: AtomicU64,
    redis_latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    redis_latency_count: AtomicU64,
    redis_latency_sum_ns: AtomicU64,
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let by_status = match map.get_mut(endpoint) {
            Some(m) => m,
            None => map.entry(endpoint.to_string()).or_default(),
        };
        *by_status.entry(status).or_insert(0) += 1;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn redis_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.redis_latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.redis_latency_count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.redis_latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Requests served so far: (endpoint, status, count), for the console's overview.
    pub fn requests(&self) -> Vec<(String, u16, u64)> {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().flat_map(|(endpoint, m)| m.iter().map(|(status, n)| (endpoint.clone(), *status, *n))).collect()
    }

    /// Redis calls that answered, and their total latency in nanoseconds.
    pub fn redis_latency_totals(&self) -> (u64, u64) {
        (self.redis_latency_count.load(Ordering::Relaxed), self.redis_latency_sum_ns.load(Ordering::Relaxed))
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP tollgate_store_requests_total HTTP requests served, by endpoint and status.\n");
        out.push_str("# TYPE tollgate_store_requests_total counter\n");
        {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for (endpoint, status, n) in map.iter().flat_map(|(e, m)| m.iter().map(move |(s, n)| (e, s, n))) {
                let _ =
                    writeln!(out, "tollgate_store_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP tollgate_store_check_decisions_total Decisions of POST /v1/check calls (a call is denied if any of its checks denies).\n");
        out.push_str("# TYPE tollgate_store_check_decisions_total counter\n");
        let _ =
            writeln!(out, "tollgate_store_check_decisions_total{{decision=\"allowed\"}} {}", get(&self.checks_allowed));
        let _ =
            writeln!(out, "tollgate_store_check_decisions_total{{decision=\"denied\"}} {}", get(&self.checks_denied));
        let counters: [(&str, &str, &AtomicU64); 8] = [
            ("tollgate_store_lease_units_granted_total", "Units granted by POST /v1/lease.", &self.lease_units_granted),
            (
                "tollgate_store_lease_units_returned_total",
                "Unspent units returned to POST /v1/lease.",
                &self.lease_units_returned,
            ),
            ("tollgate_store_adjustments_total", "Adjustments applied by POST /v1/adjust.", &self.adjustments),
            (
                "tollgate_store_cas_retries_total",
                "Compare-and-set writes retried because the counter changed meanwhile.",
                &self.cas_retries,
            ),
            (
                "tollgate_store_cas_exhausted_total",
                "Operations that gave up after the maximum number of compare-and-set retries.",
                &self.cas_exhausted,
            ),
            (
                "tollgate_store_busy_total",
                "Operations that waited too long for their turn on a counter (too many queued for it here).",
                &self.busy,
            ),
            (
                "tollgate_store_redis_errors_total",
                "Redis calls that failed (connection refused or lost, server error).",
                &self.redis_errors,
            ),
            (
                "tollgate_store_redis_timeouts_total",
                "Redis calls that did not answer within --redis-timeout-ms.",
                &self.redis_timeouts,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", get(c));
        }
        let name = "tollgate_store_redis_latency_seconds";
        let _ = writeln!(out, "# HELP {name} Latency of Redis calls that answered.\n# TYPE {name} histogram");
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {}", get(&self.redis_latency_buckets[i]));
        }
        let count = get(&self.redis_latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.redis_latency_sum_ns) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}
