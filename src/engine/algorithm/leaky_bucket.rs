//! Leaky bucket as a meter: a queue of size `burst` draining continuously at `limit` units
//! per `window_ns`. A request of cost `c` is admitted when `level + c <= burst`; its
//! `retry_after_ns` is the exact time until it would fit, so a throttled request can be
//! held (shaped) for exactly that long instead of being rejected.
//!
//! State layout (`State([units, frac, last])`): the queue level is
//! `units + frac / window_ns` (mixed radix, `frac < window_ns` when written by this code,
//! any value tolerated when read), i.e. exactly `units * window_ns + frac` in units of
//! `1 / window_ns`, which drains by exactly `limit` per ns. `last` is the latest `now`
//! seen; an earlier `now` counts as no elapsed time. A level above `burst` is debt from a
//! forced charge. All zero is an empty queue.
//!
//! With `level = burst - tokens` this is the token bucket's dual: decisions are identical
//! (shared [`fluid`] core), only the stored quantity differs.

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::token_bucket::arith::{mul, sat_u64};
use super::token_bucket::fluid;
use super::{Decision, Nanos, Quota, State};

pub fn check(state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
    let (level, eff) = load(state, now, q);
    let (decision, level) = fluid::decide(level, cost, q, eff.saturating_sub(now));
    (decision, store(level, eff, q))
}

pub fn adjust(state: State, now: Nanos, delta: i64, q: &Quota) -> State {
    let (level, eff) = load(state, now, q);
    store(fluid::adjust(level, delta, q), eff, q)
}

pub fn pressure(state: State, now: Nanos, q: &Quota) -> u32 {
    let (level, _) = load(state, now, q);
    fluid::pressure(level, q)
}

/// The scaled level drained up to the effective time `max(now, last)`, and that time.
fn load(state: State, now: Nanos, q: &Quota) -> (u128, Nanos) {
    let State([units, frac, last]) = state;
    // units * w + frac <= (2^64 - 1) * 2^64: no overflow.
    let level = mul(units, q.window_ns.max(1)).saturating_add(u128::from(frac));
    let eff = now.max(last);
    let drained = mul(q.limit, eff.saturating_sub(last));
    (level.saturating_sub(drained), eff)
}

fn store(level: u128, eff: Nanos, q: &Quota) -> State {
    let w = u128::from(q.window_ns.max(1));
    let units = level.checked_div(w).unwrap_or(0);
    let frac = level.checked_rem(w).unwrap_or(0);
    match u64::try_from(units) {
        Ok(units) => State([units, sat_u64(frac), eff]),
        // Beyond 2^64 units of debt: saturate to the largest representable level.
        Err(_) => State([u64::MAX, sat_u64(w.saturating_sub(1)), eff]),
    }
}
