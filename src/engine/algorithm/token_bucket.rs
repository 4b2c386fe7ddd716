//! Token bucket: capacity `burst`, refilled continuously at `limit` tokens per `window_ns`.
//!
//! State layout (`State([lo, hi, last])`):
//! - `lo`, `hi`: the bucket's *deficit* (tokens missing from a full bucket) as a `u128`
//!   (`hi << 64 | lo`), scaled by `window_ns`: one token is `window_ns` units, and the
//!   refill is exactly `limit` units per nanosecond, so refill is exact with no drift.
//!   A deficit above `burst * window_ns` is debt (a negative token count) from a forced
//!   charge.
//! - `last`: the latest `now` seen (ns). A `now` earlier than `last` counts as no elapsed
//!   time.
//!
//! All zero is a full bucket. The decision itself lives in [`fluid`], shared with the
//! leaky bucket and GCRA, which are the same limiter with a different state encoding.

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::{Decision, Nanos, Quota, State};

pub fn check(state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
    let (deficit, eff) = load(state, now, q);
    let (decision, deficit) = fluid::decide(deficit, cost, q, eff.saturating_sub(now));
    (decision, store(deficit, eff))
}

pub fn adjust(state: State, now: Nanos, delta: i64, q: &Quota) -> State {
    let (deficit, eff) = load(state, now, q);
    store(fluid::adjust(deficit, delta, q), eff)
}

pub fn pressure(state: State, now: Nanos, q: &Quota) -> u32 {
    let (deficit, _) = load(state, now, q);
    fluid::pressure(deficit, q)
}

/// The deficit refilled up to the effective time `max(now, last)`, and that time.
fn load(state: State, now: Nanos, q: &Quota) -> (u128, Nanos) {
    let State([lo, hi, last]) = state;
    let stored = (u128::from(hi) << 64) | u128::from(lo);
    let eff = now.max(last);
    let refill = u128::from(q.limit).saturating_mul(u128::from(eff.saturating_sub(last)));
    (stored.saturating_sub(refill), eff)
}

fn store(deficit: u128, eff: Nanos) -> State {
    State([deficit as u64, (deficit >> 64) as u64, eff])
}

/// Integer helpers shared by all five algorithms (exact, saturating, never panicking).
pub(super) mod arith {
    /// `a * b` widened; exact (two `u64` never overflow a `u128`).
    pub(in crate::engine::algorithm) fn mul(a: u64, b: u64) -> u128 {
        u128::from(a).saturating_mul(u128::from(b))
    }

    /// `ceil(a / b)`, `None` when `b == 0` ("never").
    pub(in crate::engine::algorithm) fn ceil_div(a: u128, b: u128) -> Option<u128> {
        let q = a.checked_div(b)?;
        let r = a.checked_rem(b)?;
        // q + 1 cannot overflow: r != 0 implies b >= 2, so q <= u128::MAX / 2.
        Some(if r == 0 { q } else { q.saturating_add(1) })
    }

    /// Clamp to `u64`.
    pub(in crate::engine::algorithm) fn sat_u64(x: u128) -> u64 {
        u64::try_from(x).unwrap_or(u64::MAX)
    }

    /// `ceil(1000 * used / cap)` clamped to `0..=1000`; 0 exactly when `used == 0`.
    pub(in crate::engine::algorithm) fn permille(used: u128, cap: u128) -> u32 {
        if used == 0 {
            return 0;
        }
        if used >= cap {
            return 1000;
        }
        // 0 < used < cap. Exact when 1000 * used fits; otherwise both operands are
        // > 2^118 and dropping their low 10 bits costs well under one permille.
        let (u, c) = match used.checked_mul(1000) {
            Some(u) => (u, cap),
            None => ((used >> 10).saturating_mul(1000), cap >> 10),
        };
        let p = ceil_div(u, c).unwrap_or(1000).clamp(1, 1000);
        u32::try_from(p).unwrap_or(1000)
    }
}

/// The continuous ("fluid") bucket shared by the token bucket, leaky bucket and GCRA.
///
/// A bucket is described by its *deficit* `d`: how much is missing from a full bucket, in
/// units of `1 / window_ns` of a unit (so capacity is `burst * window_ns` and the refill is
/// `limit` per ns). `d == 0` is full; `d > burst * window_ns` is debt.
pub(super) mod fluid {
    use super::arith::{ceil_div, mul, permille, sat_u64};
    use crate::engine::algorithm::{Decision, Quota};

    fn window(q: &Quota) -> u64 {
        q.window_ns.max(1)
    }

    fn capacity(q: &Quota) -> u128 {
        mul(q.burst, window(q))
    }

    /// Whole units available with deficit `d`.
    fn available(d: u128, q: &Quota) -> u64 {
        let w = u128::from(window(q));
        sat_u64(capacity(q).saturating_sub(d).checked_div(w).unwrap_or(0))
    }

    /// Time (from the effective now) for the deficit to shrink by `amount`; `None` = never.
    fn drain_time(amount: u128, q: &Quota) -> Option<u128> {
        if amount == 0 {
            return Some(0);
        }
        ceil_div(amount, u128::from(q.limit))
    }

    /// A wait measured from the effective now, as seen from the caller's `now`, which is
    /// `lag` ns earlier. `None` (never) is `u64::MAX`.
    fn from_caller(lag: u64, wait: Option<u128>) -> u64 {
        match wait {
            None => u64::MAX,
            Some(0) => 0,
            Some(t) => sat_u64(t).saturating_add(lag),
        }
    }

    /// Decide on `cost` with deficit `d` at the effective now; `lag` = effective now minus
    /// the caller's now. Returns the decision and the new deficit.
    pub(in crate::engine::algorithm) fn decide(d: u128, cost: u64, q: &Quota, lag: u64) -> (Decision, u128) {
        let need = mul(cost, window(q));
        // The largest deficit that still admits `cost`; None when cost > burst.
        let room = capacity(q).checked_sub(need);
        let (allowed, d, retry) = match room {
            _ if cost == 0 => (true, d, 0),
            None => (false, d, u64::MAX),
            Some(room) if d <= room => (true, d.saturating_add(need), 0),
            Some(room) => (false, d, from_caller(lag, drain_time(d.saturating_sub(room), q))),
        };
        let decision = Decision {
            allowed,
            remaining: available(d, q),
            reset_after_ns: from_caller(lag, drain_time(d, q)),
            retry_after_ns: retry,
        };
        (decision, d)
    }

    /// Forced charge (`delta > 0`, may go into debt) or refund (`delta < 0`, never above
    /// full).
    pub(in crate::engine::algorithm) fn adjust(d: u128, delta: i64, q: &Quota) -> u128 {
        let amount = mul(delta.unsigned_abs(), window(q));
        if delta >= 0 {
            d.saturating_add(amount)
        } else {
            d.saturating_sub(amount)
        }
    }

    pub(in crate::engine::algorithm) fn pressure(d: u128, q: &Quota) -> u32 {
        permille(d, capacity(q))
    }
}
