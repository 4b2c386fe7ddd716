//! One request through the rules: match, key, tier, engine, reply. Pure: the host glue gives
//! it a `Request`, the shared store and the time, and carries out the `Reply`.

use crate::algorithm::{Algorithm, Decision, Nanos, Quota};
use crate::config::{Config, MissingKey, Rule, Scope, Strategy, TierLimit, Unit};
use crate::engine::{Check, Engine, EngineStats, Outcome};
use crate::global::GlobalCheck;
use crate::hash::KeyHash;
use crate::keys::{api_key, KeyPart, KeySource};
use crate::llm::{self, LlmRequest, Usage};
use crate::overrides::Overrides;
use crate::request::Request;
use crate::response::{self, Applied, ErrorReply, Shape};
use crate::shared_store::{SharedStore, StoreError};
use crate::slot_table::Place;

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
    /// A cost rule without a price for the request's model answered 400.
    UnknownModel,
    /// A degrade rule over its limit: the request goes on, degraded.
    Degraded,
    /// A throttle rule over its limit: the request is held, then goes on.
    Throttled,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Allowed => "allowed",
            RuleStatus::Denied => "denied",
            RuleStatus::ShadowDenied => "shadow_denied",
            RuleStatus::Unlimited => "unlimited",
            RuleStatus::MissingKey => "missing_key",
            RuleStatus::UnknownModel => "unknown_model",
            RuleStatus::Degraded => "degraded",
            RuleStatus::Throttled => "throttled",
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

/// A charge to settle when the response ends: token and cost reservations are replaced by
/// the real usage, concurrency slots are released.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    pub check: Check,
    pub place: Place,
    pub reserved: u64,
    pub unit: Unit,
    /// Micro-dollars per million input and output tokens (cost rules).
    pub price: (u64, u64),
}

#[derive(Debug, Default)]
pub struct Evaluation {
    pub reply: Reply,
    pub rules: Vec<RuleOutcome>,
    pub stats: EngineStats,
    /// What to settle when the response ends.
    pub reservations: Vec<Reservation>,
    /// The first degrade rule over its limit (index into the rules).
    pub degraded_by: Option<usize>,
    /// Throttle: hold the request this long before letting it go on.
    pub hold_ns: u64,
    /// Local rules applied (for headers once global rules are decided).
    pub applied: Vec<AppliedRule>,
    /// Global rules to decide through the store before the request may go on.
    pub global: Vec<GlobalCheck>,
    /// An override (emergency access, an allowed key or IP) let the request skip every rule.
    pub overridden: bool,
    /// The shape of this request's error bodies.
    pub shape: Shape,
}

impl Default for Reply {
    fn default() -> Reply {
        Reply::Continue { headers: Vec::new() }
    }
}

impl Evaluation {
    fn pass() -> Evaluation {
        Evaluation::default()
    }

    /// `x-tollgate-rules` debug value: `name=decision, ...`.
    pub fn debug_header(&self, config: &Config) -> String {
        let parts: Vec<String> = self
            .rules
            .iter()
            .filter_map(|o| config.rules.get(o.rule).map(|r| format!("{}={}", r.name, o.status.as_str())))
            .collect();
        if self.overridden {
            "override".to_string()
        } else if parts.is_empty() {
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
    /// Whether some enabled rule needs the request body (a body key, an LLM unit, a model
    /// rewrite), so the glue buffers it.
    pub needs_body: bool,
    /// Whether some enabled rule counts tokens or cost (so the glue reads response usage).
    pub counts_usage: bool,
    /// Per rule, why it needs the request body.
    rule_needs_body: Vec<BodyNeeds>,
    /// The plugin config's static allow-lists.
    pub static_overrides: Overrides,
    /// Per rule, the key-hash seed of its configured quota (`quota_seed`), prepared once: most
    /// requests use it, and hashing it per request was a tenth of a decision's time.
    base_seeds: Vec<u64>,
}

impl Limiter {
    pub fn new(config: Config) -> Limiter {
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        let engine = Engine::new(config.slots.capacity, &names);
        let needs_ip = config.needs(|k| *k == KeySource::Ip);
        let enabled = || config.rules.iter().filter(|r| r.enabled);
        let counts_usage = enabled().any(|r| r.unit.is_llm());
        let rule_needs_body: Vec<BodyNeeds> = config.rules.iter().map(BodyNeeds::of).collect();
        let needs_body = config.rules.iter().zip(&rule_needs_body).any(|(r, n)| r.enabled && n.any());
        let static_overrides = Overrides::from_static(&config.allow_keys, &config.allow_ips);
        let base_seeds = config.rules.iter().map(|r| quota_seed(r, &r.quota)).collect();
        Limiter { config, engine, needs_ip, needs_body, counts_usage, rule_needs_body, static_overrides, base_seeds }
    }

    /// Create the shared-data entries; call once per configuration.
    pub fn prepare(&self, store: &dyn SharedStore) -> Result<usize, StoreError> {
        self.engine.create_entries(store)
    }

    /// Whether no request can be limited (filter off, or no enabled rule).
    pub fn is_idle(&self) -> bool {
        !self.config.enabled || !self.config.rules.iter().any(|r| r.enabled)
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
    fn key_of(&self, i: usize, rule: &Rule, req: &Request, quota: &Quota) -> Option<KeyHash> {
        if let [src] = rule.key.as_slice() {
            // One key source (most rules): no vectors.
            let part = src.extract(req, &self.config.api_key, self.config.trusted_hops)?;
            return Some(self.hash_key(i, rule, quota, &[part.as_bytes()]));
        }
        let parts: Option<Vec<KeyPart>> =
            rule.key.iter().map(|src| src.extract(req, &self.config.api_key, self.config.trusted_hops)).collect();
        let parts = parts?;
        let bytes: Vec<&[u8]> = parts.iter().map(KeyPart::as_bytes).collect();
        Some(self.hash_key(i, rule, quota, &bytes))
    }

    /// A counter's key hash: per rule for local counters; fleet-wide for global ones (the store
    /// keeps rules apart by name, and the admin API finds a key's counters from the key).
    /// Local counters are also kept apart by quota (`quota_seed`).
    fn hash_key(&self, i: usize, rule: &Rule, quota: &Quota, parts: &[&[u8]]) -> KeyHash {
        match rule.scope {
            Scope::Global => KeyHash::fleet(parts),
            Scope::Local => {
                let seed = match self.base_seeds.get(i) {
                    Some(&seed) if *quota == rule.quota => seed,
                    _ => quota_seed(rule, quota),
                };
                KeyHash::of(seed, parts)
            }
        }
    }

    /// Which of this request's rules need its body, known from the headers alone (path,
    /// method, headers: a rule's tier and model conditions may still turn out not to hold).
    /// The glue buffers the body only when one of them can apply.
    pub fn body_plan(&self, req: &Request) -> BodyPlan {
        let mut plan = BodyPlan::default();
        if !self.needs_body || self.is_exempt(req.path) {
            return plan;
        }
        let streams_usage = self.config.llm.include_usage && llm::asks_for_usage_when_streaming(req.path);
        for (rule, needs) in self.config.rules.iter().zip(&self.rule_needs_body) {
            if !needs.any() || !rule.enabled || !rule.matcher.may_match_before_body(req) {
                continue;
            }
            plan.buffer = true;
            plan.reads_usage |= rule.unit.is_llm();
            plan.may_rewrite |= needs.rewrites_model || (rule.unit.is_llm() && streams_usage);
        }
        plan
    }

    /// Decide one request: every matching rule applies; the request is denied if any
    /// (non-shadow) rule denies, and then consumes no quota.
    ///
    /// `can_hold`: whether the worker's throttle queue has room (else throttle rules reject).
    /// `synced`: the overrides and per-key limits last pulled from the store.
    pub fn evaluate(
        &self,
        store: &dyn SharedStore,
        req: &Request,
        now: Nanos,
        can_hold: bool,
        synced: &Overrides,
    ) -> Evaluation {
        let shape = Shape::of(self.config.response.format, req.path);
        let gathered = match self.gather(req, now, can_hold, synced, Pass::Decide, shape) {
            Gather::Checks(g) => g,
            Gather::Decided(eval) => return eval,
        };
        let Gathered { checks, global, prices, outcomes } = gathered;
        if checks.is_empty() {
            return Evaluation { rules: outcomes, global, shape, ..Evaluation::default() };
        }
        let outcome = self.engine.admit(store, &checks, now);
        let mut eval = self.finish(&checks, &outcome, outcomes, shape, now);
        if outcome.denied_by.is_none() {
            eval.global = global;
            eval.hold_ns = outcome.delay_ns();
            eval.reservations = checks
                .iter()
                .zip(&outcome.verdicts)
                .zip(prices)
                .filter_map(|((c, v), price)| {
                    let unit = self.config.rules.get(c.rule)?.unit;
                    v.charged.then_some(Reservation { check: *c, place: v.place, reserved: c.cost, unit, price })
                })
                .collect();
        }
        eval
    }

    /// Before the body of a request that a body rule may apply to: what its local rules that
    /// decide without the body already say. Charges nothing (the decision, all rules at once,
    /// follows the body). Some: a denial to answer now, before the upstream sees anything, or
    /// a degrade (`degraded_by`) whose marker header must go with the headers.
    pub fn precheck(
        &self,
        store: &dyn SharedStore,
        req: &Request,
        now: Nanos,
        can_hold: bool,
        synced: &Overrides,
    ) -> Option<Evaluation> {
        let shape = Shape::of(self.config.response.format, req.path);
        let gathered = match self.gather(req, now, can_hold, synced, Pass::Precheck, shape) {
            Gather::Checks(g) => g,
            Gather::Decided(eval) => return matches!(eval.reply, Reply::Deny { .. }).then_some(eval),
        };
        if gathered.checks.is_empty() {
            return None;
        }
        let outcome = self.engine.check_only(store, &gathered.checks, now);
        let eval = self.finish(&gathered.checks, &outcome, gathered.outcomes, shape, now);
        (matches!(eval.reply, Reply::Deny { .. }) || eval.degraded_by.is_some()).then_some(eval)
    }

    /// The checks a request makes, rule by rule, unless it is decided without counters (an
    /// override lets it pass, a rule refuses it).
    fn gather(
        &self,
        req: &Request,
        now: Nanos,
        can_hold: bool,
        synced: &Overrides,
        pass: Pass,
        shape: Shape,
    ) -> Gather {
        if self.is_exempt(req.path) || self.config.rules.is_empty() {
            return Gather::Decided(Evaluation::pass());
        }
        let now_ms = now / 1_000_000;
        let overridden = !synced.is_empty() || !self.static_overrides.is_empty();
        let fleet_key =
            if overridden { api_key(req, &self.config.api_key).map(|k| KeyHash::fleet(&[k.as_bytes()])) } else { None };
        if overridden {
            let ip = (synced.has_ips() || self.static_overrides.has_ips())
                .then(|| req.client_ip(self.config.trusted_hops).and_then(|a| a.parse::<std::net::IpAddr>().ok()))
                .flatten();
            if self.static_overrides.bypasses(fleet_key, ip.as_ref(), now_ms)
                || synced.bypasses(fleet_key, ip.as_ref(), now_ms)
            {
                return Gather::Decided(Evaluation { overridden: true, ..Evaluation::default() });
            }
        }
        let tier = synced.tier(fleet_key).map(str::to_string).or_else(|| self.tier(req));
        let llm_req = req.body.map(LlmRequest::from_body);
        let n = self.config.rules.len();
        let mut g = Gathered {
            checks: Vec::with_capacity(n),
            global: Vec::new(),
            prices: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
        };
        for (i, rule) in self.config.rules.iter().enumerate() {
            if pass == Pass::Precheck
                && (rule.scope == Scope::Global || self.rule_needs_body.get(i).is_some_and(|n| n.decides))
            {
                continue;
            }
            if !rule.enabled || !rule.matcher.matches(req, tier.as_deref()) {
                continue;
            }
            let quota = match synced.adjust(fleet_key, &rule.name, rule.limit_for(tier.as_deref()), now_ms) {
                TierLimit::Unlimited => {
                    g.outcomes.push(RuleOutcome { rule: i, status: RuleStatus::Unlimited, near_limit: false });
                    continue;
                }
                TierLimit::Limited(q) => q,
            };
            let key = match self.key_of(i, rule, req, &quota) {
                Some(k) => k,
                None => match rule.missing_key {
                    MissingKey::Shared => self.hash_key(i, rule, &quota, &[MISSING]),
                    MissingKey::Skip => continue,
                    MissingKey::Deny => {
                        return Gather::Decided(self.refusal(
                            i,
                            rule,
                            Refusal::MissingKey,
                            "This request lacks the key rule {rule} needs",
                            shape,
                        ))
                    }
                },
            };
            let (algorithm, quota, cost, price) = match self.cost_of(rule, quota, llm_req.as_ref()) {
                Cost::Charge { algorithm, quota, cost, price } => (algorithm, quota, cost, price),
                Cost::NotApplicable => continue,
                Cost::UnknownModel => {
                    return Gather::Decided(self.refusal(
                        i,
                        rule,
                        Refusal::UnknownModel,
                        "Rule {rule} has no price for this model",
                        shape,
                    ))
                }
            };
            if rule.scope == Scope::Global {
                g.global.push(GlobalCheck { rule: i, algorithm, quota, key, cost, price });
                continue;
            }
            g.checks.push(Check {
                rule: i,
                algorithm,
                quota,
                key,
                cost,
                shadow: matches!(rule.strategy, Strategy::Shadow | Strategy::Degrade),
                max_wait_ns: if rule.strategy == Strategy::Throttle && can_hold { rule.max_wait.as_nanos() } else { 0 },
            });
            g.prices.push(price);
            g.outcomes.push(RuleOutcome { rule: i, status: RuleStatus::Allowed, near_limit: false });
        }
        Gather::Checks(g)
    }

    /// How a rule charges this request.
    fn cost_of(&self, rule: &Rule, quota: Quota, req: Option<&LlmRequest>) -> Cost {
        let Some(algorithm) = rule.algorithm else {
            // Concurrency: a GCRA whose emission interval is the lease, so a slot that is
            // never released frees itself after the lease; releases refund exactly.
            let slots = quota.limit;
            let quota = Quota { limit: slots, burst: slots, window_ns: quota.window_ns.saturating_mul(slots) };
            return Cost::Charge { algorithm: Algorithm::Gcra, quota, cost: 1, price: (0, 0) };
        };
        let estimate = |req: &LlmRequest| llm::estimate_tokens(&self.config.llm, req, rule.unit);
        match rule.unit {
            Unit::Requests | Unit::Concurrent => Cost::Charge { algorithm, quota, cost: 1, price: (0, 0) },
            Unit::Tokens | Unit::InputTokens | Unit::OutputTokens => {
                let tokens = req.map(estimate).unwrap_or(0);
                Cost::Charge { algorithm, quota, cost: tokens.max(1), price: (0, 0) }
            }
            Unit::CostUsd => {
                let Some(req) = req.filter(|r| r.model.is_some()) else { return Cost::NotApplicable };
                let Some(price) = llm::price_of(&self.config.llm, req.model.as_deref()) else {
                    return Cost::UnknownModel;
                };
                let micro = llm::cost_micro_usd(price, 0, estimate(req));
                let price = (price.input_per_mtok_micro, price.output_per_mtok_micro);
                Cost::Charge { algorithm, quota, cost: micro.max(1), price }
            }
        }
    }

    /// Replace reservations with the real usage (None: no usage was found, keep the
    /// estimates) and release concurrency slots.
    pub fn settle(
        &self,
        store: &dyn SharedStore,
        reservations: &[Reservation],
        usage: Option<&Usage>,
        now: Nanos,
    ) -> EngineStats {
        let mut stats = EngineStats::default();
        for r in reservations {
            if let Some(delta) = settlement(r.unit, r.reserved, r.price, usage) {
                self.engine.adjust(store, &r.check, r.place, delta, now, &mut stats);
            }
        }
        stats
    }

    /// Give back everything a request was charged (a held request whose client went away).
    pub fn refund(&self, store: &dyn SharedStore, reservations: &[Reservation], now: Nanos) -> EngineStats {
        let mut stats = EngineStats::default();
        for r in reservations {
            let delta = -(i64::try_from(r.reserved).unwrap_or(i64::MAX));
            self.engine.adjust(store, &r.check, r.place, delta, now, &mut stats);
        }
        stats
    }

    /// A rule's name ("" for an index out of range).
    pub fn rule_name(&self, rule: usize) -> &str {
        self.config.rules.get(rule).map(|r| r.name.as_str()).unwrap_or("")
    }

    pub fn rule_unit(&self, rule: usize) -> Option<Unit> {
        self.config.rules.get(rule).map(|r| r.unit)
    }

    /// Whether a global rule uses `sync: batched` (leases) rather than strict.
    pub fn is_batched(&self, rule: usize) -> bool {
        self.config.rules.get(rule).is_some_and(|r| r.sync == crate::config::Sync::Batched)
    }

    pub fn has_batched(&self) -> bool {
        self.config
            .rules
            .iter()
            .any(|r| r.enabled && r.scope == Scope::Global && r.sync == crate::config::Sync::Batched)
    }

    /// How long a lease may be spent: five sync intervals.
    pub fn lease_ttl(&self) -> Nanos {
        self.config.store.as_ref().map(|s| s.sync_interval.as_nanos()).unwrap_or(100_000_000).saturating_mul(5)
    }

    /// What a request without a lease asks for: half the most one proxy may hold, at least
    /// its own cost.
    pub fn first_lease(&self, g: &GlobalCheck) -> u64 {
        let fleet = self.config.store.as_ref().map(|s| s.fleet_size).unwrap_or(1);
        (crate::lease::max_lease(g.algorithm, &g.quota, fleet) / 2).max(1).max(g.cost)
    }

    /// The global check a leased index entry stands for (None when its rule is gone).
    pub fn lease_check(&self, e: &crate::lease::IndexEntry) -> Option<GlobalCheck> {
        let rule = self.config.rules.get(e.rule as usize)?;
        let algorithm = rule.algorithm?;
        let quota = Quota { limit: e.limit, window_ns: rule.quota.window_ns, burst: e.burst };
        Some(GlobalCheck { rule: e.rule as usize, algorithm, quota, key: KeyHash(e.key), cost: 0, price: (0, 0) })
    }

    /// Whether any rule holds requests (so the glue runs a tick to release them).
    pub fn throttles(&self) -> bool {
        self.config.rules.iter().any(|r| r.enabled && r.strategy == Strategy::Throttle)
    }

    fn finish(
        &self,
        checks: &[Check],
        outcome: &Outcome,
        mut outcomes: Vec<RuleOutcome>,
        shape: Shape,
        now: Nanos,
    ) -> Evaluation {
        let (verdicts, denied_by, stats) = (&outcome.verdicts, outcome.denied_by, outcome.stats);
        let mut applied: Vec<AppliedRule> = Vec::with_capacity(checks.len());
        for (check, verdict) in checks.iter().zip(verdicts) {
            let Some(rule) = self.config.rules.get(check.rule) else { continue };
            let d: Decision = verdict.decision;
            if let Some(o) = outcomes.iter_mut().find(|o| o.rule == check.rule) {
                o.status = match (d.allowed, rule.strategy) {
                    (true, _) if verdict.delay_ns > 0 => RuleStatus::Throttled,
                    _ => status_of(&d, rule.strategy),
                };
                o.near_limit = near_limit(&d, check.algorithm, &check.quota);
            }
            applied.push(AppliedRule { rule: check.rule, quota: check.quota, decision: d });
        }
        let reply = self.compose(&applied, denied_by, shape, now);
        let degraded_by = outcomes.iter().find(|o| o.status == RuleStatus::Degraded).map(|o| o.rule);
        Evaluation { reply, rules: outcomes, stats, applied, degraded_by, shape, ..Evaluation::default() }
    }

    /// The reply for applied rules: headers, and when `denied_by` (an index into `applied`)
    /// is set, the denial, in the request's error `shape`.
    pub fn compose(&self, applied: &[AppliedRule], denied_by: Option<usize>, shape: Shape, now: Nanos) -> Reply {
        let applied: Vec<Applied> = applied
            .iter()
            .filter_map(|a| {
                Some(Applied { rule: self.config.rules.get(a.rule)?, quota: a.quota, decision: a.decision })
            })
            .collect();
        let mut headers = response::rate_limit_headers(&self.config.response.headers, &applied, denied_by, now);
        match denied_by.and_then(|i| applied.get(i)) {
            None => Reply::Continue { headers },
            Some(denier) => {
                // A spent budget does not come back by retrying soon.
                let budget = denier.rule.unit == Unit::CostUsd;
                let retry_after = if budget { None } else { response::retry_after_secs(&denier.decision) };
                if let Some(secs) = retry_after {
                    headers.push(("retry-after", secs.to_string()));
                }
                headers.push(("content-type", "application/json".to_string()));
                let message = response::denial_message(&self.config.response.message, denier);
                let error = ErrorReply {
                    status: self.config.response.status,
                    message: &message,
                    kind: denier.rule.unit.error_type(),
                    code: if budget { "insufficient_quota" } else { "rate_limit_exceeded" },
                    rule: &denier.rule.name,
                    retry_after,
                };
                Reply::Deny { status: error.status, headers, body: response::error_body(shape, &error) }
            }
        }
    }

    /// Conclude a request whose global checks were decided (by the store, or by the local
    /// share when it could not answer): the final reply and the global rules' outcomes.
    /// `decisions` are in the order of `eval_global`.
    pub fn conclude_global(
        &self,
        local: &[AppliedRule],
        global: &[GlobalCheck],
        decisions: &[Decision],
        shape: Shape,
        now: Nanos,
    ) -> (Reply, Vec<RuleOutcome>) {
        let mut applied = local.to_vec();
        let mut outcomes = Vec::with_capacity(global.len());
        let mut denied_by = None;
        for (g, d) in global.iter().zip(decisions) {
            let Some(rule) = self.config.rules.get(g.rule) else { continue };
            let status = status_of(d, rule.strategy);
            if status == RuleStatus::Denied && denied_by.is_none() {
                denied_by = Some(applied.len());
            }
            outcomes.push(RuleOutcome { rule: g.rule, status, near_limit: near_limit(d, g.algorithm, &g.quota) });
            applied.push(AppliedRule { rule: g.rule, quota: g.quota, decision: *d });
        }
        (self.compose(&applied, denied_by, shape, now), outcomes)
    }

    /// Decide global checks against this proxy's share of their limits (failure mode
    /// `local`), in separate local counters. Returns the decisions and what to refund or
    /// settle later.
    pub fn admit_local_share(
        &self,
        store: &dyn SharedStore,
        global: &[GlobalCheck],
        now: Nanos,
    ) -> (Vec<Decision>, Vec<Reservation>, EngineStats) {
        let fleet = self.config.store.as_ref().map(|s| s.fleet_size).unwrap_or(1);
        let checks: Vec<Check> = global
            .iter()
            .map(|g| Check {
                rule: g.rule,
                algorithm: g.algorithm,
                quota: crate::global::local_share(&g.quota, fleet),
                key: KeyHash(g.key.0 ^ LOCAL_SHARE_SALT),
                cost: g.cost,
                shadow: self.config.rules.get(g.rule).is_some_and(|r| r.strategy == Strategy::Shadow),
                max_wait_ns: 0,
            })
            .collect();
        let out = self.engine.admit(store, &checks, now);
        let reservations = checks
            .iter()
            .zip(&out.verdicts)
            .filter(|(_, v)| v.charged)
            .filter_map(|(c, v)| {
                let unit = self.config.rules.get(c.rule)?.unit;
                Some(Reservation { check: *c, place: v.place, reserved: c.cost, unit, price: (0, 0) })
            })
            .collect();
        (out.verdicts.iter().map(|v| v.decision).collect(), reservations, out.stats)
    }

    /// A local refusal that is not a rate limit (403 missing key, 400 unknown model).
    fn refusal(&self, i: usize, rule: &Rule, why: Refusal, message: &str, shape: Shape) -> Evaluation {
        let (status, code, rule_status) = match why {
            Refusal::MissingKey => (403, "missing_key", RuleStatus::MissingKey),
            Refusal::UnknownModel => (400, "unknown_model", RuleStatus::UnknownModel),
        };
        let message = message.replace("{rule}", &format!("{:?}", rule.name));
        let error = ErrorReply {
            status,
            message: &message,
            kind: rule.unit.error_type(),
            code,
            rule: &rule.name,
            retry_after: None,
        };
        Evaluation {
            reply: Reply::Deny {
                status,
                headers: vec![("content-type", "application/json".to_string())],
                body: response::error_body(shape, &error),
            },
            rules: vec![RuleOutcome { rule: i, status: rule_status, near_limit: false }],
            shape,
            ..Evaluation::default()
        }
    }

    /// The 503 of `store.failure_mode: closed` when the store cannot answer.
    pub fn store_unavailable(&self, shape: Shape) -> Reply {
        let error = ErrorReply {
            status: 503,
            message: "Rate limit store unavailable",
            kind: "requests",
            code: "store_unavailable",
            rule: "",
            retry_after: None,
        };
        Reply::Deny {
            status: 503,
            headers: vec![("content-type", "application/json".to_string())],
            body: response::error_body(shape, &error),
        }
    }
}

/// The correction that settles a charge of `reserved` units once the response ended:
/// LLM units take the real usage (None: no usage found, the estimate stands), concurrency
/// slots are released, requests stay as charged.
pub fn settlement(unit: Unit, reserved: u64, price: (u64, u64), usage: Option<&Usage>) -> Option<i64> {
    match (unit, usage) {
        (Unit::Concurrent, _) => Some(-1),
        (Unit::Requests, _) | (_, None) => None,
        (unit, Some(u)) => {
            let price = crate::config::Price {
                model: String::new(),
                input_per_mtok_micro: price.0,
                output_per_mtok_micro: price.1,
            };
            let used = llm::units_used(unit, u, Some(&price));
            let delta = (used as i128 - reserved as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
            (delta != 0).then_some(delta)
        }
    }
}

/// The key-hash seed of a local rule's counters under `quota`. Local counters are kept apart by
/// quota: a counter's state is only meaningful under the quota it was charged with (GCRA scales
/// time by the limit, windows are numbered by their length), so a key whose tier, grant or
/// per-key limit changes, or a rule whose limit a reload changes, starts a fresh counter instead
/// of misreading the old one.
fn quota_seed(rule: &Rule, quota: &Quota) -> u64 {
    let q = [quota.limit.to_le_bytes(), quota.window_ns.to_le_bytes(), quota.burst.to_le_bytes()];
    crate::hash::hash_parts(rule.hash_seed, &[&q[0], &q[1], &q[2]])
}

/// Local-share counters of global rules are kept apart from local rules' counters.
const LOCAL_SHARE_SALT: u64 = 0x6c6f_6361_6c73_6872; // "localshr"

fn status_of(d: &Decision, strategy: Strategy) -> RuleStatus {
    match (d.allowed, strategy) {
        (true, _) => RuleStatus::Allowed,
        (false, Strategy::Shadow) => RuleStatus::ShadowDenied,
        (false, Strategy::Degrade) => RuleStatus::Degraded,
        (false, _) => RuleStatus::Denied,
    }
}

/// At least 80 % of the capacity is used.
fn near_limit(d: &Decision, algorithm: Algorithm, quota: &Quota) -> bool {
    d.remaining.saturating_mul(5) <= algorithm.capacity(quota)
}

/// A rule applied to a request, by index (kept by the glue while a store call is in flight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedRule {
    pub rule: usize,
    pub quota: Quota,
    pub decision: Decision,
}

/// Which evaluation: the decision itself, or the early look of `precheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Decide,
    Precheck,
}

/// A refusal that is not a rate limit.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    MissingKey,
    UnknownModel,
}

/// What `gather` found.
enum Gather {
    Checks(Gathered),
    /// Decided without counters.
    Decided(Evaluation),
}

/// A request's checks, before the engine sees them.
struct Gathered {
    checks: Vec<Check>,
    global: Vec<GlobalCheck>,
    prices: Vec<(u64, u64)>,
    outcomes: Vec<RuleOutcome>,
}

/// Why a rule needs the request body (fixed at configure time).
#[derive(Clone, Copy, Debug, Default)]
struct BodyNeeds {
    /// A body key, an LLM unit (max_tokens, model) or a model condition: the decision.
    decides: bool,
    /// `degrade.set_model`: the rewrite.
    rewrites_model: bool,
}

impl BodyNeeds {
    fn of(rule: &Rule) -> BodyNeeds {
        BodyNeeds {
            decides: rule.key.iter().any(KeySource::needs_body)
                || rule.unit.is_llm()
                || !rule.matcher.models.is_empty(),
            rewrites_model: rule.degrade.as_ref().is_some_and(|d| d.set_model.is_some()),
        }
    }

    fn any(&self) -> bool {
        self.decides || self.rewrites_model
    }
}

/// What a request's headers tell about its body (`Limiter::body_plan`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyPlan {
    /// A rule that reads the body may apply: buffer it and decide when it is complete.
    pub buffer: bool,
    /// A token or cost rule may apply: the response's usage will be read (ask for it
    /// uncompressed).
    pub reads_usage: bool,
    /// Tollgate may rewrite the body (include_usage, degrade's model), so its length may
    /// change.
    pub may_rewrite: bool,
}

/// How one rule charges one request.
enum Cost {
    Charge {
        algorithm: Algorithm,
        quota: Quota,
        cost: u64,
        price: (u64, u64),
    },
    /// The rule does not apply (a cost rule on a request without a model).
    NotApplicable,
    /// A cost rule, a model without a price and no default price.
    UnknownModel,
}

#[cfg(test)]
mod tests;
