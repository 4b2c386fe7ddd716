//! One request through the rules: match, key, tier, engine, reply. Pure: the host glue gives
//! it a `Request`, the shared store and the time, and carries out the `Reply`.

use crate::algorithm::{Decision, Nanos};
use crate::config::{Config, MissingKey, Rule, Strategy, TierLimit, Unit};
use crate::engine::{Check, Engine, EngineStats, Verdict};
use crate::hash::KeyHash;
use crate::keys::{api_key, KeyPart, KeySource};
use crate::request::Request;
use crate::response::{self, Applied};
use crate::shared_store::{SharedStore, StoreError};

/// A key part standing for "this request lacks the key source" (`missing_key: shared`).
const MISSING: &[u8] = b"\x00tollgate:missing";

/// What one rule did to one request (for metrics and the debug header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleStatus {
    Allowed,
    Denied,
    /// A shadow rule that would have denied.
    ShadowDenied,
    /// The request's tier is unlimited for this rule.
    Unlimited,
    /// `missing_key: deny` answered 403.
    MissingKey,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Allowed => "allowed",
            RuleStatus::Denied => "denied",
            RuleStatus::ShadowDenied => "shadow_denied",
            RuleStatus::Unlimited => "unlimited",
            RuleStatus::MissingKey => "missing_key",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleOutcome {
    pub rule: usize,
    pub status: RuleStatus,
    /// At least 80 % of the capacity is used.
    pub near_limit: bool,
}

/// What the glue must do with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let it through, adding these headers to the response.
    Continue { headers: Vec<(&'static str, String)> },
    /// Answer locally.
    Deny { status: u32, headers: Vec<(&'static str, String)>, body: String },
}

#[derive(Debug)]
pub struct Evaluation {
    pub reply: Reply,
    pub rules: Vec<RuleOutcome>,
    pub stats: EngineStats,
}

impl Evaluation {
    fn pass() -> Evaluation {
        Evaluation { reply: Reply::Continue { headers: Vec::new() }, rules: Vec::new(), stats: EngineStats::default() }
    }

    /// `x-tollgate-rules` debug value: `name=decision, ...`.
    pub fn debug_header(&self, config: &Config) -> String {
        let parts: Vec<String> = self
            .rules
            .iter()
            .filter_map(|o| config.rules.get(o.rule).map(|r| format!("{}={}", r.name, o.status.as_str())))
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// The configured rules and the engine, built once per configuration.
pub struct Limiter {
    pub config: Config,
    pub engine: Engine,
    /// Whether some enabled rule keys on the client IP (so the glue asks Envoy for it).
    pub needs_ip: bool,
    /// Whether some enabled rule keys on a body field (so the glue buffers the body).
    pub needs_body: bool,
}

impl Limiter {
    pub fn new(config: Config) -> Limiter {
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        let engine = Engine::new(config.slots.capacity, &names);
        let needs_ip = config.needs(|k| *k == KeySource::Ip);
        let needs_body = config.needs(KeySource::needs_body);
        Limiter { config, engine, needs_ip, needs_body }
    }

    /// Create the shared-data entries; call once per configuration.
    pub fn prepare(&self, store: &dyn SharedStore) -> Result<usize, StoreError> {
        self.engine.create_entries(store)
    }

    /// Whether the request is never limited (filter off, or an exempt path).
    pub fn is_exempt(&self, path: &str) -> bool {
        !self.config.enabled || self.config.exempt_paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// The request's tier: the static key map, then the tier source, then the default.
    pub fn tier(&self, req: &Request) -> Option<String> {
        let t = self.config.tier.as_ref()?;
        if !t.keys.is_empty() {
            if let Some(key) = api_key(req, &self.config.api_key) {
                if let Some((_, tier)) = t.keys.iter().find(|(k, _)| k == key) {
                    return Some(tier.clone());
                }
            }
        }
        if let Some(src) = &t.source {
            if let Some(part) = src.extract(req, &self.config.api_key, self.config.trusted_hops) {
                let text = String::from_utf8_lossy(part.as_bytes()).into_owned();
                if !text.is_empty() {
                    return Some(text);
                }
            }
        }
        t.default.clone()
    }

    /// The counter key of `rule` for `req`, or None when a key source is missing.
    fn key_of(&self, rule: &Rule, req: &Request) -> Option<KeyHash> {
        let mut parts: [Option<KeyPart>; 4] = [None, None, None, None];
        if rule.key.len() <= parts.len() {
            for (slot, src) in parts.iter_mut().zip(&rule.key) {
                *slot = Some(src.extract(req, &self.config.api_key, self.config.trusted_hops)?);
            }
            let bytes: Vec<&[u8]> = parts.iter().flatten().map(KeyPart::as_bytes).collect();
            return Some(KeyHash::of(rule.hash_seed, &bytes));
        }
        let owned: Option<Vec<KeyPart>> =
            rule.key.iter().map(|src| src.extract(req, &self.config.api_key, self.config.trusted_hops)).collect();
        let owned = owned?;
        let bytes: Vec<&[u8]> = owned.iter().map(KeyPart::as_bytes).collect();
        Some(KeyHash::of(rule.hash_seed, &bytes))
    }

    /// Decide one request: every matching rule applies; the request is denied if any
    /// (non-shadow) rule denies, and then consumes no quota.
    pub fn evaluate(&self, store: &dyn SharedStore, req: &Request, now: Nanos) -> Evaluation {
        if self.is_exempt(req.path) || self.config.rules.is_empty() {
            return Evaluation::pass();
        }
        let tier = self.tier(req);
        let mut checks: Vec<Check> = Vec::new();
        let mut outcomes: Vec<RuleOutcome> = Vec::new();
        for (i, rule) in self.config.rules.iter().enumerate() {
            if !rule.enabled || !rule.matcher.matches(req, tier.as_deref()) || !self.enforced(rule) {
                continue;
            }
            let quota = match rule.limit_for(tier.as_deref()) {
                TierLimit::Unlimited => {
                    outcomes.push(RuleOutcome { rule: i, status: RuleStatus::Unlimited, near_limit: false });
                    continue;
                }
                TierLimit::Limited(q) => q,
            };
            let key = match self.key_of(rule, req) {
                Some(k) => k,
                None => match rule.missing_key {
                    MissingKey::Shared => KeyHash::of(rule.hash_seed, &[MISSING]),
                    MissingKey::Skip => continue,
                    MissingKey::Deny => return self.missing_key_reply(i, rule),
                },
            };
            let Some(algorithm) = rule.algorithm else { continue };
            checks.push(Check {
                rule: i,
                algorithm,
                quota,
                key,
                cost: 1,
                shadow: rule.strategy == Strategy::Shadow,
            });
            outcomes.push(RuleOutcome { rule: i, status: RuleStatus::Allowed, near_limit: false });
        }
        if checks.is_empty() {
            return Evaluation { reply: Reply::Continue { headers: Vec::new() }, rules: outcomes, stats: EngineStats::default() };
        }
        let outcome = self.engine.admit(store, &checks, now);
        self.finish(&checks, &outcome.verdicts, outcome.denied_by, outcomes, outcome.stats)
    }

    /// Units this build enforces (the others are validated but not yet applied).
    fn enforced(&self, rule: &Rule) -> bool {
        rule.unit == Unit::Requests
    }

    fn finish(
        &self,
        checks: &[Check],
        verdicts: &[Verdict],
        denied_by: Option<usize>,
        mut outcomes: Vec<RuleOutcome>,
        stats: EngineStats,
    ) -> Evaluation {
        let mut applied: Vec<Applied> = Vec::with_capacity(checks.len());
        for (check, verdict) in checks.iter().zip(verdicts) {
            let Some(rule) = self.config.rules.get(check.rule) else { continue };
            let d: Decision = verdict.decision;
            if let Some(o) = outcomes.iter_mut().find(|o| o.rule == check.rule) {
                o.status = match (d.allowed, check.shadow) {
                    (true, _) => RuleStatus::Allowed,
                    (false, true) => RuleStatus::ShadowDenied,
                    (false, false) => RuleStatus::Denied,
                };
                let capacity = check.algorithm.capacity(&check.quota);
                o.near_limit = d.remaining.saturating_mul(5) <= capacity;
            }
            applied.push(Applied { rule, quota: check.quota, decision: d });
        }
        let mut headers = response::rate_limit_headers(&self.config.response.headers, &applied);
        let reply = match denied_by.and_then(|i| applied.get(i)) {
            None => Reply::Continue { headers },
            Some(denier) => {
                if let Some(secs) = response::retry_after_secs(&denier.decision) {
                    headers.push(("retry-after", secs.to_string()));
                }
                headers.push(("content-type", "application/json".to_string()));
                let body = response::denial_body(&self.config.response.message, denier, "rate_limit_exceeded");
                Reply::Deny { status: self.config.response.status, headers, body }
            }
        };
        Evaluation { reply, rules: outcomes, stats }
    }

    fn missing_key_reply(&self, i: usize, rule: &Rule) -> Evaluation {
        let body = response::error_body(
            &format!("This request lacks the key rule {:?} needs", rule.name),
            rule.unit.error_type(),
            "missing_key",
            &rule.name,
        );
        Evaluation {
            reply: Reply::Deny { status: 403, headers: vec![("content-type", "application/json".to_string())], body },
            rules: vec![RuleOutcome { rule: i, status: RuleStatus::MissingKey, near_limit: false }],
            stats: EngineStats::default(),
        }
    }
}

#[cfg(test)]
mod tests;
