//! The plugin configuration (contract §1): parsed from JSON, validated with errors that name
//! the field path, and compiled once (regexes, hashes, header names) for the hot path.

pub(crate) mod json;

use crate::algorithm::{Algorithm, Quota};
use crate::duration::Duration;
use crate::keys::KeySource;
use crate::matcher::Matcher;
use json::{index_path, Obj};
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

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyConfig {
    /// Lower-case header names, tried in order.
    pub headers: Vec<String>,
    /// Query parameters, tried in order after the headers.
    pub query: Vec<String>,
}

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
    pub allow_ips: Vec<crate::overrides::Cidr>,
    /// Envoy runs the filter with `allow_on_headers_stop_iteration: true`: a request whose
    /// rules read the body keeps its headers until Tollgate decides. Without that Envoy flag
    /// (an Istio WasmPlugin) the headers go on first and the decision follows the body.
    pub hold_headers: bool,
}

const TOP_FIELDS: &[&str] = &[
    "api_key",
    "client_ip",
    "exempt_paths",
    "rules",
    "tier",
    "llm",
    "store",
    "response",
    "enabled",
    "debug",
    "slots",
    "max_body_bytes",
    "throttle_queue",
    "allow",
    "hold_headers",
];

const RULE_FIELDS: &[&str] = &[
    "name",
    "enabled",
    "match",
    "key",
    "missing_key",
    "algorithm",
    "limit",
    "window",
    "burst",
    "unit",
    "scope",
    "sync",
    "strategy",
    "max_wait",
    "degrade",
    "tiers",
];

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

    pub fn from_value(v: &Value) -> Result<Config, ConfigError> {
        let top = Obj::new(v, "", TOP_FIELDS)?;
        let api_key = parse_api_key(&top)?;
        let trusted_hops = match top.get("client_ip") {
            None => 0,
            Some(v) => {
                let o = Obj::new(v, "client_ip", &["trusted_hops"])?;
                let hops = o.opt_u64("trusted_hops")?.unwrap_or(0);
                u32::try_from(hops)
                    .ok()
                    .filter(|h| *h <= 32)
                    .ok_or_else(|| ConfigError::new("client_ip.trusted_hops", "must be between 0 and 32"))?
            }
        };
        let exempt_paths = top.opt_strings("exempt_paths")?.unwrap_or_default();
        for (i, p) in exempt_paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(ConfigError::new(&index_path("exempt_paths", i), "must start with /"));
            }
        }
        let tier = match top.get("tier") {
            None => None,
            Some(v) => Some(parse_tier(v)?),
        };
        let mut rules = Vec::new();
        if let Some(items) = top.opt_array("rules")? {
            for (i, item) in items.iter().enumerate() {
                let rule = parse_rule(item, &index_path("rules", i))?;
                if rules.iter().any(|r: &Rule| r.name == rule.name) {
                    return Err(ConfigError::new(
                        &format!("rules[{i}].name"),
                        format!("duplicate rule name {:?}", rule.name),
                    ));
                }
                rules.push(rule);
            }
        }
        let llm = parse_llm(top.get("llm"))?;
        let store = match top.get("store") {
            None => None,
            Some(v) => Some(parse_store(v)?),
        };
        if store.is_none() {
            if let Some((i, _)) = rules.iter().enumerate().find(|(_, r)| r.scope == Scope::Global) {
                return Err(ConfigError::new(
                    &format!("rules[{i}].scope"),
                    "\"global\" needs a \"store\" section (the tollgate-store cluster)",
                ));
            }
        }
        let response = parse_response(top.get("response"))?;
        let (mut allow_keys, mut allow_ips) = (Vec::new(), Vec::new());
        if let Some(v) = top.get("allow") {
            let a = Obj::new(v, "allow", &["keys", "ips"])?;
            allow_keys = a.opt_strings("keys")?.unwrap_or_default();
            for (i, text) in a.opt_strings("ips")?.unwrap_or_default().iter().enumerate() {
                let cidr = crate::overrides::Cidr::parse(text).ok_or_else(|| {
                    ConfigError::new(
                        &index_path("allow.ips", i),
                        format!("{text:?} is not an IP address or CIDR block"),
                    )
                })?;
                allow_ips.push(cidr);
            }
        }
        let slots = match top.get("slots") {
            None => SlotsConfig { capacity: DEFAULT_SLOT_CAPACITY },
            Some(v) => {
                let o = Obj::new(v, "slots", &["capacity"])?;
                let capacity = o.opt_positive("capacity")?.unwrap_or(DEFAULT_SLOT_CAPACITY as u64);
                let capacity = u32::try_from(capacity)
                    .ok()
                    .filter(|c| (64..=16_777_216).contains(c))
                    .ok_or_else(|| ConfigError::new("slots.capacity", "must be between 64 and 16777216"))?;
                SlotsConfig { capacity }
            }
        };
        Ok(Config {
            enabled: top.opt_bool("enabled")?.unwrap_or(true),
            debug: top.opt_bool("debug")?.unwrap_or(false),
            api_key,
            trusted_hops,
            exempt_paths,
            rules,
            tier,
            llm,
            store,
            response,
            slots,
            max_body_bytes: top.opt_positive("max_body_bytes")?.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            throttle_queue: u32::try_from(top.opt_positive("throttle_queue")?.unwrap_or(1000))
                .map_err(|_| ConfigError::new("throttle_queue", "is too large"))?,
            allow_keys,
            allow_ips,
            hold_headers: top.opt_bool("hold_headers")?.unwrap_or(false),
        })
    }

    /// Whether any enabled rule needs the client IP (so the glue asks the host for it).
    pub fn needs(&self, pred: impl Fn(&KeySource) -> bool) -> bool {
        self.rules.iter().filter(|r| r.enabled).any(|r| r.key.iter().any(&pred))
    }
}

/// Where the official SDKs send the key: OpenAI `Authorization: Bearer`, Anthropic
/// `x-api-key`, Azure `api-key`, Google `x-goog-api-key` or `?key=`.
fn parse_api_key(top: &Obj) -> Result<ApiKeyConfig, ConfigError> {
    let default = ApiKeyConfig {
        headers: ["authorization", "x-api-key", "api-key", "x-goog-api-key"].map(String::from).to_vec(),
        query: ["api_key", "key"].map(String::from).to_vec(),
    };
    let Some(v) = top.get("api_key") else { return Ok(default) };
    let o = Obj::new(v, "api_key", &["headers", "query"])?;
    let headers = match o.opt_strings("headers")? {
        Some(h) => h.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        None => default.headers,
    };
    // One parameter or a list; "" or [] reads no parameter.
    let query = match o.get("query") {
        None => default.query,
        Some(serde_json::Value::String(q)) => [q.clone()].into_iter().filter(|q| !q.is_empty()).collect(),
        Some(_) => o.opt_strings("query")?.unwrap_or_default().into_iter().filter(|q| !q.is_empty()).collect(),
    };
    Ok(ApiKeyConfig { headers, query })
}

fn parse_tier(v: &Value) -> Result<TierConfig, ConfigError> {
    let o = Obj::new(v, "tier", &["source", "keys", "default"])?;
    let source = match o.opt_str("source")? {
        None => None,
        Some(text) => {
            let src = KeySource::parse(text).map_err(|reason| ConfigError::new("tier.source", reason))?;
            match src {
                KeySource::Header(_) | KeySource::Jwt(_) | KeySource::Query(_) | KeySource::Cookie(_) => Some(src),
                _ => {
                    return Err(ConfigError::new(
                        "tier.source",
                        format!("{text:?}: a tier comes from header:NAME, jwt:CLAIM, query:NAME or cookie:NAME"),
                    ))
                }
            }
        }
    };
    let mut keys = Vec::new();
    if let Some(map) = o.opt_object("keys")? {
        for (k, v) in map {
            match v.as_str() {
                Some(t) => keys.push((k.clone(), t.to_string())),
                None => return Err(ConfigError::new("tier.keys", "values must be tier names (strings)")),
            }
        }
    }
    Ok(TierConfig { source, keys, default: o.opt_str("default")?.map(str::to_string) })
}

fn parse_rule(v: &Value, path: &str) -> Result<Rule, ConfigError> {
    let o = Obj::new(v, path, RULE_FIELDS)?;
    let name = o.req_str("name")?;
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ConfigError::new(
            &o.at("name"),
            format!("{name:?}: use 1 to 64 characters among letters, digits, '-', '_' and '.'"),
        ));
    }
    let unit = o
        .opt_enum(
            "unit",
            &[
                ("requests", Unit::Requests),
                ("tokens", Unit::Tokens),
                ("input_tokens", Unit::InputTokens),
                ("output_tokens", Unit::OutputTokens),
                ("cost_usd", Unit::CostUsd),
                ("concurrent", Unit::Concurrent),
            ],
        )?
        .unwrap_or(Unit::Requests);
    let algorithm = match o.opt_str("algorithm")? {
        None if unit == Unit::Concurrent => None,
        None => return Err(ConfigError::new(&o.at("algorithm"), "is required")),
        Some(text) => Some(Algorithm::from_name(text).ok_or_else(|| {
            ConfigError::new(
                &o.at("algorithm"),
                format!("{text:?} is not one of: token_bucket, leaky_bucket, fixed_window, sliding_window, gcra"),
            )
        })?),
    };
    let limit = amount(&o, "limit", unit)?.ok_or_else(|| ConfigError::new(&o.at("limit"), "is required"))?;
    let window = match o.opt_duration("window")? {
        Some(w) => w,
        None if unit == Unit::Concurrent => DEFAULT_CONCURRENT_LEASE,
        None => return Err(ConfigError::new(&o.at("window"), "is required")),
    };
    let burst = amount(&o, "burst", unit)?.unwrap_or(limit);
    let quota = Quota { limit, window_ns: window.as_nanos(), burst };
    let key = match o.get("key") {
        None => vec![KeySource::Global],
        Some(_) => {
            let items = o.opt_strings("key")?.unwrap_or_default();
            if items.is_empty() {
                return Err(ConfigError::new(&o.at("key"), "must list at least one key source"));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, text) in items.iter().enumerate() {
                out.push(KeySource::parse(text).map_err(|r| ConfigError::new(&index_path(&o.at("key"), i), r))?);
            }
            out
        }
    };
    let missing_key = o
        .opt_enum(
            "missing_key",
            &[("shared", MissingKey::Shared), ("skip", MissingKey::Skip), ("deny", MissingKey::Deny)],
        )?
        .unwrap_or(MissingKey::Shared);
    let scope = o.opt_enum("scope", &[("local", Scope::Local), ("global", Scope::Global)])?.unwrap_or(Scope::Local);
    let sync = o.opt_enum("sync", &[("strict", Sync::Strict), ("batched", Sync::Batched)])?.unwrap_or(Sync::Batched);
    let strategy = o
        .opt_enum(
            "strategy",
            &[
                ("reject", Strategy::Reject),
                ("shadow", Strategy::Shadow),
                ("throttle", Strategy::Throttle),
                ("degrade", Strategy::Degrade),
            ],
        )?
        .unwrap_or(Strategy::Reject);
    let max_wait = o.opt_duration("max_wait")?.unwrap_or(Duration::from_secs(2));
    let degrade = match o.get("degrade") {
        None => None,
        Some(v) => {
            let d = Obj::new(v, &o.at("degrade"), &["set_model", "add_header"])?;
            Some(Degrade {
                set_model: d.opt_str("set_model")?.map(str::to_string),
                add_header: d.opt_str("add_header")?.map(str::to_ascii_lowercase),
            })
        }
    };
    if strategy == Strategy::Throttle
        && !matches!(algorithm, Some(Algorithm::TokenBucket | Algorithm::LeakyBucket | Algorithm::Gcra))
    {
        return Err(ConfigError::new(
            &o.at("strategy"),
            "\"throttle\" needs algorithm token_bucket, leaky_bucket or gcra (they know the exact wait)",
        ));
    }
    if strategy == Strategy::Degrade && degrade.is_none() {
        return Err(ConfigError::new(&o.at("degrade"), "is required with strategy \"degrade\""));
    }
    let mut tiers = Vec::new();
    if let Some(map) = o.opt_object("tiers")? {
        for (tier, tv) in map {
            let tpath = format!("{}.{}", o.at("tiers"), tier);
            let t = Obj::new(tv, &tpath, &["limit", "burst", "unlimited"])?;
            let tl = amount(&t, "limit", unit)?.unwrap_or(limit);
            let tb = amount(&t, "burst", unit)?.unwrap_or(if t.get("limit").is_some() { tl } else { burst });
            if t.opt_bool("unlimited")? == Some(true) {
                if t.get("limit").is_some() || t.get("burst").is_some() {
                    return Err(ConfigError::new(&tpath, "an unlimited tier takes no limit or burst"));
                }
                tiers.push((tier.clone(), TierLimit::Unlimited));
                continue;
            }
            tiers.push((tier.clone(), TierLimit::Limited(Quota { limit: tl, window_ns: quota.window_ns, burst: tb })));
        }
    }
    let matcher = match o.get("match") {
        None => Matcher::default(),
        Some(v) => Matcher::parse(v, &o.at("match"))?,
    };
    let algo_name = algorithm.map(Algorithm::name).unwrap_or("concurrent");
    let hash_seed = crate::hash::hash_parts(0, &[name.as_bytes(), algo_name.as_bytes()]);
    Ok(Rule {
        name: name.to_string(),
        enabled: o.opt_bool("enabled")?.unwrap_or(true),
        matcher,
        key,
        missing_key,
        algorithm,
        quota,
        window,
        unit,
        scope,
        sync,
        strategy,
        max_wait,
        degrade,
        tiers,
        hash_seed,
    })
}

/// A limit or burst: a positive integer, or for `cost_usd` a positive number of US dollars
/// (counted in integer micro-dollars).
fn amount(o: &Obj, name: &str, unit: Unit) -> Result<Option<u64>, ConfigError> {
    if unit != Unit::CostUsd {
        return o.opt_positive(name);
    }
    match o.opt_f64(name)? {
        None => Ok(None),
        Some(usd) => {
            let micro = (usd * 1_000_000.0).round();
            if micro < 1.0 {
                return Err(ConfigError::new(&o.at(name), "must be at least 0.000001 (one micro-dollar)"));
            }
            Ok(Some(micro.min(u64::MAX as f64) as u64))
        }
    }
}

fn parse_llm(v: Option<&Value>) -> Result<LlmConfig, ConfigError> {
    let mut llm = LlmConfig {
        estimate: Estimate::MaxTokens,
        prices: Vec::new(),
        include_usage: true,
        default_price: None,
        usage_header: None,
    };
    let Some(v) = v else { return Ok(llm) };
    let o = Obj::new(v, "llm", &["estimate", "prices", "include_usage", "default_price", "usage_header"])?;
    if let Some(text) = o.opt_str("estimate")? {
        llm.estimate = match text {
            "max_tokens" => Estimate::MaxTokens,
            "none" => Estimate::None,
            _ => match text.strip_prefix("fixed:").and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => Estimate::Fixed(n),
                None => {
                    return Err(ConfigError::new(
                        "llm.estimate",
                        format!("{text:?} is not one of: max_tokens, none, fixed:N"),
                    ))
                }
            },
        };
    }
    if let Some(map) = o.opt_object("prices")? {
        for (model, pv) in map {
            llm.prices.push(parse_price(pv, &format!("llm.prices.{model}"), model)?);
        }
    }
    if let Some(pv) = o.get("default_price") {
        llm.default_price = Some(parse_price(pv, "llm.default_price", "")?);
    }
    llm.usage_header = o.opt_str("usage_header")?.map(str::to_ascii_lowercase);
    llm.include_usage = o.opt_bool("include_usage")?.unwrap_or(true);
    Ok(llm)
}

fn parse_price(v: &Value, path: &str, model: &str) -> Result<Price, ConfigError> {
    let p = Obj::new(v, path, &["input_per_mtok", "output_per_mtok"])?;
    let to_micro = |usd: f64| (usd * 1_000_000.0).round().min(u64::MAX as f64) as u64;
    Ok(Price {
        model: model.to_string(),
        input_per_mtok_micro: to_micro(p.opt_f64("input_per_mtok")?.unwrap_or(0.0)),
        output_per_mtok_micro: to_micro(p.opt_f64("output_per_mtok")?.unwrap_or(0.0)),
    })
}

fn parse_store(v: &Value) -> Result<StoreConfig, ConfigError> {
    let o = Obj::new(
        v,
        "store",
        &["cluster", "authority", "token", "timeout", "sync_interval", "failure_mode", "fleet_size", "poll_interval"],
    )?;
    let fleet_size = u32::try_from(o.opt_positive("fleet_size")?.unwrap_or(1))
        .map_err(|_| ConfigError::new("store.fleet_size", "is too large"))?;
    Ok(StoreConfig {
        cluster: o.opt_str("cluster")?.unwrap_or("tollgate_store").to_string(),
        authority: o.opt_str("authority")?.unwrap_or("tollgate-store").to_string(),
        token: o.opt_str("token")?.map(str::to_string),
        timeout: o.opt_duration("timeout")?.unwrap_or(Duration::from_millis(50)),
        sync_interval: o.opt_duration("sync_interval")?.unwrap_or(Duration::from_millis(100)),
        failure_mode: o
            .opt_enum(
                "failure_mode",
                &[("local", FailureMode::Local), ("open", FailureMode::Open), ("closed", FailureMode::Closed)],
            )?
            .unwrap_or(FailureMode::Local),
        fleet_size,
        poll_interval: o.opt_duration("poll_interval")?.unwrap_or(Duration::from_secs(1)),
    })
}

fn parse_response(v: Option<&Value>) -> Result<ResponseConfig, ConfigError> {
    let mut r = ResponseConfig {
        status: 429,
        headers: vec![HeaderFormat::Ietf, HeaderFormat::XRateLimit],
        message: "Rate limit exceeded: {limit} per {window}".to_string(),
        format: ErrorFormat::Auto,
    };
    let Some(v) = v else { return Ok(r) };
    let o = Obj::new(v, "response", &["status", "headers", "message", "format"])?;
    r.format = o
        .opt_enum(
            "format",
            &[
                ("auto", ErrorFormat::Auto),
                ("openai", ErrorFormat::OpenAi),
                ("anthropic", ErrorFormat::Anthropic),
                ("gemini", ErrorFormat::Gemini),
            ],
        )?
        .unwrap_or(ErrorFormat::Auto);
    if let Some(status) = o.opt_u64("status")? {
        if !(400..=599).contains(&status) {
            return Err(ConfigError::new("response.status", format!("{status} is not a 4xx or 5xx status")));
        }
        r.status = status as u32;
    }
    if let Some(items) = o.opt_strings("headers")? {
        r.headers.clear();
        for (i, h) in items.iter().enumerate() {
            let f = match h.as_str() {
                "ietf" => HeaderFormat::Ietf,
                "x-ratelimit" => HeaderFormat::XRateLimit,
                "openai" => HeaderFormat::OpenAi,
                "anthropic" => HeaderFormat::Anthropic,
                _ => {
                    return Err(ConfigError::new(
                        &index_path("response.headers", i),
                        format!("{h:?} is not one of: ietf, x-ratelimit, openai, anthropic"),
                    ))
                }
            };
            if !r.headers.contains(&f) {
                r.headers.push(f);
            }
        }
    }
    if let Some(m) = o.opt_str("message")? {
        r.message = m.to_string();
    }
    Ok(r)
}

#[cfg(test)]
mod tests;
