//! One request through the rules. The `Limiter` is built once per configuration; its verbs
//! are per request: `body_plan` and `precheck` (what the headers alone tell), `evaluate` (the
//! decision: every matching rule checked, then all charged, or none), `conclude_global` (once
//! the store decided the global rules), `settle` and `refund` (when the response ended).
//!
//! Parts: `needs` (what the rules need from a request, once per configuration), `identity`
//! (who the request is, once per request), `cost` (what it costs under a rule, and the
//! settlement), `outcome` (statuses, charges, replies).

mod cost;
mod identity;
mod needs;
mod outcome;

pub use identity::Identity;
pub use needs::{BodyNeeds, BodyPlan, Needs};
pub use outcome::{AppliedRule, Evaluation, Reply, Reservation, RuleOutcome, RuleStatus};

use crate::config::{Config, MissingKey, Rule, Scope, Strategy, TierLimit, Unit};
use crate::engine::algorithm::{Decision, Nanos, Quota};
use crate::engine::hash::KeyHash;
use crate::engine::shared_store::{SharedStore, StoreError};
use crate::engine::{Check, Engine, EngineStats, Outcome};
use crate::global::GlobalCheck;
use crate::llm::{self, LlmRequest, Usage};
use crate::overrides::Overrides;
use crate::request::keys::{KeyPart, KeySource};
use crate::request::Request;
use crate::response::Shape;
use cost::Cost;
use outcome::{near_limit, Refusal};

/// A key part standing for "this request lacks the key source" (`missing_key: shared`).
const MISSING: &[u8] = b"\x00tollgate:missing";

/// The configured rules and the engine, built once per configuration.
pub struct Limiter {
    pub config: Config,
    pub engine: Engine,
    pub needs: Needs,
    /// The plugin config's static allow-lists.
    pub static_overrides: Overrides,
    /// Per rule, the key-hash seed of its configured quota (`quota_seed`), prepared once: most
    /// requests use it, and hashing it per request was a tenth of a decision's time.
    base_seeds: Vec<u64>,
}

/// Which evaluation: the decision itself, or the early look of `precheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Decide,
    Precheck,
}

/// What `gather` found.
enum Gather {
    Checks(Gathered),
    /// Decided without counters (an override lets it pass, a rule refuses it).
    Decided(Evaluation),
}

/// A request's checks, before the engine sees them.
struct Gathered {
    checks: Vec<Check>,
    global: Vec<GlobalCheck>,
    prices: Vec<Option<llm::PriceRef>>,
    outcomes: Vec<RuleOutcome>,
}

impl Limiter {
    pub fn new(config: Config) -> Limiter {
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        let engine = Engine::new(config.slots.capacity, &names);
        let needs = Needs::of(&config);
        let static_overrides = Overrides::from_static(&config.allow_keys, &config.allow_ips);
        let base_seeds = config.rules.iter().map(|r| quota_seed(r, &r.quota)).collect();
        Limiter { config, engine, needs, static_overrides, base_seeds }
    }

    /// Create the shared-data entries; call once per configuration.
    pub fn prepare(&self, store: &dyn SharedStore) -> Result<usize, StoreError> {
        self.engine.create_entries(store)
    }

    /// Whether no request can be limited (filter off, or no enabled rule).
    pub fn is_idle(&self) -> bool {
        self.needs.nothing
    }

    /// Whether the request is never limited (filter off, or an exempt path).
    pub fn is_exempt(&self, path: &str) -> bool {
        !self.config.enabled || self.config.exempt_paths.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Whether the client address is needed (a rule keys on it, or an override lists
    /// addresses), so the host is asked for it.
    pub fn needs_peer(&self, synced: &Overrides) -> bool {
        self.needs.ip || synced.has_ips() || self.static_overrides.has_ips()
    }

    /// A rule's name ("" for an index out of range).
    pub fn rule_name(&self, rule: usize) -> &str {
        self.config.rules.get(rule).map(|r| r.name.as_str()).unwrap_or("")
    }

    pub fn rule_unit(&self, rule: usize) -> Option<Unit> {
        self.config.rules.get(rule).map(|r| r.unit)
    }

    /// Which of this request's rules need its body, known from the headers alone (path,
    /// method, headers: a rule's tier and model conditions may still turn out not to hold).
    /// The host buffers the body only when one of them can apply.
    pub fn body_plan(&self, req: &Request) -> BodyPlan {
        let mut plan = BodyPlan::default();
        if !self.needs.body || self.is_exempt(req.path) {
            return plan;
        }
        let streams_usage = self.config.llm.include_usage && llm::asks_for_usage_when_streaming(req.path);
        for (rule, needs) in self.config.rules.iter().zip(&self.needs.rule_body) {
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
        let Gathered { checks, global, prices, outcomes } =
            match self.gather(req, now, can_hold, synced, Pass::Decide, shape) {
                Gather::Checks(g) => g,
                Gather::Decided(eval) => return eval,
            };
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
                    let unit = self.rule_unit(c.rule)?;
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

    /// The checks a request makes, rule by rule.
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
            return Gather::Decided(Evaluation::default());
        }
        let now_ms = now / 1_000_000;
        let who = Identity::of(self, req, synced);
        if who.fleet_key.is_some() || who.ip.is_some() {
            let (key, ip) = (who.fleet_key, who.ip.as_ref());
            if self.static_overrides.bypasses(key, ip, now_ms) || synced.bypasses(key, ip, now_ms) {
                return Gather::Decided(Evaluation { overridden: true, ..Evaluation::default() });
            }
        }
        let llm_req = req.body.map(LlmRequest::from_body);
        let n = self.config.rules.len();
        let mut g = Gathered {
            checks: Vec::with_capacity(n),
            global: Vec::new(),
            prices: Vec::with_capacity(n),
            outcomes: Vec::with_capacity(n),
        };
        for (i, rule) in self.config.rules.iter().enumerate() {
            if pass == Pass::Precheck && (rule.scope == Scope::Global || self.needs.body_of(i).decides) {
                continue;
            }
            if !rule.enabled || !rule.matcher.matches(req, who.tier()) {
                continue;
            }
            let quota = match synced.adjust(who.fleet_key, &rule.name, rule.limit_for(who.tier()), now_ms) {
                TierLimit::Unlimited => {
                    g.outcomes.push(RuleOutcome { rule: i, status: RuleStatus::Unlimited, near_limit: false });
                    continue;
                }
                TierLimit::Limited(q) => q,
            };
            let key = match self.key_of(i, rule, req, &who, &quota) {
                Some(k) => k,
                None => match rule.missing_key {
                    MissingKey::Shared => self.hash_key(i, rule, &quota, &[MISSING]),
                    MissingKey::Skip => continue,
                    MissingKey::Deny => return Gather::Decided(self.refusal(i, rule, Refusal::MissingKey, shape)),
                },
            };
            let (algorithm, quota, cost, price) = match self.cost_of(rule, quota, llm_req.as_ref()) {
                Cost::Charge { algorithm, quota, cost, price } => (algorithm, quota, cost, price),
                Cost::NotApplicable => continue,
                Cost::UnknownModel => return Gather::Decided(self.refusal(i, rule, Refusal::UnknownModel, shape)),
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

    /// The counter key of `rule` for `req`, or None when a key source is missing.
    fn key_of<'r>(
        &self,
        i: usize,
        rule: &Rule,
        req: &'r Request<'r>,
        who: &Identity<'r>,
        quota: &Quota,
    ) -> Option<KeyHash> {
        let part = |src: &KeySource| who.part(self, src, req);
        if let [src] = rule.key.as_slice() {
            // One key source (most rules): no vectors.
            return Some(self.hash_key(i, rule, quota, &[part(src)?.as_bytes()]));
        }
        let parts: Vec<KeyPart> = rule.key.iter().map(part).collect::<Option<_>>()?;
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

    /// Statuses and the reply from the engine's verdicts.
    fn finish(
        &self,
        checks: &[Check],
        outcome: &Outcome,
        mut outcomes: Vec<RuleOutcome>,
        shape: Shape,
        now: Nanos,
    ) -> Evaluation {
        let mut applied: Vec<AppliedRule> = Vec::with_capacity(checks.len());
        for (check, verdict) in checks.iter().zip(&outcome.verdicts) {
            let Some(rule) = self.config.rules.get(check.rule) else { continue };
            let d: Decision = verdict.decision;
            if let Some(o) = outcomes.iter_mut().find(|o| o.rule == check.rule) {
                o.status = match (d.allowed, rule.strategy) {
                    (true, _) if verdict.delay_ns > 0 => RuleStatus::Throttled,
                    _ => RuleStatus::of(&d, rule.strategy),
                };
                o.near_limit = near_limit(&d, check.algorithm, &check.quota);
            }
            applied.push(AppliedRule { rule: check.rule, quota: check.quota, decision: d });
        }
        let reply = self.compose(&applied, outcome.denied_by, shape, now);
        let degraded_by = outcomes.iter().find(|o| o.status == RuleStatus::Degraded).map(|o| o.rule);
        Evaluation {
            reply,
            rules: outcomes,
            stats: outcome.stats,
            applied,
            degraded_by,
            shape,
            ..Evaluation::default()
        }
    }

    /// Conclude a request whose global checks were decided (by the store, or by the local
    /// share when it could not answer): the final reply and the global rules' outcomes.
    /// `decisions` are in the order of `global`.
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
            let status = RuleStatus::of(d, rule.strategy);
            if status == RuleStatus::Denied && denied_by.is_none() {
                denied_by = Some(applied.len());
            }
            outcomes.push(RuleOutcome { rule: g.rule, status, near_limit: near_limit(d, g.algorithm, &g.quota) });
            applied.push(AppliedRule { rule: g.rule, quota: g.quota, decision: *d });
        }
        (self.compose(&applied, denied_by, shape, now), outcomes)
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
            if let Some(delta) = self.settlement(r.unit, r.reserved, r.price, usage) {
                self.engine.adjust(store, &r.check, r.place, delta, now, &mut stats);
            }
        }
        stats
    }

    /// Give back everything a request was charged (it will not go on).
    pub fn refund(&self, store: &dyn SharedStore, reservations: &[Reservation], now: Nanos) -> EngineStats {
        let mut stats = EngineStats::default();
        for r in reservations {
            let delta = -(i64::try_from(r.reserved).unwrap_or(i64::MAX));
            self.engine.adjust(store, &r.check, r.place, delta, now, &mut stats);
        }
        stats
    }
}

/// The key-hash seed of a local rule's counters under `quota`. Local counters are kept apart by
/// quota: a counter's state is only meaningful under the quota it was charged with (GCRA scales
/// time by the limit, windows are numbered by their length), so a key whose tier, grant or
/// per-key limit changes, or a rule whose limit a reload changes, starts a fresh counter instead
/// of misreading the old one.
fn quota_seed(rule: &Rule, quota: &Quota) -> u64 {
    let q = [quota.limit.to_le_bytes(), quota.window_ns.to_le_bytes(), quota.burst.to_le_bytes()];
    crate::engine::hash::hash_parts(rule.hash_seed, &[&q[0], &q[1], &q[2]])
}

#[cfg(test)]
mod tests;
