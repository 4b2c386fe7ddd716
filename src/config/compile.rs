//! From the configuration as written (`raw`) to the compiled `Config`: the defaults, and the
//! checks that involve more than one value (a limit's type depends on the rule's unit, global
//! rules need a store, throttle needs an algorithm that knows the wait, rule names are unique,
//! bounds), each error naming the field it is about.

use super::values::{self, Amount};
use super::*;
use crate::engine::algorithm::{Algorithm, Quota};

pub fn config(raw: raw::Config) -> Result<Config, ConfigError> {
    let trusted_hops = match raw.client_ip.and_then(|c| c.trusted_hops) {
        None => 0,
        Some(hops) => u32::try_from(hops.0)
            .ok()
            .filter(|h| *h <= 32)
            .ok_or_else(|| ConfigError::new("client_ip.trusted_hops", "must be between 0 and 32"))?,
    };
    let mut rules: Vec<Rule> = Vec::new();
    for (i, raw_rule) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        let rule = rule(raw_rule, &format!("rules[{i}]"))?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(ConfigError::new(&format!("rules[{i}].name"), format!("duplicate rule name {:?}", rule.name)));
        }
        rules.push(rule);
    }
    let store = raw.store.map(store).transpose()?;
    if store.is_none() {
        if let Some(i) = rules.iter().position(|r| r.scope == Scope::Global) {
            return Err(ConfigError::new(
                &format!("rules[{i}].scope"),
                "\"global\" needs a \"store\" section (the tollgate-store cluster)",
            ));
        }
    }
    let response = response(raw.response)?;
    let capacity = match raw.slots.and_then(|s| s.capacity) {
        None => DEFAULT_SLOT_CAPACITY,
        Some(c) => u32::try_from(c.0)
            .ok()
            .filter(|c| (64..=16_777_216).contains(c))
            .ok_or_else(|| ConfigError::new("slots.capacity", "must be between 64 and 16777216"))?,
    };
    let allow = raw.allow;
    Ok(Config {
        enabled: raw.enabled.unwrap_or(true),
        debug: raw.debug.unwrap_or(false),
        api_key: api_key(raw.api_key),
        trusted_hops,
        exempt_paths: raw.exempt_paths.unwrap_or_default().into_iter().map(|p| p.0).collect(),
        rules,
        tier: raw.tier.map(|t| TierConfig {
            source: t.source.map(|s| s.0),
            keys: t.keys.map(|k| k.0).unwrap_or_default(),
            default: t.default,
        }),
        llm: llm(raw.llm),
        store,
        response,
        slots: SlotsConfig { capacity },
        max_body_bytes: raw.max_body_bytes.map_or(DEFAULT_MAX_BODY_BYTES, |n| n.0),
        throttle_queue: u32::try_from(raw.throttle_queue.map_or(1000, |n| n.0))
            .map_err(|_| ConfigError::new("throttle_queue", "is too large"))?,
        allow_keys: allow.as_ref().and_then(|a| a.keys.clone()).unwrap_or_default(),
        allow_ips: allow.and_then(|a| a.ips).unwrap_or_default(),
        hold_headers: raw.hold_headers.unwrap_or(false),
    })
}

/// Where the official SDKs send the key: OpenAI `Authorization: Bearer`, Anthropic
/// `x-api-key`, Azure `api-key`, Google `x-goog-api-key` or `?key=`.
fn api_key(raw: Option<raw::ApiKey>) -> ApiKeyConfig {
    let raw = raw.unwrap_or(raw::ApiKey { headers: None, query: None });
    ApiKeyConfig {
        headers: match raw.headers {
            Some(h) => h.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            None => ["authorization", "x-api-key", "api-key", "x-goog-api-key"].map(String::from).to_vec(),
        },
        query: match raw.query {
            Some(q) => q.0,
            None => ["api_key", "key"].map(String::from).to_vec(),
        },
    }
}

/// A rule at `path` (`rules[3]`).
fn rule(raw: raw::Rule, path: &str) -> Result<Rule, ConfigError> {
    let at = |field: &str| format!("{path}.{field}");
    let name = raw.name.ok_or_else(|| ConfigError::new(&at("name"), "is required"))?.0;
    let unit = raw.unit.unwrap_or(Unit::Requests);
    let algorithm = match raw.algorithm {
        None if unit == Unit::Concurrent => None,
        None => return Err(ConfigError::new(&at("algorithm"), "is required")),
        Some(a) => Some(a),
    };
    let limit =
        amount(raw.limit.as_ref(), unit, &at("limit"))?.ok_or_else(|| ConfigError::new(&at("limit"), "is required"))?;
    let window = match raw.window {
        Some(w) => w.0,
        None if unit == Unit::Concurrent => DEFAULT_CONCURRENT_LEASE,
        None => return Err(ConfigError::new(&at("window"), "is required")),
    };
    let burst = amount(raw.burst.as_ref(), unit, &at("burst"))?.unwrap_or(limit);
    let quota = Quota { limit, window_ns: window.as_nanos(), burst };
    let key = match raw.key {
        None => vec![KeySource::Global],
        Some(key) if key.is_empty() => {
            return Err(ConfigError::new(&at("key"), "must list at least one key source"));
        }
        Some(key) => key,
    };
    let strategy = raw.strategy.unwrap_or(Strategy::Reject);
    let degrade = raw
        .degrade
        .map(|d| Degrade { set_model: d.set_model, add_header: d.add_header.map(|h| h.to_ascii_lowercase()) });
    if strategy == Strategy::Throttle
        && !matches!(algorithm, Some(Algorithm::TokenBucket | Algorithm::LeakyBucket | Algorithm::Gcra))
    {
        return Err(ConfigError::new(
            &at("strategy"),
            "\"throttle\" needs algorithm token_bucket, leaky_bucket or gcra (they know the exact wait)",
        ));
    }
    if strategy == Strategy::Degrade && degrade.is_none() {
        return Err(ConfigError::new(&at("degrade"), "is required with strategy \"degrade\""));
    }
    let mut tiers = Vec::new();
    for (tier, t) in raw.tiers.unwrap_or_default() {
        let tpath = format!("{path}.tiers.{tier}");
        let tl = amount(t.limit.as_ref(), unit, &format!("{tpath}.limit"))?.unwrap_or(limit);
        let tb = amount(t.burst.as_ref(), unit, &format!("{tpath}.burst"))?.unwrap_or(if t.limit.is_some() {
            tl
        } else {
            burst
        });
        if t.unlimited == Some(true) {
            if t.limit.is_some() || t.burst.is_some() {
                return Err(ConfigError::new(&tpath, "an unlimited tier takes no limit or burst"));
            }
            tiers.push((tier, TierLimit::Unlimited));
            continue;
        }
        tiers.push((tier, TierLimit::Limited(Quota { limit: tl, window_ns: quota.window_ns, burst: tb })));
    }
    let algo_name = algorithm.map(Algorithm::name).unwrap_or("concurrent");
    let hash_seed = crate::engine::hash::hash_parts(0, &[name.as_bytes(), algo_name.as_bytes()]);
    Ok(Rule {
        name,
        enabled: raw.enabled.unwrap_or(true),
        matcher: raw.matcher.unwrap_or_default(),
        key,
        missing_key: raw.missing_key.unwrap_or(MissingKey::Shared),
        algorithm,
        quota,
        window,
        unit,
        scope: raw.scope.unwrap_or(Scope::Local),
        sync: raw.sync.unwrap_or(Sync::Batched),
        strategy,
        max_wait: raw.max_wait.map_or(Duration::from_secs(2), |d| d.0),
        degrade,
        tiers,
        hash_seed,
    })
}

/// A limit or burst at `path`: a positive integer, or for `cost_usd` a positive number of US
/// dollars (counted in integer micro-dollars).
fn amount(raw: Option<&Amount>, unit: Unit, path: &str) -> Result<Option<u64>, ConfigError> {
    let Some(Amount(v)) = raw else { return Ok(None) };
    if unit != Unit::CostUsd {
        return values::positive(v).map(Some).map_err(|reason| ConfigError::new(path, reason));
    }
    let usd = values::non_negative(v).map_err(|reason| ConfigError::new(path, reason))?;
    let micro = (usd * 1_000_000.0).round();
    if micro < 1.0 {
        return Err(ConfigError::new(path, "must be at least 0.000001 (one micro-dollar)"));
    }
    Ok(Some(micro.min(u64::MAX as f64) as u64))
}

fn llm(raw: Option<raw::Llm>) -> LlmConfig {
    let Some(raw) = raw else {
        return LlmConfig {
            estimate: Estimate::MaxTokens,
            prices: Vec::new(),
            include_usage: true,
            default_price: None,
            usage_header: None,
        };
    };
    LlmConfig {
        estimate: raw.estimate.unwrap_or(Estimate::MaxTokens),
        prices: raw.prices.unwrap_or_default().into_iter().map(|(model, p)| price(model, p)).collect(),
        include_usage: raw.include_usage.unwrap_or(true),
        default_price: raw.default_price.map(|p| price(String::new(), p)),
        usage_header: raw.usage_header.map(|h| h.to_ascii_lowercase()),
    }
}

fn price(model: String, raw: raw::Price) -> Price {
    let to_micro =
        |usd: Option<values::Usd>| (usd.map_or(0.0, |u| u.0) * 1_000_000.0).round().min(u64::MAX as f64) as u64;
    Price {
        model,
        input_per_mtok_micro: to_micro(raw.input_per_mtok),
        output_per_mtok_micro: to_micro(raw.output_per_mtok),
    }
}

fn store(raw: raw::Store) -> Result<StoreConfig, ConfigError> {
    let fleet_size = u32::try_from(raw.fleet_size.map_or(1, |n| n.0))
        .map_err(|_| ConfigError::new("store.fleet_size", "is too large"))?;
    Ok(StoreConfig {
        cluster: raw.cluster.unwrap_or_else(|| "tollgate_store".into()),
        authority: raw.authority.unwrap_or_else(|| "tollgate-store".into()),
        token: raw.token,
        timeout: raw.timeout.map_or(Duration::from_millis(50), |d| d.0),
        sync_interval: raw.sync_interval.map_or(Duration::from_millis(100), |d| d.0),
        failure_mode: raw.failure_mode.unwrap_or(FailureMode::Local),
        fleet_size,
        poll_interval: raw.poll_interval.map_or(Duration::from_secs(1), |d| d.0),
    })
}

fn response(raw: Option<raw::Response>) -> Result<ResponseConfig, ConfigError> {
    let mut r = ResponseConfig {
        status: 429,
        headers: vec![HeaderFormat::Ietf, HeaderFormat::XRateLimit],
        message: "Rate limit exceeded: {limit} per {window}".to_string(),
        format: ErrorFormat::Auto,
    };
    let Some(raw) = raw else { return Ok(r) };
    if let Some(status) = raw.status {
        r.status = u32::try_from(status.0)
            .ok()
            .filter(|s| (400..=599).contains(s))
            .ok_or_else(|| ConfigError::new("response.status", format!("{} is not a 4xx or 5xx status", status.0)))?;
    }
    if let Some(headers) = raw.headers {
        r.headers.clear();
        for h in headers {
            if !r.headers.contains(&h) {
                r.headers.push(h);
            }
        }
    }
    if let Some(m) = raw.message {
        r.message = m;
    }
    r.format = raw.format.unwrap_or(ErrorFormat::Auto);
    Ok(r)
}
