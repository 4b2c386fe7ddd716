//! GCRA (generic cell rate algorithm, the "virtual scheduling" form).
//!
//! Emission interval `T = window_ns / limit` ns per unit, kept as an exact rational: all
//! times are handled in units of `1 / limit` ns, in which `T` is exactly `window_ns`, so
//! `limit` units per window are admitted in steady state with no drift. A cost `c` at `now`
//! is admitted when `max(TAT, now) + c*T - now <= burst*T` (tolerance `(burst - 1) * T` in
//! the classic unit-cost form), and then `TAT = max(TAT, now) + c*T`. A fresh key can thus
//! send `burst` units at once.
//!
//! State layout (`State([tat_ns, tat_frac, seen])`): the theoretical arrival time is
//! `tat_ns + tat_frac / limit` ns (`tat_frac < limit` when written by this code, any value
//! tolerated when read); `seen` is the latest `now` seen, so an earlier `now` counts as no
//! elapsed time (as for the other algorithms) instead of retroactively shrinking the
//! allowance. All zero is fresh (TAT in the past).
//!
//! `TAT - now` (scaled) is exactly the token bucket's deficit, so decisions are identical
//! (shared [`fluid`] core). `TAT` saturates at `u64::MAX` ns (year 2554), which only matters
//! for absurd quotas (`burst * T` of centuries). `limit == 0` (invalid config) means no
//! refill: the scale falls back to 1 and the stored time is then just the deficit.

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::token_bucket::arith::{mul, sat_u64};
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

/// Denominator of the stored fraction of a nanosecond.
fn scale(q: &Quota) -> u64 {
    q.limit.max(1)
}

/// `TAT - max(now, seen)` in units of `1 / limit` ns (0 when TAT is past), and that time.
fn load(state: State, now: Nanos, q: &Quota) -> (u128, Nanos) {
    let State([tat_ns, tat_frac, seen]) = state;
    // tat_ns * scale + tat_frac <= (2^64 - 1) * 2^64: no overflow.
    let tat = mul(tat_ns, scale(q)).saturating_add(u128::from(tat_frac));
    let eff = now.max(seen);
    (tat.saturating_sub(mul(eff, q.limit)), eff)
}

fn store(deficit: u128, eff: Nanos, q: &Quota) -> State {
    let s = u128::from(scale(q));
    let tat = mul(eff, q.limit).saturating_add(deficit);
    let tat_ns = tat.checked_div(s).unwrap_or(0);
    let tat_frac = tat.checked_rem(s).unwrap_or(0);
    match u64::try_from(tat_ns) {
        Ok(tat_ns) => State([tat_ns, sat_u64(tat_frac), eff]),
        Err(_) => State([u64::MAX, sat_u64(s.saturating_sub(1)), eff]),
    }
}
