//! Fixed window: at most `limit` units per window, windows aligned to the UNIX epoch
//! (window index = `now / window_ns`; a 1-day window resets at 00:00 UTC).
//!
//! State layout (`State([index, count, 0])`): the window index and the units counted in
//! it. A state from a past window is equivalent to fresh. A `now` in an earlier window than
//! the stored one (clock stepping back across a boundary) is counted in the stored window.
//! `count > limit` is debt from a forced charge (it ends with the window). The third word
//! is unused (ignored when read, written as 0).

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::token_bucket::arith::{mul, permille, sat_u64};
use super::{Decision, Nanos, Quota, State};

pub fn check(state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
    let (index, count) = roll(state, now, q);
    let reset = until_end(index, now, q);
    let available = q.limit.saturating_sub(count);
    let decision = |allowed: bool, remaining: u64, retry_after_ns: u64| Decision {
        allowed,
        remaining,
        reset_after_ns: reset,
        retry_after_ns,
    };
    if cost == 0 {
        (decision(true, available, 0), store(index, count))
    } else if cost > q.limit {
        (decision(false, available, u64::MAX), store(index, count))
    } else if cost <= available {
        let count = count.saturating_add(cost);
        (decision(true, available.saturating_sub(cost), 0), store(index, count))
    } else {
        // The next window starts empty and cost <= limit: admitted at the window end.
        (decision(false, available, reset), store(index, count))
    }
}

pub fn adjust(state: State, now: Nanos, delta: i64, q: &Quota) -> State {
    let (index, count) = roll(state, now, q);
    let amount = delta.unsigned_abs();
    let count = if delta >= 0 { count.saturating_add(amount) } else { count.saturating_sub(amount) };
    store(index, count)
}

pub fn pressure(state: State, now: Nanos, q: &Quota) -> u32 {
    let (_, count) = roll(state, now, q);
    permille(u128::from(count), u128::from(q.limit))
}

/// The current window index and its count: the stored window unless `now` is in a later
/// one (then empty).
fn roll(state: State, now: Nanos, q: &Quota) -> (u64, u64) {
    let State([index, count, _]) = state;
    let now_index = now.checked_div(q.window_ns).unwrap_or(now);
    if now_index > index {
        (now_index, 0)
    } else {
        (index, count)
    }
}

/// Time from `now` to the end of window `index` (>= 1 since `index >= now / window`).
fn until_end(index: u64, now: Nanos, q: &Quota) -> u64 {
    let end = mul(index, q.window_ns.max(1)).saturating_add(u128::from(q.window_ns.max(1)));
    sat_u64(end.saturating_sub(u128::from(now)))
}

fn store(index: u64, count: u64) -> State {
    State([index, count, 0])
}
