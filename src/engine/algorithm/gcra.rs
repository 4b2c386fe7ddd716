//! GCRA (generic cell rate algorithm, the "virtual scheduling" form).
//!
//! Emission interval `T = window_ns / limit` ns per unit, kept as an exact rational: all
//! times are handled in units of `1 / limit` ns, in which `T` is exactly `window_ns`, so
//! `limit` units per window are admitted in steady state with no drift. A cost `c` at `now`
//! is admitted when `max(TAT, now) + c*T - now <= burst*T` (tolerance `(burst - 1) * T` in
//! the classic unit-cost form), and then `TAT = max(TAT, now) + c*T`. A fresh key can thus
//! send `burst` units at once.
//!
//! State layout (`State([tat_lo, tat_hi, seen])`): the theoretical arrival time TAT as a
//! `u128` (`tat_hi << 64 | tat_lo`) in units of `1 / limit` ns, i.e. a fixed-point
//! timestamp whose fraction is exact; `seen` is the latest `now` seen, so an earlier `now`
//! counts as no elapsed time (as for the other algorithms) instead of retroactively
//! shrinking the allowance. All zero is fresh (TAT in the past).
//!
//! `TAT - now` (scaled) is exactly the token bucket's deficit, so decisions are identical
//! (shared [`fluid`] core). `limit == 0` (invalid config) means no refill: the stored value
//! is then just the deficit.

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::token_bucket::arith::mul;
use super::token_bucket::fluid;
use super::{Decision, Nanos, Quota, State};

pub fn check(state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
    let (deficit, eff) = load(state, now, q);
    let (decision, deficit) = fluid::decide(deficit, cost, q, eff.saturating_sub(now));
    (decision, store(deficit, eff, q))
}

pub fn adjust(state: State, now: Nanos, delta: i64, q: &Quota) -> State {
    let (deficit, eff) = load(state, now, q);
    store(fluid::adjust(deficit, delta, q), eff, q)
}

pub fn pressure(state: State, now: Nanos, q: &Quota) -> u32 {
    let (deficit, _) = load(state, now, q);
    fluid::pressure(deficit, q)
}

/// `TAT - max(now, seen)` in units of `1 / limit` ns (0 when TAT is past), and that time.
fn load(state: State, now: Nanos, q: &Quota) -> (u128, Nanos) {
    let State([tat_lo, tat_hi, seen]) = state;
    let tat = (u128::from(tat_hi) << 64) | u128::from(tat_lo);
    let eff = now.max(seen);
    (tat.saturating_sub(mul(eff, q.limit)), eff)
}

fn store(deficit: u128, eff: Nanos, q: &Quota) -> State {
    let tat = mul(eff, q.limit).saturating_add(deficit);
    State([tat as u64, (tat >> 64) as u64, eff])
}
