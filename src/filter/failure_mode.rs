//! When the store cannot answer (down, slow, garbage): the circuit breaker that stops calling a
//! store that keeps failing, and what `store.failure_mode` does with the request: count it
//! against this proxy's share of the limit (`local`), let it through (`open`), or answer 503
//! (`closed`).

use crate::config::{FailureMode, StoreConfig, Strategy};
use crate::engine::algorithm::{Decision, Nanos, Quota, NANOS_PER_SEC};
use crate::engine::hash::KeyHash;
use crate::engine::shared_store::SharedStore;
use crate::engine::{Check, EngineStats};
use crate::global::GlobalCheck;
use crate::limiter::{Limiter, Reservation};

/// Consecutive failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker skips the store before one probe call is let through.
pub const BREAKER_COOLDOWN_NS: u64 = NANOS_PER_SEC;

/// A circuit breaker per worker: after `BREAKER_THRESHOLD` consecutive failures the store is
/// not called for `BREAKER_COOLDOWN_NS` (the failure mode applies at once, so a dead store
/// does not add its timeout to every request); then one probe is let through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breaker {
    failures: u32,
    open_until: Nanos,
    probing: bool,
}

impl Breaker {
    /// Whether a call may go to the store now.
    pub fn allows(&mut self, now: Nanos) -> bool {
        if self.failures < BREAKER_THRESHOLD {
            return true;
        }
        if now >= self.open_until && !self.probing {
            self.probing = true;
            return true;
        }
        false
    }

    pub fn success(&mut self) {
        *self = Breaker::default();
    }

    pub fn failure(&mut self, now: Nanos) {
        self.failures = self.failures.saturating_add(1);
        self.probing = false;
        if self.failures >= BREAKER_THRESHOLD {
            self.open_until = now.saturating_add(BREAKER_COOLDOWN_NS);
        }
    }
}

/// What the failure mode does with a request the store cannot decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Count it locally against this proxy's share of the limit.
    LocalShare,
    /// Let it through.
    Allow,
    /// Answer 503.
    Unavailable,
}

pub fn fallback(store: &StoreConfig) -> Fallback {
    match store.failure_mode {
        FailureMode::Local => Fallback::LocalShare,
        FailureMode::Open => Fallback::Allow,
        FailureMode::Closed => Fallback::Unavailable,
    }
}

/// This proxy's share of a global quota when the store is unreachable: limit and burst divided
/// by the fleet size (rounded up, at least 1).
pub fn local_share(q: &Quota, fleet_size: u32) -> Quota {
    let n = u64::from(fleet_size.max(1));
    Quota { limit: q.limit.div_ceil(n).max(1), window_ns: q.window_ns, burst: q.burst.div_ceil(n).max(1) }
}

/// Local-share counters of global rules are kept apart from local rules' counters.
const LOCAL_SHARE_SALT: u64 = 0x6c6f_6361_6c73_6872; // "localshr"

/// Decide global checks against this proxy's share of their limits (failure mode `local`),
/// in separate local counters. Returns the decisions and what to refund or settle later.
pub fn admit_local_share(
    limiter: &Limiter,
    store: &dyn SharedStore,
    global: &[GlobalCheck],
    now: Nanos,
) -> (Vec<Decision>, Vec<Reservation>, EngineStats) {
    let fleet = limiter.config.store.as_ref().map(|s| s.fleet_size).unwrap_or(1);
    let checks: Vec<Check> = global
        .iter()
        .map(|g| Check {
            rule: g.rule,
            algorithm: g.algorithm,
            quota: local_share(&g.quota, fleet),
            key: KeyHash(g.key.0 ^ LOCAL_SHARE_SALT),
            cost: g.cost,
            shadow: limiter.config.rules.get(g.rule).is_some_and(|r| r.strategy == Strategy::Shadow),
            max_wait_ns: 0,
        })
        .collect();
    let out = limiter.engine.admit(store, &checks, now);
    let reservations = checks
        .iter()
        .zip(&out.verdicts)
        .filter(|(_, v)| v.charged)
        .filter_map(|(c, v)| {
            let unit = limiter.rule_unit(c.rule)?;
            Some(Reservation { check: *c, place: v.place, reserved: c.cost, unit, price: None })
        })
        .collect();
    (out.verdicts.iter().map(|v| v.decision).collect(), reservations, out.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_three_failures_and_probes_after_the_cooldown() {
        let mut b = Breaker::default();
        for _ in 0..3 {
            assert!(b.allows(0));
            b.failure(0);
        }
        assert!(!b.allows(1));
        assert!(b.allows(BREAKER_COOLDOWN_NS), "one probe");
        assert!(!b.allows(BREAKER_COOLDOWN_NS), "only one");
        b.failure(BREAKER_COOLDOWN_NS);
        assert!(!b.allows(BREAKER_COOLDOWN_NS + 1));
        assert!(b.allows(2 * BREAKER_COOLDOWN_NS));
        b.success();
        assert!(b.allows(2 * BREAKER_COOLDOWN_NS));
        assert!(b.allows(2 * BREAKER_COOLDOWN_NS), "closed again: every call goes");
    }

    #[test]
    fn local_share_divides_by_the_fleet() {
        let q = Quota { limit: 100, window_ns: 1, burst: 10 };
        assert_eq!(local_share(&q, 3), Quota { limit: 34, window_ns: 1, burst: 4 });
        assert_eq!(local_share(&q, 0), q);
    }
}
