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
