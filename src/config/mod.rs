//! The plugin configuration (contract §1): parsed from JSON, validated with errors that name
//! the field path, and compiled once (regexes, hashes, header names) for the hot path.
//!
//! Reading goes in two steps: `raw` mirrors the JSON as serde types (each single value checked
//! as it is read, in `values`, through `de`'s JSON-worded errors and serde_path_to_error's
//! paths), then `compile` applies the defaults and the checks across fields.

mod compile;
pub(crate) mod de;
mod match_section;
mod raw;
pub mod reset;
pub(crate) mod values;

use crate::engine::algorithm::{Algorithm, Quota};
use crate::request::keys::KeySource;
use crate::request::matcher::Matcher;
use crate::time::duration::Duration;
use serde_json::Value;

/// A config error: the field path and why it is wrong, e.g.
/// `rules[2].window: "5x" is not a duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError { path: path.to_string(), reason: reason.into() }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Tokens,
    InputTokens,
    OutputTokens,
    CostUsd,
    Concurrent,
}

impl Unit {
    /// Units read from LLM responses (reserved first, settled with the real usage).
    pub fn is_llm(self) -> bool {
        matches!(self, Unit::Tokens | Unit::InputTokens | Unit::OutputTokens | Unit::CostUsd)
    }

    /// The `type` of the 429 body.
    pub fn error_type(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens | Unit::InputTokens | Unit::OutputTokens => "tokens",
            Unit::CostUsd => "cost",
            Unit::Concurrent => "concurrent",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Local,
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    Strict,
    Batched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Reject,
    Shadow,
    Throttle,
    Degrade,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingKey {
    Shared,
    Skip,
    Deny,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Degrade {
    pub set_model: Option<String>,
    pub add_header: Option<String>,
}

/// The limit a rule applies to one tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierLimit {
    Limited(Quota),
    Unlimited,
}

/// One rule, compiled.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub enabled: bool,
    pub matcher: Matcher,
    pub key: Vec<KeySource>,
    pub missing_key: MissingKey,
    /// None only for unit `concurrent`.
    pub algorithm: Option<Algorithm>,
    pub quota: Quota,
    /// The window as written, for messages and headers.
    pub window: Duration,
    pub unit: Unit,
    pub scope: Scope,
    pub sync: Sync,
    pub strategy: Strategy,
    pub max_wait: Duration,
    pub degrade: Option<Degrade>,
    /// Per-tier limits, by tier name.
    pub tiers: Vec<(String, TierLimit)>,
    /// Seed of this rule's counter hashes: depends on the rule name and algorithm, so a
    /// renamed rule or a changed algorithm starts fresh counters.
    pub hash_seed: u64,
}

impl Rule {
    /// The limit for a request of `tier`.
    pub fn limit_for(&self, tier: Option<&str>) -> TierLimit {
        if let Some(tier) = tier {
            if let Some((_, limit)) = self.tiers.iter().find(|(name, _)| name == tier) {
                return *limit;
            }
        }
        TierLimit::Limited(self.quota)
    }
}

pub use crate::request::keys::ApiKeyConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct TierConfig {
    /// Where a request's tier comes from (a header or a JWT claim), after the static key map.
    pub source: Option<KeySource>,
    /// Static map from raw API key to tier.
    pub keys: Vec<(String, String)>,
    pub default: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimate {
    MaxTokens,
    Fixed(u64),
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Price {
    pub model: String,
    /// Micro-dollars per million tokens (i.e. USD per token, scaled by 1e12).
    pub input_per_mtok_micro: u64,
    pub output_per_mtok_micro: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    pub estimate: Estimate,
    pub prices: Vec<Price>,
    pub include_usage: bool,
    /// Price of models missing from `prices`; without it a cost rule denies them (400).
    pub default_price: Option<Price>,
    /// A response header carrying the total tokens (e.g. `x-token-count`), read when the
    /// body reports no usage.
    pub usage_header: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMode {
    Local,
    Open,
    Closed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    pub cluster: String,
    pub authority: String,
    pub token: Option<String>,
    pub timeout: Duration,
    pub sync_interval: Duration,
    pub failure_mode: FailureMode,
    /// How many proxies share the global limits: failure mode `local` gives each
    /// `limit / fleet_size` while the store is unreachable.
    pub fleet_size: u32,
    /// How often each worker asks the store for overrides and per-key limits.
    pub poll_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFormat {
    Ietf,
    XRateLimit,
    OpenAi,
    Anthropic,
}

/// The shape of Tollgate's error bodies (`response.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFormat {
    /// By the request's path: Anthropic's on `/v1/messages`, Google's on Gemini methods,
    /// OpenAI's elsewhere.
    Auto,
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResponseConfig {
    pub status: u32,
    pub headers: Vec<HeaderFormat>,
    pub message: String,
    pub format: ErrorFormat,
}

/// Bounded shared memory for counters (see `slot_table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotsConfig {
    /// Counters that can be live at once, over all rules.
    pub capacity: u32,
}

pub const DEFAULT_SLOT_CAPACITY: u32 = 65_536;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// For `concurrent` rules `window` is the lease: a request in flight longer than this gives
/// its slot back (so a lost release never leaks a slot for ever).
pub const DEFAULT_CONCURRENT_LEASE: Duration = Duration(600 * 1_000_000_000);

/// The whole plugin configuration, compiled.
#[derive(Clone, Debug)]
pub struct Config {
    pub enabled: bool,
    pub debug: bool,
    pub api_key: ApiKeyConfig,
    pub trusted_hops: u32,
    pub exempt_paths: Vec<String>,
    pub rules: Vec<Rule>,
    pub tier: Option<TierConfig>,
    pub llm: LlmConfig,
    pub store: Option<StoreConfig>,
    pub response: ResponseConfig,
    pub slots: SlotsConfig,
    pub max_body_bytes: u64,
    /// Requests one worker may hold at once for throttle rules; beyond it they are rejected.
    pub throttle_queue: u32,
    /// Static allow-lists: raw API keys and address blocks that no rule limits.
    pub allow_keys: Vec<String>,
    pub allow_ips: Vec<crate::request::cidr::Cidr>,
    /// Envoy runs the filter with `allow_on_headers_stop_iteration: true`: a request whose
    /// rules read the body keeps its headers until Tollgate decides. Without that Envoy flag
    /// (an Istio WasmPlugin) the headers go on first and the decision follows the body.
    pub hold_headers: bool,
}

impl Config {
    /// Parse and validate the plugin configuration. Empty input means an empty config
    /// (no rules): the filter passes everything.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::new("", "configuration is not UTF-8"))?;
        if text.trim().is_empty() {
            return Config::from_value(&Value::Object(Default::default()));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("", format!("configuration is not valid JSON: {e}")))?;
        Config::from_value(&value)
    }

    /// Read the sections (serde, each value checked where it is), then compile them (defaults,
    /// checks across fields).
    pub fn from_value(v: &Value) -> Result<Config, ConfigError> {
        compile::config(de::from_value_at(v, "")?)
    }
}

#[cfg(test)]
mod tests;
