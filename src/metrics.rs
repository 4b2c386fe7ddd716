//! Metric names (contract §3). Envoy keeps Wasm stats under `wasmcustom.` and its Prometheus
//! export drops that prefix, so `tollgate.rule.<rule>.allowed` is scraped as
//! `tollgate_rule_allowed{rule="<rule>"}` once the Envoy config carries the `stats_tags` rule
//! of `envoy/standalone.yaml` (without it: `tollgate_rule_<rule>_allowed`).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleMetric {
    Allowed,
    Denied,
    ShadowDenied,
    NearLimit,
    Throttled,
    Degraded,
}

impl RuleMetric {
    pub const ALL: [RuleMetric; 6] = [
        RuleMetric::Allowed,
        RuleMetric::Denied,
        RuleMetric::ShadowDenied,
        RuleMetric::NearLimit,
        RuleMetric::Throttled,
        RuleMetric::Degraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleMetric::Allowed => "allowed",
            RuleMetric::Denied => "denied",
            RuleMetric::ShadowDenied => "shadow_denied",
            RuleMetric::NearLimit => "near_limit",
            RuleMetric::Throttled => "throttled",
            RuleMetric::Degraded => "degraded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMetric {
    CasRetries,
    CasExhausted,
    StoreErrors,
    StoreTimeouts,
    FailureModeUsed,
    SlotsEvicted,
    SlotsOverflow,
    UsageMissing,
    ConfigErrors,
    StoreWaited,
}

impl ProxyMetric {
    pub const ALL: [ProxyMetric; 10] = [
        ProxyMetric::CasRetries,
        ProxyMetric::CasExhausted,
        ProxyMetric::StoreErrors,
        ProxyMetric::StoreTimeouts,
        ProxyMetric::FailureModeUsed,
        ProxyMetric::SlotsEvicted,
        ProxyMetric::SlotsOverflow,
        ProxyMetric::UsageMissing,
        ProxyMetric::ConfigErrors,
        ProxyMetric::StoreWaited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMetric::CasRetries => "cas_retries",
            ProxyMetric::CasExhausted => "cas_exhausted",
            ProxyMetric::StoreErrors => "store_errors",
            ProxyMetric::StoreTimeouts => "store_timeouts",
            ProxyMetric::FailureModeUsed => "failure_mode_used",
            ProxyMetric::SlotsEvicted => "slots_evicted",
            ProxyMetric::SlotsOverflow => "slots_overflow",
            ProxyMetric::UsageMissing => "usage_missing",
            ProxyMetric::ConfigErrors => "config_errors",
            ProxyMetric::StoreWaited => "store_waited",
        }
    }
}

/// `tollgate.rule.<rule>.<metric>` (rule names are limited to `[A-Za-z0-9_.-]`).
pub fn rule_metric_name(rule: &str, m: RuleMetric) -> String {
    format!("tollgate.rule.{rule}.{}", m.as_str())
}

/// `tollgate.<metric>`.
pub fn proxy_metric_name(m: ProxyMetric) -> String {
    format!("tollgate.{}", m.as_str())
}

/// Gauge: requests held right now by throttle rules, over all workers.
pub const THROTTLE_QUEUE: &str = "tollgate.throttle_queue";
/// Histogram: how long throttled requests were held, in milliseconds.
pub const THROTTLE_WAIT_MS: &str = "tollgate.throttle_wait_ms";

/// One metric update for the host to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    /// Add to a rule's counter.
    Rule(usize, RuleMetric, u64),
    /// Add to a proxy counter.
    Proxy(ProxyMetric, u64),
    /// Add to the `THROTTLE_QUEUE` gauge (every worker adds its own changes).
    ThrottleQueue(i64),
    /// One observation of `THROTTLE_WAIT_MS`.
    ThrottleWaitMs(u64),
}

/// Most throttle waits kept between two flushes (more are counted in the gauge, not timed).
const MAX_WAIT_SAMPLES: usize = 4096;

/// One worker's metric updates, summed in the worker and handed to the host on the tick: one
/// host call per counter per tick instead of one per request (each costs microseconds in a VM).
#[derive(Debug, Default)]
pub struct Tally {
    rules: Vec<[std::cell::Cell<u64>; RuleMetric::ALL.len()]>,
    proxy: [std::cell::Cell<u64>; ProxyMetric::ALL.len()],
    throttle_queue: std::cell::Cell<i64>,
    waits: std::cell::RefCell<Vec<u64>>,
}

impl Tally {
    pub fn new(rules: usize) -> Tally {
        Tally { rules: (0..rules).map(|_| Default::default()).collect(), ..Tally::default() }
    }

    fn bump(cell: Option<&std::cell::Cell<u64>>, by: u64) {
        if let Some(c) = cell {
            c.set(c.get().saturating_add(by));
        }
    }

    pub fn rule(&self, rule: usize, m: RuleMetric) {
        Self::bump(self.rules.get(rule).and_then(|r| r.get(m as usize)), 1);
    }

    pub fn proxy(&self, m: ProxyMetric, by: u64) {
        Self::bump(self.proxy.get(m as usize), by);
    }

    /// A request was held by a throttle rule.
    pub fn held(&self) {
        self.throttle_queue.set(self.throttle_queue.get().saturating_add(1));
    }

    /// A held request's client went away.
    pub fn abandoned(&self) {
        self.throttle_queue.set(self.throttle_queue.get().saturating_sub(1));
    }

    /// A held request went on after `waited_ns`.
    pub fn released(&self, waited_ns: u64) {
        self.abandoned();
        let mut waits = self.waits.borrow_mut();
        if waits.len() < MAX_WAIT_SAMPLES {
            waits.push(waited_ns / 1_000_000);
        }
    }

    /// Hand every update since the last drain to `apply`, and forget them.
    pub fn drain(&self, mut apply: impl FnMut(Sample)) {
        for (rule, cells) in self.rules.iter().enumerate() {
            for (m, cell) in RuleMetric::ALL.iter().zip(cells) {
                let n = cell.replace(0);
                if n > 0 {
                    apply(Sample::Rule(rule, *m, n));
                }
            }
        }
        for (m, cell) in ProxyMetric::ALL.iter().zip(&self.proxy) {
            let n = cell.replace(0);
            if n > 0 {
                apply(Sample::Proxy(*m, n));
            }
        }
        let q = self.throttle_queue.replace(0);
        if q != 0 {
            apply(Sample::ThrottleQueue(q));
        }
        for ms in self.waits.borrow_mut().drain(..) {
            apply(Sample::ThrottleWaitMs(ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_sums_until_drained() {
        let t = Tally::new(2);
        t.rule(1, RuleMetric::Denied);
        t.rule(1, RuleMetric::Denied);
        t.rule(7, RuleMetric::Denied); // no such rule: ignored
        t.proxy(ProxyMetric::StoreErrors, 3);
        t.held();
        t.held();
        t.released(5_000_000);
        let mut out = Vec::new();
        t.drain(|s| out.push(s));
        assert_eq!(
            out,
            vec![
                Sample::Rule(1, RuleMetric::Denied, 2),
                Sample::Proxy(ProxyMetric::StoreErrors, 3),
                Sample::ThrottleQueue(1),
                Sample::ThrottleWaitMs(5)
            ]
        );
        let mut again = Vec::new();
        t.drain(|s| again.push(s));
        assert!(again.is_empty());
    }
}
