//! Envoy stats for contract §3: defined once per configuration under the names of
//! `tollgate_core::metrics`, fed from the worker's tally on each tick.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use tollgate_core::config::Config;
use tollgate_core::metrics::{
    proxy_metric_name, rule_metric_name, ProxyMetric, RuleMetric, Sample, Tally, THROTTLE_QUEUE, THROTTLE_WAIT_MS,
};

pub struct Metrics {
    /// By rule index, then `RuleMetric as usize`.
    rules: Vec<[Option<u32>; RuleMetric::ALL.len()]>,
    /// By `ProxyMetric as usize`.
    proxy: [Option<u32>; ProxyMetric::ALL.len()],
    throttle_queue: Option<u32>,
    throttle_wait_ms: Option<u32>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let counter = |name: String| define(MetricType::Counter, &name);
        Metrics {
            rules: config
                .rules
                .iter()
                .map(|r| RuleMetric::ALL.map(|m| counter(rule_metric_name(&r.name, m))))
                .collect(),
            proxy: ProxyMetric::ALL.map(|m| counter(proxy_metric_name(m))),
            throttle_queue: define(MetricType::Gauge, THROTTLE_QUEUE),
            throttle_wait_ms: define(MetricType::Histogram, THROTTLE_WAIT_MS),
        }
    }

    /// Send what the worker counted since the last tick: one host call per metric changed.
    pub fn flush(&self, tally: &Tally) {
        tally.drain(|sample| {
            let (id, by) = match sample {
                Sample::Rule(rule, m, n) => {
                    (self.rules.get(rule).and_then(|ids| ids.get(m as usize).copied().flatten()), clamp(n))
                }
                Sample::Proxy(m, n) => (self.proxy.get(m as usize).copied().flatten(), clamp(n)),
                Sample::ThrottleQueue(delta) => (self.throttle_queue, delta),
                Sample::ThrottleWaitMs(ms) => {
                    if let Some(id) = self.throttle_wait_ms {
                        let _ = hostcalls::record_metric(id, ms);
                    }
                    return;
                }
            };
            if let Some(id) = id {
                let _ = hostcalls::increment_metric(id, by);
            }
        });
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Count a refused configuration (`tollgate_config_errors`).
pub fn config_error() {
    if let Some(id) = define(MetricType::Counter, &proxy_metric_name(ProxyMetric::ConfigErrors)) {
        let _ = hostcalls::increment_metric(id, 1);
    }
}
