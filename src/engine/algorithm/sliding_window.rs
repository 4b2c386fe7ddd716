//! Sliding window, two-counter approximation of a sliding log.
//!
//! Windows are aligned to the UNIX epoch as in the fixed window. At elapsed `e` ns into the
//! current window (length `W`), the usage over the last `W` ns is estimated as
//! `prev * (W - e) / W + cur`, and a cost `c` is admitted when
//! `prev * (W - e) + (cur + c) * W <= limit * W` (exact integer comparison, no rounding).
//!
//! State layout (`State([index, cur, prev])`): the current window index, the units counted
//! in it, and the units counted in window `index - 1`. One window later `cur` becomes
//! `prev`; two or more later both are 0 (equivalent to fresh). A `now` in an earlier window
//! than the stored one is treated as the first ns of the stored window.
//!
//! Worst case against an exact sliding log (derived in `docs/algorithms.md`): any interval of
//! `W` ns contains at most `limit + floor(limit * (W - 2) / W)` admitted units (`limit` when
//! `W <= 2`), i.e. `2*limit - ceil(2*limit / W)`, where an exact log admits `limit`.

// Overflow, division by zero and out-of-bounds indexing are ruled out statically here.
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use super::token_bucket::arith::{ceil_div, mul, permille, sat_u64};
use super::{Decision, Nanos, Quota, State};

/// The counter at `now`, rolled to the current window.
struct Current {
    index: u64,
    cur: u64,
    prev: u64,
    /// `W - e`: ns left in the current window, in 1..=W.
    left: u64,
    /// Effective now minus `now` (> 0 only when `now` is before the stored window).
    lag: u64,
}

impl Current {
    fn load(state: State, now: Nanos, q: &Quota) -> Current {
        let State([index, cur, prev]) = state;
        let w = q.window_ns.max(1);
        let now_index = now.checked_div(w).unwrap_or(now);
        if now_index >= index {
            let left = w.saturating_sub(now.checked_rem(w).unwrap_or(0));
            let (cur, prev) = match now_index.saturating_sub(index) {
                0 => (cur, prev),
                1 => (0, cur),
                _ => (0, 0),
            };
            Current { index: now_index, cur, prev, left, lag: 0 }
        } else {
            let start = mul(index, w);
            let lag = sat_u64(start.saturating_sub(u128::from(now)));
            Current { index, cur, prev, left: w, lag }
        }
    }

    fn store(&self) -> State {
        State([self.index, self.cur, self.prev])
    }

    /// `prev * (W - e)`: the previous window's weight, scaled by W.
    fn weighted_prev(&self) -> u128 {
        mul(self.prev, self.left)
    }

    /// Scaled room left for the current window once `cur + extra` is counted, or `None`
    /// when over the limit.
    fn room(&self, extra: u64, q: &Quota) -> Option<u128> {
        let free = u128::from(q.limit).checked_sub(u128::from(self.cur).saturating_add(u128::from(extra)))?;
        mul_w(free, q).checked_sub(self.weighted_prev())
    }

    /// Whole units still admissible now.
    fn available(&self, q: &Quota) -> u64 {
        let w = u128::from(q.window_ns.max(1));
        self.room(0, q).map_or(0, |r| sat_u64(r.checked_div(w).unwrap_or(0)))
    }

    /// Time from the effective now until `cost` (1..=limit, currently denied) is admitted
    /// if nothing else arrives. The estimate never increases with time (it is continuous at
    /// a rollover), so the first admitting instant is exact.
    fn wait_for(&self, cost: u64, q: &Quota) -> u128 {
        let w = u128::from(q.window_ns.max(1));
        let left = u128::from(self.left);
        // In the current window: prev * (left - t) <= (limit - cur - cost) * W.
        if self.prev > 0 {
            if let Some(free) = u128::from(q.limit).checked_sub(u128::from(self.cur).saturating_add(u128::from(cost))) {
                let excess = self.weighted_prev().saturating_sub(mul_w(free, q));
                if let Some(t) = ceil_div(excess, u128::from(self.prev)) {
                    if t < left {
                        return t;
                    }
                }
            }
        }
        // In the next window, at elapsed e': cur * (W - e') <= (limit - cost) * W.
        let allowed = mul_w(u128::from(q.limit.saturating_sub(cost)), q);
        let excess = mul_w(u128::from(self.cur), q).saturating_sub(allowed);
        let e = ceil_div(excess, u128::from(self.cur)).unwrap_or(0);
        if e < w {
            left.saturating_add(e)
        } else {
            // Two windows on, both counters are 0 and cost <= limit fits.
            left.saturating_add(w)
        }
    }
}

/// `x * W` (saturating; exact for `x <= 2^64`).
fn mul_w(x: u128, q: &Quota) -> u128 {
    x.saturating_mul(u128::from(q.window_ns.max(1)))
}

pub fn check(state: State, now: Nanos, cost: u64, q: &Quota) -> (Decision, State) {
    let mut c = Current::load(state, now, q);
    let reset = c.left.saturating_add(c.lag);
    let decision = |allowed: bool, remaining: u64, retry_after_ns: u64| Decision {
        allowed,
        remaining,
        reset_after_ns: reset,
        retry_after_ns,
    };
    if cost == 0 {
        return (decision(true, c.available(q), 0), c.store());
    }
    if cost > q.limit {
        return (decision(false, c.available(q), u64::MAX), c.store());
    }
    if c.room(cost, q).is_some() {
        c.cur = c.cur.saturating_add(cost);
        (decision(true, c.available(q), 0), c.store())
    } else {
        let retry = sat_u64(c.wait_for(cost, q)).saturating_add(c.lag);
        (decision(false, c.available(q), retry), c.store())
    }
}

/// Charges go to the current window (may exceed the limit); refunds come off the current
/// window first, then the previous one (never below zero).
pub fn adjust(state: State, now: Nanos, delta: i64, q: &Quota) -> State {
    let mut c = Current::load(state, now, q);
    let amount = delta.unsigned_abs();
    if delta >= 0 {
        c.cur = c.cur.saturating_add(amount);
    } else {
        let from_cur = amount.min(c.cur);
        c.cur = c.cur.saturating_sub(from_cur);
        c.prev = c.prev.saturating_sub(amount.saturating_sub(from_cur));
    }
    c.store()
}

/// `ceil(1000 * estimate / limit)`; 0 exactly when both counters are 0.
pub fn pressure(state: State, now: Nanos, q: &Quota) -> u32 {
    let c = Current::load(state, now, q);
    let used = c.weighted_prev().saturating_add(mul_w(u128::from(c.cur), q));
    permille(used, mul_w(u128::from(q.limit), q))
}
