//! Envoy stats for contract §3 (names in `tollgate_core::metrics`).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use std::cell::Cell;
use tollgate_core::config::Config;
use tollgate_core::engine::EngineStats;
use tollgate_core::limiter::{Evaluation, RuleOutcome, RuleStatus};
use tollgate_core::metrics::{
    proxy_metric_name, rule_metric_name, ProxyMetric, RuleMetric, THROTTLE_QUEUE, THROTTLE_WAIT_MS,
};

/// A counter whose increments are summed in the worker and sent on the tick: one host call
/// per counter per tick instead of one per request.
struct Counter {
    id: u32,
    pending: Cell<u64>,
}

pub struct Metrics {
    /// By rule index, then `RuleMetric as usize`.
    rules: Vec<[Option<Counter>; RuleMetric::ALL.len()]>,
    /// By `ProxyMetric as usize`.
    proxy: [Option<Counter>; ProxyMetric::ALL.len()],
    /// Requests held right now by throttle rules (a gauge every worker adds to).
    throttle_queue: Option<u32>,
    /// How long released requests were held, in ms.
    throttle_wait_ms: Option<u32>,
}

fn counter(name: &str) -> Option<Counter> {
    let id = hostcalls::define_metric(MetricType::Counter, name).ok()?;
    Some(Counter { id, pending: Cell::new(0) })
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let rules =
            config.rules.iter().map(|r| RuleMetric::ALL.map(|m| counter(&rule_metric_name(&r.name, m)))).collect();
        let proxy = ProxyMetric::ALL.map(|m| counter(&proxy_metric_name(m)));
        Metrics {
            rules,
            proxy,
            throttle_queue: hostcalls::define_metric(MetricType::Gauge, THROTTLE_QUEUE).ok(),
            throttle_wait_ms: hostcalls::define_metric(MetricType::Histogram, THROTTLE_WAIT_MS).ok(),
        }
    }

    pub fn held(&self) {
        if let Some(id) = self.throttle_queue {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn abandoned(&self) {
        if let Some(id) = self.throttle_queue {
            let _ = hostcalls::increment_metric(id, -1);
        }
    }

    pub fn released(&self, waited_ns: u64) {
        self.abandoned();
        if let Some(id) = self.throttle_wait_ms {
            let _ = hostcalls::record_metric(id, waited_ns / 1_000_000);
        }
    }

    fn bump(c: Option<&Counter>, by: u64) {
        if let Some(c) = c {
            c.pending.set(c.pending.get().saturating_add(by));
        }
    }

    pub fn rule(&self, rule: usize, m: RuleMetric) {
        Self::bump(self.rules.get(rule).and_then(|ids| ids[m as usize].as_ref()), 1);
    }

    pub fn proxy(&self, m: ProxyMetric, by: u64) {
        Self::bump(self.proxy[m as usize].as_ref(), by);
    }

    /// Send what was counted since the last flush (called on the root context's tick).
    pub fn flush(&self) {
        let all = self.rules.iter().flat_map(|r| r.iter()).chain(self.proxy.iter()).flatten();
        for c in all {
            let n = c.pending.replace(0);
            if n > 0 {
                let _ = hostcalls::increment_metric(c.id, n.min(i64::MAX as u64) as i64);
            }
        }
    }

    pub fn record(&self, eval: &Evaluation) {
        self.record_outcomes(&eval.rules);
        self.record_stats(&eval.stats);
    }

    pub fn record_outcomes(&self, outcomes: &[RuleOutcome]) {
        for o in outcomes {
            let m = match o.status {
                RuleStatus::Allowed | RuleStatus::Unlimited => RuleMetric::Allowed,
                RuleStatus::Denied | RuleStatus::MissingKey | RuleStatus::UnknownModel => RuleMetric::Denied,
                RuleStatus::ShadowDenied => RuleMetric::ShadowDenied,
                RuleStatus::Degraded => RuleMetric::Degraded,
                RuleStatus::Throttled => RuleMetric::Throttled,
            };
            self.rule(o.rule, m);
            if o.near_limit {
                self.rule(o.rule, RuleMetric::NearLimit);
            }
        }
    }

    pub fn record_stats(&self, s: &EngineStats) {
        self.proxy(ProxyMetric::CasRetries, s.cas_retries as u64);
        self.proxy(ProxyMetric::CasExhausted, s.cas_exhausted as u64);
        self.proxy(ProxyMetric::SlotsEvicted, s.evictions as u64);
        self.proxy(ProxyMetric::SlotsOverflow, s.overflows as u64);
    }
}
