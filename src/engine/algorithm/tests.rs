//! Tests of the five algorithms: edge-time unit tests, then property tests against simple
//! reference models (signed rationals in `i128`, hash maps of per-window counts, an exact
//! sliding log).

use super::Algorithm::{FixedWindow, Gcra, LeakyBucket, SlidingWindow, TokenBucket};
use super::{Algorithm, Decision, Nanos, Quota, State, NANOS_PER_SEC};
use proptest::prelude::*;
use std::collections::HashMap;

const SEC: u64 = NANOS_PER_SEC;
const DAY: u64 = 86_400 * SEC;
const YEAR: u64 = 365 * DAY;
/// 2024-05-01T13:00:00Z: a whole second, so a multiple of every window up to 1 s.
const T0: Nanos = 1_714_568_400 * SEC;
const MICRO_USD: u64 = 1_000_000_000_000; // $1M in micro-dollars

const BUCKETS: [Algorithm; 3] = [TokenBucket, LeakyBucket, Gcra];

fn quota(limit: u64, window_ns: u64, burst: u64) -> Quota {
    Quota { limit, window_ns, burst }
}

/// One counter under test.
#[derive(Clone, Copy, Debug)]
struct Counter {
    alg: Algorithm,
    q: Quota,
    state: State,
}

impl Counter {
    fn new(alg: Algorithm, q: Quota) -> Counter {
        Counter { alg, q, state: State::default() }
    }
    fn check(&mut self, now: Nanos, cost: u64) -> Decision {
        let (d, s) = self.alg.check(self.state, now, cost, &self.q);
        self.state = s;
        d
    }
    /// A check whose state change is discarded.
    fn probe(&self, now: Nanos, cost: u64) -> Decision {
        self.alg.check(self.state, now, cost, &self.q).0
    }
    fn adjust(&mut self, now: Nanos, delta: i64) {
        self.state = self.alg.adjust(self.state, now, delta, &self.q);
    }
    fn pressure(&self, now: Nanos) -> u32 {
        self.alg.pressure(self.state, now, &self.q)
    }
    fn capacity(&self) -> u64 {
        self.alg.capacity(&self.q)
    }
    /// Admit unit costs at `now` until the first denial; returns how many passed.
    fn drain(&mut self, now: Nanos) -> u64 {
        let mut n = 0;
        while self.check(now, 1).allowed {
            n += 1;
            assert!(n <= 1_000_000, "{:?} never denies", self.alg);
        }
        n
    }
    /// Waiting exactly `retry_after_ns` admits `cost`; waiting 1 ns less does not.
    fn assert_retry_exact(&self, now: Nanos, cost: u64) -> u64 {
        let d = self.probe(now, cost);
        assert!(!d.allowed, "{:?}: expected a denial", self.alg);
        let r = d.retry_after_ns;
        assert!(r > 0 && r < u64::MAX, "{:?}: retry {r}", self.alg);
        assert!(self.probe(now + r, cost).allowed, "{:?}: not admitted after retry {r}", self.alg);
        assert!(!self.probe(now + r - 1, cost).allowed, "{:?}: admitted before retry {r}", self.alg);
        r
    }
}

// ---------------------------------------------------------------------------------------
// All algorithms
// ---------------------------------------------------------------------------------------

#[test]
fn names_roundtrip() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
    }
    assert_eq!(Algorithm::from_name("leaky"), None);
}

#[test]
fn fresh_key_admits_exactly_capacity_at_one_instant() {
    for alg in Algorithm::ALL {
        let mut c = Counter::new(alg, quota(7, SEC, 5));
        let cap = c.capacity();
        let now = T0 + 123;
        assert_eq!(c.pressure(now), 0);
        for i in 0..cap {
            let d = c.check(now, 1);
            assert!(d.allowed, "{alg:?} #{i}");
            assert_eq!(d.remaining, cap - 1 - i, "{alg:?} #{i}");
            assert_eq!(d.retry_after_ns, 0);
        }
        let d = c.check(now, 1);
        assert!(!d.allowed, "{alg:?}");
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after_ns > 0 && d.retry_after_ns < u64::MAX);
        assert_eq!(c.pressure(now), 1000, "{alg:?}");
    }
}

#[test]
fn cost_zero_is_a_peek_even_in_debt() {
    for alg in Algorithm::ALL {
        let mut c = Counter::new(alg, quota(10, SEC, 10));
        let d = c.check(T0, 0);
        assert_eq!(
            d,
            Decision {
                allowed: true,
                remaining: 10,
                reset_after_ns: if BUCKETS.contains(&alg) { 0 } else { SEC },
                retry_after_ns: 0
            },
            "{alg:?}"
        );
        assert_eq!(c.check(T0, 4).remaining, 6);
        let before = c;
        let d = c.check(T0, 0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 6);
        assert_eq!(c.probe(T0, 6), before.probe(T0, 6));
        assert_eq!(c.probe(T0, 7), before.probe(T0, 7));
        c.adjust(T0, 100); // deep debt
        let d = c.check(T0, 0);
        assert!(d.allowed && d.remaining == 0 && d.retry_after_ns == 0, "{alg:?}: {d:?}");
    }
}

#[test]
fn cost_above_capacity_is_never_admitted() {
    for alg in Algorithm::ALL {
        let c = Counter::new(alg, quota(10, SEC, 10));
        for cost in [11, MICRO_USD, u64::MAX] {
            let d = c.probe(T0, cost);
            assert!(!d.allowed);
            assert_eq!(d.retry_after_ns, u64::MAX, "{alg:?}");
            assert_eq!(d.remaining, 10);
        }
        assert!(c.probe(T0, 10).allowed, "{alg:?}");
    }
}

#[test]
fn long_idle_forgets_everything() {
    for alg in Algorithm::ALL {
        let mut c = Counter::new(alg, quota(10, SEC, 10));
        c.drain(T0);
        c.adjust(T0, 50);
        assert_eq!(c.pressure(T0), 1000);
        for idle in [30 * YEAR, u64::MAX - T0] {
            let later = T0 + idle;
            assert_eq!(c.pressure(later), 0, "{alg:?}");
            let d = c.probe(later, 10);
            assert!(d.allowed, "{alg:?}");
            assert_eq!(d.remaining, 0);
        }
    }
}

#[test]
fn extreme_times_do_not_panic_and_behave() {
    for alg in Algorithm::ALL {
        for now in [0, 1, u64::MAX - 1, u64::MAX] {
            let mut c = Counter::new(alg, quota(3, SEC, 3));
            assert_eq!(c.drain(now), 3, "{alg:?} at {now}");
            let d = c.probe(now, 1);
            assert!(d.retry_after_ns > 0, "{alg:?}");
            c.adjust(now, i64::MAX);
            c.adjust(now, i64::MIN);
            c.adjust(now, -1);
            assert!(c.pressure(now) <= 1000);
        }
    }
}

/// Every combination of extreme values: nothing panics (overflow checks are on in tests),
/// and the basic contract holds.
#[test]
fn extreme_value_grid_never_panics() {
    let words = [0, 1, 1 << 63, u64::MAX];
    let times = [0, 1, T0, u64::MAX - 1, u64::MAX];
    let costs = [0, 1, 3, u64::MAX];
    let fields = [0, 1, 3, u64::MAX];
    let deltas = [0, 1, -1, i64::MAX, i64::MIN];
    for alg in Algorithm::ALL {
        for &a in &words {
            for &b in &words {
                for &w2 in &words {
                    let state = State([a, b, w2]);
                    for &limit in &fields {
                        for &window_ns in &fields {
                            for &burst in &fields {
                                let q = quota(limit, window_ns, burst);
                                for &now in &times {
                                    let p = alg.pressure(state, now, &q);
                                    assert!(p <= 1000);
                                    for &cost in &costs {
                                        let (d, s) = alg.check(state, now, cost, &q);
                                        assert_contract(alg, &q, cost, &d);
                                        let _ = alg.pressure(s, now, &q);
                                    }
                                    for &delta in &deltas {
                                        let s = alg.adjust(state, now, delta, &q);
                                        let _ = alg.check(s, now, 1, &q);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn assert_contract(alg: Algorithm, q: &Quota, cost: u64, d: &Decision) {
    let cap = alg.capacity(q);
    if cost == 0 {
        assert!(d.allowed);
    }
    if cost > cap {
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, u64::MAX);
    }
    if d.allowed {
        assert_eq!(d.retry_after_ns, 0);
    } else {
        assert!(d.retry_after_ns > 0);
    }
    assert!(d.remaining <= cap);
}

#[test]
fn degenerate_quotas() {
    for alg in Algorithm::ALL {
        // Zero capacity: nothing but peeks.
        let c = Counter::new(alg, quota(0, SEC, 0));
        assert!(c.probe(T0, 0).allowed);
        assert_eq!(c.probe(T0, 1).retry_after_ns, u64::MAX, "{alg:?}");
        // Zero window: treated as 1 ns.
        let mut c = Counter::new(alg, quota(2, 0, 2));
        assert_eq!(c.drain(T0), 2, "{alg:?}");
        assert!(c.probe(T0 + 2, 1).allowed, "{alg:?}");
    }
    for alg in BUCKETS {
        // No refill: the burst once, then never.
        let mut c = Counter::new(alg, quota(0, SEC, 2));
        assert_eq!(c.drain(T0), 2);
        assert_eq!(c.probe(T0 + 100 * YEAR, 1).retry_after_ns, u64::MAX, "{alg:?}");
        assert_eq!(c.probe(T0, 0).reset_after_ns, u64::MAX);
    }
}

// ---------------------------------------------------------------------------------------
// Bucket algorithms (token bucket, leaky bucket, GCRA)
// ---------------------------------------------------------------------------------------

#[test]
fn buckets_retry_after_is_exact() {
    // T = 10/3 ns per unit.
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(3, 10, 4));
        assert_eq!(c.drain(T0), 4);
        assert_eq!(c.assert_retry_exact(T0, 1), 4); // ceil(10/3)
        assert_eq!(c.assert_retry_exact(T0, 2), 7); // ceil(20/3)
        assert_eq!(c.assert_retry_exact(T0, 4), 14); // ceil(40/3)
        assert_eq!(c.assert_retry_exact(T0 + 2, 1), 2); // 6 of 10 refilled at T0+2
                                                        // Holding the request exactly that long (shaping) admits it.
        let d = c.check(T0 + 1, 3);
        assert!(!d.allowed);
        assert!(c.check(T0 + 1 + d.retry_after_ns, 3).allowed);
    }
}

#[test]
fn buckets_reset_after_is_time_to_full() {
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(3, 10, 4));
        c.drain(T0);
        let d = c.probe(T0, 0);
        assert_eq!(d.reset_after_ns, 14, "{alg:?}");
        assert!(c.pressure(T0 + 13) > 0);
        assert_eq!(c.pressure(T0 + 14), 0, "{alg:?}");
        assert_eq!(c.probe(T0 + 14, 0).remaining, 4);
        assert_eq!(c.probe(T0 + 14, 0).reset_after_ns, 0);
        // Partial: one unit used, 10/3 ns to refill it.
        let mut c = Counter::new(alg, quota(3, 10, 4));
        assert_eq!(c.check(T0, 1).reset_after_ns, 4);
        assert_eq!(c.pressure(T0), 250);
        assert_eq!(c.pressure(T0 + 3), 25); // 1 of 40 units missing -> ceil(25)
    }
}

#[test]
fn buckets_steady_state_rate_has_no_drift() {
    // A client hammering every ns gets exactly burst + limit per window elapsed, even
    // though the emission interval (10/3 ns) is not an integer.
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(3, 10, 2));
        let windows = 1000;
        let admitted = (0..=windows * 10).filter(|t| c.check(T0 + t, 1).allowed).count() as u64;
        assert_eq!(admitted, 2 + 3 * windows, "{alg:?}");
    }
    // Spaced at the emission interval (1 s / 7, not an integer, rounded up to whole ns):
    // never denied, given a burst of 2 to absorb the sub-ns rounding jitter.
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(7, SEC, 2));
        for k in 0..7 * 50u64 {
            let t = T0 + (k * SEC).div_ceil(7);
            assert!(c.check(t, 1).allowed, "{alg:?} #{k}");
        }
    }
}

#[test]
fn buckets_long_idle_refills_to_capacity_only() {
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(5, SEC, 3));
        c.drain(T0);
        let later = T0 + 20 * YEAR;
        assert_eq!(c.probe(later, 0).remaining, 3);
        assert_eq!(c.drain(later), 3, "{alg:?}");
    }
}

#[test]
fn buckets_time_going_backwards_counts_as_no_elapsed_time() {
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(1, 100, 1));
        assert!(c.check(T0, 1).allowed);
        // 5 ns in the past: still empty, and the wait is counted from T0.
        let d = c.check(T0 - 5, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 105, "{alg:?}");
        assert_eq!(d.reset_after_ns, 105);
        assert_eq!(c.assert_retry_exact(T0 - 5, 1), 105);
        // The backwards call did not move the clock back.
        assert!(!c.probe(T0 + 99, 1).allowed, "{alg:?}");
        assert!(c.probe(T0 + 100, 1).allowed);
        // Past refill is not lost either.
        assert!(c.check(T0 + 200, 1).allowed);
        assert!(c.check(T0 + 150, 0).remaining == 0);
    }
}

#[test]
fn buckets_micro_dollars_per_day() {
    // $1M/day budget in micro-dollars, all of it as burst.
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(MICRO_USD, DAY, MICRO_USD));
        assert!(c.check(T0, MICRO_USD).allowed);
        assert_eq!(c.probe(T0, 0).reset_after_ns, DAY);
        assert_eq!(c.assert_retry_exact(T0, 1), 87); // 86.4 ns per micro-dollar
        assert_eq!(c.assert_retry_exact(T0, MICRO_USD / 2), DAY / 2);
        assert_eq!(c.probe(T0, MICRO_USD + 1).retry_after_ns, u64::MAX);
        assert_eq!(c.probe(T0 + DAY / 4, 0).remaining, MICRO_USD / 4);
        assert_eq!(c.pressure(T0 + DAY / 4), 750);
    }
}

#[test]
fn buckets_debt_and_refund() {
    for alg in BUCKETS {
        let mut c = Counter::new(alg, quota(1, 100, 10));
        c.adjust(T0, 25); // 15 units of debt
        let d = c.probe(T0, 1);
        assert_eq!(d.remaining, 0);
        // Deficit 25 units, must get down to 9: 16 units at 1 per 100 ns.
        assert_eq!(d.retry_after_ns, 1600, "{alg:?}");
        assert_eq!(d.reset_after_ns, 2500);
        assert_eq!(c.pressure(T0), 1000);
        c.adjust(T0, -25);
        assert_eq!(c.pressure(T0), 0);
        assert_eq!(c.probe(T0, 0).remaining, 10);
        // A refund never lifts the bucket above capacity.
        c.adjust(T0, -1_000);
        assert_eq!(c.drain(T0), 10, "{alg:?}");
    }
}

#[test]
fn gcra_state_is_a_theoretical_arrival_time() {
    let q = quota(3, 10, 2);
    let (_, s) = Gcra.check(State::default(), T0, 1, &q);
    // TAT = T0 + 10/3 ns, stored in thirds of a ns.
    assert_eq!(s, State([3 * T0 + 10, 0, T0]));
    let (_, s) = Gcra.check(s, T0, 1, &q);
    assert_eq!(s, State([3 * T0 + 20, 0, T0]));
    let (d, _) = Gcra.check(s, T0, 1, &q);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ns, 4); // TAT - burst*T = T0 + 20/3 - 20/3 + 10/3
}

#[test]
fn leaky_bucket_state_is_a_queue_level() {
    let q = quota(3, 10, 5);
    let (_, s) = LeakyBucket.check(State::default(), T0, 4, &q);
    assert_eq!(s, State([4, 0, T0]));
    // 1 ns later 3/10 of a unit has drained.
    let (_, s) = LeakyBucket.check(s, T0 + 1, 0, &q);
    assert_eq!(s, State([3, 7, T0 + 1]));
}

// ---------------------------------------------------------------------------------------
// Fixed window
// ---------------------------------------------------------------------------------------

#[test]
fn fixed_window_last_and_first_ns() {
    let mut c = Counter::new(FixedWindow, quota(3, 1000, 0));
    // The last ns of a window.
    let last = T0 + 999;
    assert_eq!(c.drain(last), 3);
    let d = c.probe(last, 1);
    assert_eq!((d.retry_after_ns, d.reset_after_ns, d.remaining), (1, 1, 0));
    // The first ns of the next one.
    let d = c.check(T0 + 1000, 1);
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_after_ns), (2, 1000));
}

#[test]
fn fixed_window_retry_after_is_the_window_end() {
    let mut c = Counter::new(FixedWindow, quota(3, 1000, 0));
    assert!(c.check(T0 + 250, 2).allowed);
    assert_eq!(c.assert_retry_exact(T0 + 250, 2), 750);
    assert_eq!(c.assert_retry_exact(T0 + 998, 3), 2);
    assert!(c.check(T0 + 250, 1).allowed);
    assert_eq!(c.assert_retry_exact(T0 + 600, 1), 400);
}

#[test]
fn fixed_window_day_resets_at_midnight_utc() {
    let mut c = Counter::new(FixedWindow, quota(MICRO_USD, DAY, 0));
    let d = c.check(T0, MICRO_USD); // 13:00 UTC
    assert!(d.allowed);
    assert_eq!(d.reset_after_ns, 11 * 3600 * SEC);
    assert_eq!(c.state.0[0], 19_844); // days since the epoch on 2024-05-01
    assert_eq!(c.assert_retry_exact(T0, 1), 11 * 3600 * SEC);
    let midnight = T0 + 11 * 3600 * SEC;
    assert_eq!(c.pressure(midnight - 1), 1000);
    assert_eq!(c.pressure(midnight), 0);
}

#[test]
fn fixed_window_clock_stepping_back_across_a_boundary() {
    let mut c = Counter::new(FixedWindow, quota(3, 1000, 0));
    assert_eq!(c.drain(T0 + 1000), 3);
    // 1 ns earlier is the previous window by the clock, but the counter stays in the
    // later one: still full, and the wait runs to the end of that window.
    let d = c.check(T0 + 999, 1);
    assert!(!d.allowed);
    assert_eq!((d.retry_after_ns, d.reset_after_ns), (1001, 1001));
    assert_eq!(c.assert_retry_exact(T0 + 999, 1), 1001);
}

#[test]
fn fixed_window_refunds() {
    let mut c = Counter::new(FixedWindow, quota(10, 1000, 0));
    c.check(T0 + 10, 10);
    c.adjust(T0 + 20, -4);
    assert_eq!(c.probe(T0 + 30, 0).remaining, 4);
    c.adjust(T0 + 20, 7); // debt: 13 of 10
    assert_eq!(c.probe(T0 + 30, 0).remaining, 0);
    assert_eq!(c.pressure(T0 + 30), 1000);
    c.adjust(T0 + 30, -3);
    assert_eq!(c.pressure(T0 + 30), 1000);
    assert_eq!(c.probe(T0 + 30, 0).remaining, 0);
    // A refund in a later window than the charge is a no-op.
    c.adjust(T0 + 1000, -10);
    assert_eq!(c.drain(T0 + 1000), 10);
}

// ---------------------------------------------------------------------------------------
// Sliding window
// ---------------------------------------------------------------------------------------

#[test]
fn sliding_window_previous_window_weight_decays() {
    let mut c = Counter::new(SlidingWindow, quota(10, 1000, 0));
    assert!(c.check(T0 + 500, 10).allowed);
    // First ns of the next window: the previous window still weighs fully.
    let d = c.probe(T0 + 1000, 1);
    assert_eq!((d.allowed, d.remaining, d.reset_after_ns), (false, 0, 1000));
    // 10 * (1000 - t) / 1000 + 1 <= 10  <=>  t >= 100.
    assert_eq!(c.assert_retry_exact(T0 + 1000, 1), 100);
    assert_eq!(c.assert_retry_exact(T0 + 1050, 1), 50);
    assert_eq!(c.probe(T0 + 1500, 0).remaining, 5);
    assert_eq!(c.pressure(T0 + 1500), 500);
    // The whole limit needs the previous window fully decayed: the next rollover.
    assert_eq!(c.assert_retry_exact(T0 + 1500, 10), 500);
    assert_eq!(c.pressure(T0 + 2000), 0);
}

#[test]
fn sliding_window_retry_across_rollover() {
    let mut c = Counter::new(SlidingWindow, quota(10, 1000, 0));
    assert!(c.check(T0 + 999, 10).allowed); // last ns of the window
                                            // Not in this window (prev is empty, cur is full); next window: 10*(1000-e)/1000 + 1
                                            // <= 10 at e = 100.
    assert_eq!(c.assert_retry_exact(T0 + 999, 1), 101);
    assert_eq!(c.assert_retry_exact(T0 + 999, 5), 501);
    // The full limit only two rollovers later.
    assert_eq!(c.assert_retry_exact(T0 + 999, 10), 1001);
}

#[test]
fn sliding_window_retry_with_both_counters() {
    let mut c = Counter::new(SlidingWindow, quota(10, 1000, 0));
    assert!(c.check(T0 + 100, 8).allowed);
    assert!(c.check(T0 + 1200, 1).allowed); // est 8*0.8 + 1 = 7.4
    assert!(c.check(T0 + 1200, 2).allowed); // 9.4
                                            // cost 1: 8*(1000-e) + 4000 <= 10000  <=>  e >= 250.
    assert_eq!(c.assert_retry_exact(T0 + 1200, 1), 50);
    // cost 4: needs prev weight 3 => e >= 625.
    assert_eq!(c.assert_retry_exact(T0 + 1200, 4), 425);
    // cost 8: only after rollover: 3*(1000-e') <= 2000 <=> e' >= 334.
    assert_eq!(c.assert_retry_exact(T0 + 1200, 8), 800 + 334);
}

#[test]
fn sliding_window_worst_case_is_attained() {
    // limit at the last ns of a window, then as much as possible until W ns later:
    // limit + floor(limit * (W - 2) / W) = 2*limit - ceil(2*limit/W).
    for (limit, w) in [(10u64, 1000u64), (7, 3), (1000, 1000), (5, 2)] {
        let mut c = Counter::new(SlidingWindow, quota(limit, w, 0));
        let start = T0 + w - 1;
        let mut admitted = c.drain(start);
        for t in start + 1..start + w {
            admitted += c.drain(t);
        }
        assert_eq!(admitted, sliding_bound(limit, w) as u64, "limit {limit} W {w}");
    }
}

#[test]
fn sliding_window_clock_stepping_back_across_a_boundary() {
    let mut c = Counter::new(SlidingWindow, quota(10, 1000, 0));
    assert_eq!(c.drain(T0 + 1000), 10);
    // Treated as the first ns of the stored window: 1 ns of lag, then 100 ns into the
    // following window.
    let d = c.check(T0 + 999, 1);
    assert_eq!((d.allowed, d.reset_after_ns), (false, 1001));
    assert_eq!(c.assert_retry_exact(T0 + 999, 1), 1101);
}

#[test]
fn sliding_window_micro_dollars_per_day() {
    let mut c = Counter::new(SlidingWindow, quota(MICRO_USD, DAY, 0));
    let noon = T0 - 3600 * SEC;
    assert!(c.check(noon, MICRO_USD).allowed);
    // Next day at 12:00 the previous day weighs one half.
    let next_noon = noon + DAY;
    assert_eq!(c.probe(next_noon, 0).remaining, MICRO_USD / 2);
    assert_eq!(c.assert_retry_exact(next_noon, MICRO_USD / 2 + 1), 87);
    assert_eq!(c.assert_retry_exact(noon + 1, 1), 12 * 3600 * SEC - 1 + 87);
}

#[test]
fn sliding_window_refunds_come_off_the_current_window_first() {
    let mut c = Counter::new(SlidingWindow, quota(10, 1000, 0));
    c.check(T0, 6);
    c.check(T0 + 1000, 3);
    c.adjust(T0 + 1000, -5); // 3 from cur, 2 from prev
    assert_eq!(c.state.0, [T0 / 1000 + 1, 0, 4]);
    c.adjust(T0 + 1000, -100);
    assert_eq!(c.pressure(T0 + 1000), 0);
}

// ---------------------------------------------------------------------------------------
// Reference models
// ---------------------------------------------------------------------------------------

trait Model {
    fn check(&mut self, now: Nanos, cost: u64) -> Decision;
    fn adjust(&mut self, now: Nanos, delta: i64);
    fn pressure(&self, now: Nanos) -> u32;
}

fn clamp(x: i128) -> u64 {
    u64::try_from(x.max(0)).unwrap_or(u64::MAX)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b
}

fn ref_permille(used: i128, cap: i128) -> u32 {
    if used <= 0 {
        0
    } else if used >= cap {
        1000
    } else {
        ceil_div(used * 1000, cap) as u32
    }
}

/// A continuous bucket holding a signed number of tokens, as an exact fraction with
/// denominator `window_ns`; the clock never goes back.
#[derive(Clone)]
struct RefBucket {
    q: Quota,
    tokens: i128,
    clock: Nanos,
}

impl RefBucket {
    fn new(q: Quota) -> RefBucket {
        RefBucket { q, tokens: q.burst as i128 * q.window_ns as i128, clock: 0 }
    }
    fn cap(&self) -> i128 {
        self.q.burst as i128 * self.q.window_ns as i128
    }
    /// Refill to `now`; returns how far `now` lags behind the clock.
    fn advance(&mut self, now: Nanos) -> u64 {
        if now > self.clock {
            let refill = self.q.limit as i128 * (now - self.clock) as i128;
            self.tokens = (self.tokens + refill).min(self.cap());
            self.clock = now;
        }
        self.clock - now
    }
    fn wait_until(&self, tokens: i128, lag: u64) -> u64 {
        if self.tokens >= tokens {
            0
        } else {
            clamp(ceil_div(tokens - self.tokens, self.q.limit as i128)).saturating_add(lag)
        }
    }
    fn decision(&self, allowed: bool, retry: u64, lag: u64) -> Decision {
        Decision {
            allowed,
            remaining: clamp(self.tokens / self.q.window_ns as i128),
            reset_after_ns: self.wait_until(self.cap(), lag),
            retry_after_ns: retry,
        }
    }
}

impl Model for RefBucket {
    fn check(&mut self, now: Nanos, cost: u64) -> Decision {
        let lag = self.advance(now);
        if cost == 0 {
            return self.decision(true, 0, lag);
        }
        if cost > self.q.burst {
            return self.decision(false, u64::MAX, lag);
        }
        let need = cost as i128 * self.q.window_ns as i128;
        if self.tokens >= need {
            self.tokens -= need;
            self.decision(true, 0, lag)
        } else {
            self.decision(false, self.wait_until(need, lag), lag)
        }
    }
    fn adjust(&mut self, now: Nanos, delta: i64) {
        self.advance(now);
        self.tokens = (self.tokens - delta as i128 * self.q.window_ns as i128).min(self.cap());
    }
    fn pressure(&self, now: Nanos) -> u32 {
        let mut r = self.clone();
        r.advance(now);
        ref_permille(r.cap() - r.tokens, r.cap())
    }
}

/// Per-window counts in a map; the current window is the latest one seen.
struct RefWindows {
    q: Quota,
    sliding: bool,
    counts: HashMap<u64, i128>,
    top: u64,
}

impl RefWindows {
    fn new(q: Quota, sliding: bool) -> RefWindows {
        RefWindows { q, sliding, counts: HashMap::new(), top: 0 }
    }
    fn w(&self) -> u64 {
        self.q.window_ns
    }
    /// (window index, ns elapsed in it) at `now`, never before the latest window seen.
    fn at(&self, now: Nanos) -> (u64, u64) {
        if now / self.w() >= self.top {
            (now / self.w(), now % self.w())
        } else {
            (self.top, 0)
        }
    }
    fn count(&self, index: u64) -> i128 {
        self.counts.get(&index).copied().unwrap_or(0)
    }
    /// Usage at `now` scaled by W, and the capacity scaled by W.
    fn usage(&self, now: Nanos) -> (i128, i128) {
        let (i, e) = self.at(now);
        let w = self.w() as i128;
        let prev = if self.sliding && i > 0 { self.count(i - 1) } else { 0 };
        (prev * (w - e as i128) + self.count(i) * w, self.q.limit as i128 * w)
    }
    fn admits(&self, now: Nanos, cost: u64) -> bool {
        let (used, cap) = self.usage(now);
        cost <= self.q.limit && used + cost as i128 * self.w() as i128 <= cap
    }
}

impl Model for RefWindows {
    fn check(&mut self, now: Nanos, cost: u64) -> Decision {
        let (i, _) = self.at(now);
        let w = self.w() as i128;
        let (used, cap) = self.usage(now);
        let end = (i as u128 + 1) * self.w() as u128;
        let reset = (end - now as u128) as u64;
        let allowed = cost == 0 || self.admits(now, cost);
        let retry = if allowed {
            0
        } else if cost > self.q.limit {
            u64::MAX
        } else if !self.sliding {
            reset
        } else {
            // Brute force: the first admitting instant by binary search (the estimate
            // never increases, and two windows on everything has expired).
            let (mut lo, mut hi) = (0u64, reset + self.w());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.admits(now + mid, cost) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        };
        self.top = i;
        let remaining_scaled = if allowed {
            *self.counts.entry(i).or_insert(0) += cost as i128;
            cap - used - cost as i128 * w
        } else {
            cap - used
        };
        Decision {
            allowed,
            remaining: clamp(remaining_scaled.div_euclid(w)),
            reset_after_ns: reset,
            retry_after_ns: retry,
        }
    }
    fn adjust(&mut self, now: Nanos, delta: i64) {
        let (i, _) = self.at(now);
        self.top = i;
        let amount = delta.unsigned_abs() as i128;
        if delta >= 0 {
            *self.counts.entry(i).or_insert(0) += amount;
        } else {
            let cur = self.count(i);
            let from_cur = amount.min(cur);
            self.counts.insert(i, cur - from_cur);
            if self.sliding && i > 0 {
                let prev = self.count(i - 1);
                self.counts.insert(i - 1, (prev - (amount - from_cur)).max(0));
            }
        }
    }
    fn pressure(&self, now: Nanos) -> u32 {
        let (used, cap) = self.usage(now);
        ref_permille(used, cap)
    }
}

/// The documented worst case of the sliding window over any W-ns interval.
fn sliding_bound(limit: u64, w: u64) -> u128 {
    let (l, w) = (limit as u128, w as u128);
    if w <= 2 {
        l
    } else {
        2 * l - (2 * l).div_ceil(w)
    }
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// Times stay below this so that no reference model overflows.
const CLOCK_CAP: Nanos = 1 << 62;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Check(u64),
    /// Magnitude (reduced modulo 4*capacity+1), refund?
    Adjust(u64, bool),
}

#[derive(Clone, Copy, Debug)]
struct Op {
    gap: u64,
    back: u64,
    kind: Kind,
}

fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(0u64),
        4 => 1..=20u64,
        4 => 1..=3_000u64,
        2 => 0..=2 * SEC,
        1 => 0..=2 * DAY,
        1 => 0..=10 * YEAR,
    ]
}

fn back() -> impl Strategy<Value = u64> {
    prop_oneof![8 => Just(0u64), 1 => 1..=50u64, 1 => 1..=2_000u64]
}

fn cost() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0..=3u64,
        3 => 0..=30u64,
        1 => 1..=1_000_000u64,
        1 => Just(MICRO_USD),
        1 => any::<u64>(),
    ]
}

fn op(adjusts: bool) -> impl Strategy<Value = Op> {
    let kind = if adjusts {
        prop_oneof![
            5 => cost().prop_map(Kind::Check),
            1 => (any::<u64>(), any::<bool>()).prop_map(|(m, r)| Kind::Adjust(m, r)),
        ]
        .boxed()
    } else {
        cost().prop_map(Kind::Check).boxed()
    };
    (gap(), back(), kind).prop_map(|(gap, back, kind)| Op { gap, back, kind })
}

fn scale() -> impl Strategy<Value = u64> {
    prop_oneof![1..=20u64, 1..=1_000u64, Just(1_000_000), Just(MICRO_USD)]
}

fn window() -> impl Strategy<Value = u64> {
    prop_oneof![1..=20u64, 1..=2_000u64, Just(SEC), 1..=10 * SEC, Just(DAY)]
}

/// Bucket quotas whose drain time `burst * window / limit` stays below 2^52 ns (~52 days),
/// so that GCRA's absolute TAT never saturates within the test clock range.
fn bucket_quota() -> impl Strategy<Value = Quota> {
    (scale(), window(), scale()).prop_map(|(limit, window_ns, burst)| {
        let floor = (burst as u128 * window_ns as u128).div_ceil(1 << 52) as u64;
        quota(limit.max(floor), window_ns, burst)
    })
}

fn window_quota() -> impl Strategy<Value = Quota> {
    (scale(), window()).prop_map(|(limit, window_ns)| quota(limit, window_ns, limit))
}

fn start() -> impl Strategy<Value = Nanos> {
    prop_oneof![Just(0u64), Just(T0), 0..=1u64 << 61]
}

/// Walks the ops: returns (the time the op runs at, the running clock).
fn times(start: Nanos, ops: &[Op]) -> Vec<(Nanos, Nanos)> {
    let mut clock = start;
    ops.iter()
        .map(|op| {
            clock = clock.saturating_add(op.gap).min(CLOCK_CAP);
            (clock.saturating_sub(op.back), clock)
        })
        .collect()
}

fn delta_of(magnitude: u64, refund: bool, cap: u64) -> i64 {
    let m = (magnitude % (cap.saturating_mul(4).saturating_add(1))) as i64;
    if refund {
        -m
    } else {
        m
    }
}

/// Run `ops` on the algorithm and the model side by side, comparing every decision and the
/// pressure after every op.
fn compare(alg: Algorithm, q: Quota, model: &mut dyn Model, start: Nanos, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut c = Counter::new(alg, q);
    for (op, (now, _)) in ops.iter().zip(times(start, ops)) {
        match op.kind {
            Kind::Check(cost) => {
                let got = c.check(now, cost);
                let want = model.check(now, cost);
                prop_assert_eq!(got, want, "{:?} {:?} at {} cost {}", alg, q, now, cost);
            }
            Kind::Adjust(m, refund) => {
                let delta = delta_of(m, refund, c.capacity());
                c.adjust(now, delta);
                model.adjust(now, delta);
            }
        }
        prop_assert_eq!(c.pressure(now), model.pressure(now), "{:?} pressure at {}", alg, now);
    }
    Ok(())
}

/// A state reached by a random history, and the running clock at its end.
fn reached(alg: Algorithm, q: Quota, start: Nanos, ops: &[Op]) -> (Counter, Nanos) {
    let mut c = Counter::new(alg, q);
    let mut clock = start;
    for (op, (now, running)) in ops.iter().zip(times(start, ops)) {
        match op.kind {
            Kind::Check(cost) => {
                c.check(now, cost);
            }
            Kind::Adjust(m, refund) => c.adjust(now, delta_of(m, refund, c.capacity())),
        }
        clock = running;
    }
    (c, clock)
}

fn any_alg() -> impl Strategy<Value = Algorithm> {
    proptest::sample::select(Algorithm::ALL.to_vec())
}

fn any_quota_for(alg: Algorithm) -> BoxedStrategy<Quota> {
    if BUCKETS.contains(&alg) {
        bucket_quota().boxed()
    } else {
        window_quota().boxed()
    }
}

fn history() -> impl Strategy<Value = (Algorithm, Quota, Nanos, Vec<Op>)> {
    any_alg().prop_flat_map(|alg| (Just(alg), any_quota_for(alg), start(), proptest::collection::vec(op(true), 0..48)))
}

/// Check-only histories with gaps and costs relative to the quota.
fn adversarial_history() -> impl Strategy<Value = (Quota, Nanos, Vec<Op>)> {
    let q = (prop_oneof![1..=20u64, 1..=1_000u64, Just(MICRO_USD)], prop_oneof![1..=20u64, 1..=2_000u64, Just(DAY)])
        .prop_map(|(limit, w)| quota(limit, w, limit));
    (q, start()).prop_flat_map(|(q, start)| {
        let (w, l) = (q.window_ns, q.limit);
        let gap =
            prop_oneof![3 => Just(0u64), 2 => Just(1u64), 4 => 0..w, 1 => Just(w - 1), 1 => Just(w), 1 => w..=3 * w];
        let cost = prop_oneof![Just(1u64), 1..=l, Just(l), Just(l / 2 + 1)];
        let op = (gap, back(), cost).prop_map(|(gap, back, cost)| Op { gap, back, kind: Kind::Check(cost) });
        (Just(q), Just(start), proptest::collection::vec(op, 1..96))
    })
}

fn edge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(u64::MAX), 0..=1_000u64, any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn buckets_match_the_rational_model(
        q in bucket_quota(), start in start(), ops in proptest::collection::vec(op(true), 1..64),
    ) {
        for alg in BUCKETS {
            compare(alg, q, &mut RefBucket::new(q), start, &ops)?;
        }
    }

    #[test]
    fn fixed_window_matches_the_count_model(
        q in window_quota(), start in start(), ops in proptest::collection::vec(op(true), 1..64),
    ) {
        compare(FixedWindow, q, &mut RefWindows::new(q, false), start, &ops)?;
    }

    #[test]
    fn sliding_window_matches_the_two_counter_model(
        q in window_quota(), start in start(), ops in proptest::collection::vec(op(true), 1..64),
    ) {
        compare(SlidingWindow, q, &mut RefWindows::new(q, true), start, &ops)?;
    }

    /// Against an exact sliding log: no W-ns interval holds more than the documented bound.
    /// Gaps and costs are drawn relative to the window and limit, to provoke bursts at
    /// window edges.
    #[test]
    fn sliding_window_stays_within_its_bound_of_the_exact_log((q, start, ops) in adversarial_history()) {
        let mut c = Counter::new(SlidingWindow, q);
        let w = q.window_ns;
        let mut top = 0u64; // latest window index seen
        let mut log: Vec<(Nanos, u128)> = Vec::new();
        for (op, (now, _)) in ops.iter().zip(times(start, &ops)) {
            let Kind::Check(cost) = op.kind else { continue };
            // The instant the counter attributes the request to.
            let at = if now / w >= top { now } else { top * w };
            top = top.max(now / w);
            if c.check(now, cost).allowed && cost > 0 {
                log.push((at, cost as u128));
            }
        }
        let bound = sliding_bound(q.limit, w);
        for &(s, _) in &log {
            let in_window: u128 =
                log.iter().filter(|&&(t, _)| t >= s && t - s < w).map(|&(_, c)| c).sum();
            prop_assert!(in_window <= bound, "{} units in [{}, +{}) > {}", in_window, s, w, bound);
        }
    }

    /// For every algorithm, waiting exactly retry_after admits and 1 ns less does not;
    /// for buckets (and the fixed window) reset_after is when pressure reaches 0.
    #[test]
    fn retry_after_and_reset_after_are_exact(
        (alg, q, start, ops) in history(), extra in op(false), cost in cost(),
    ) {
        let (mut c, clock) = reached(alg, q, start, &ops);
        let now = times(clock, &[extra])[0].0;
        let d = c.check(now, cost);
        assert_contract(alg, &q, cost, &d);
        if !d.allowed {
            prop_assert_eq!(c.probe(now, cost), d, "denied check must not change the state");
            let r = d.retry_after_ns;
            if r != u64::MAX && now.checked_add(r).is_some() {
                prop_assert!(c.probe(now + r, cost).allowed, "{:?} not admitted after {}", alg, r);
                prop_assert!(!c.probe(now + r - 1, cost).allowed, "{:?} admitted before {}", alg, r);
            }
        }
        let reset = d.reset_after_ns;
        if alg != SlidingWindow && reset != u64::MAX && now.checked_add(reset).is_some() {
            prop_assert_eq!(c.pressure(now + reset), 0, "{:?} not reset after {}", alg, reset);
            if reset > 0 && BUCKETS.contains(&alg) {
                prop_assert!(c.pressure(now + reset - 1) > 0, "{:?} reset before {}", alg, reset);
            }
        }
    }

    /// A forced charge followed by an equal refund at the same instant is a no-op.
    #[test]
    fn charge_then_refund_restores(
        (alg, q, start, ops) in history(), amount in 0..=4_000u64, probe_gaps in proptest::collection::vec(gap(), 4),
    ) {
        let (c, clock) = reached(alg, q, start, &ops);
        let delta = (amount as u128 * c.capacity() as u128 / 1000).min(i64::MAX as u128) as i64;
        let mut d = c;
        d.adjust(clock, delta);
        d.adjust(clock, -delta);
        let cap = c.capacity();
        let mut t = clock;
        for g in probe_gaps {
            for cost in [0, 1, cap / 2, cap, cap.saturating_add(1)] {
                prop_assert_eq!(c.probe(t, cost), d.probe(t, cost), "{:?} cost {} at +{}", alg, cost, t - clock);
            }
            prop_assert_eq!(c.pressure(t), d.pressure(t));
            t = t.saturating_add(g).min(CLOCK_CAP);
        }
    }

    /// Pressure 0 means the state can be forgotten: it decides like a fresh one.
    #[test]
    fn zero_pressure_is_as_good_as_fresh(
        (alg, q, start, ops) in history(), extra in op(false), cost in cost(),
    ) {
        let (c, clock) = reached(alg, q, start, &ops);
        let now = times(clock, &[extra])[0].0;
        if c.pressure(now) == 0 {
            let fresh = Counter::new(alg, q);
            for cost in [0, 1, cost, c.capacity(), c.capacity().saturating_add(1)] {
                let (a, b) = (c.probe(now, cost), fresh.probe(now, cost));
                prop_assert_eq!((a.allowed, a.remaining, a.retry_after_ns), (b.allowed, b.remaining, b.retry_after_ns));
            }
        }
    }

    /// Any bits, any inputs: no panic, and the contract holds.
    #[test]
    fn arbitrary_states_and_inputs_never_panic(
        alg in any_alg(), words in any::<[u64; 3]>(), now in edge_u64(), cost in edge_u64(),
        delta in any::<i64>(), limit in edge_u64(), window_ns in edge_u64(), burst in edge_u64(),
    ) {
        let q = quota(limit, window_ns, burst);
        let state = State(words);
        let (d, s) = alg.check(state, now, cost, &q);
        assert_contract(alg, &q, cost, &d);
        prop_assert!(alg.pressure(state, now, &q) <= 1000);
        prop_assert!(alg.pressure(s, now, &q) <= 1000);
        let s = alg.adjust(state, now, delta, &q);
        let (d, _) = alg.check(s, now, cost, &q);
        assert_contract(alg, &q, cost, &d);
        prop_assert!(alg.pressure(s, now, &q) <= 1000);
    }

    #[test]
    fn state_encoding_roundtrips(words in any::<[u64; 3]>(), bytes in any::<[u8; 24]>(), extra in any::<u8>()) {
        let mut out = [0u8; 24];
        State(words).encode(&mut out);
        prop_assert_eq!(State::decode(&out), State(words));
        State::decode(&bytes).encode(&mut out);
        prop_assert_eq!(out, bytes);
        let mut longer = bytes.to_vec();
        longer.push(extra);
        prop_assert_eq!(State::decode(&longer), State::decode(&bytes));
        prop_assert_eq!(State::decode(&bytes[..23]), State::default());
    }
}
