use super::*;
use crate::engine::algorithm::NANOS_PER_SEC;
use crate::engine::shared_store::MemoryStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const HOUR: u64 = 3600 * NANOS_PER_SEC;
const T0: u64 = 1_700_000_000 * NANOS_PER_SEC;

fn check(rule: usize, algorithm: Algorithm, limit: u64, key: u64) -> Check {
    Check {
        rule,
        algorithm,
        quota: Quota { limit, window_ns: HOUR, burst: limit },
        key: KeyHash(key),
        cost: 1,
        shadow: false,
        max_wait_ns: 0,
    }
}

fn engine(capacity: u32) -> (Engine, MemoryStore) {
    let e = Engine::new(capacity, &["a", "b"]);
    let s = MemoryStore::new();
    e.create_entries(&s).unwrap();
    (e, s)
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads (run natively)")]
fn racing_threads_admit_exactly_the_capacity_for_every_algorithm() {
    for algorithm in Algorithm::ALL {
        let (e, s) = engine(1024);
        let (e, s) = (Arc::new(e), Arc::new(s));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (e, s, admitted) = (e.clone(), s.clone(), admitted.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let out = e.admit(&*s, &[check(0, algorithm, 100, 42)], T0);
                        if out.denied_by.is_none() {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(admitted.load(Ordering::SeqCst), 100, "{algorithm:?}");
    }
}

#[test]
fn a_denied_request_consumes_no_quota_in_any_rule() {
    let (e, s) = engine(1024);
    let wide = check(0, Algorithm::FixedWindow, 10, 1);
    let narrow = check(1, Algorithm::FixedWindow, 1, 2);
    assert_eq!(e.admit(&s, &[wide, narrow], T0).denied_by, None);
    for _ in 0..5 {
        let out = e.admit(&s, &[wide, narrow], T0);
        assert_eq!(out.denied_by, Some(1));
        assert!(out.verdicts.iter().all(|v| !v.charged));
    }
    assert_eq!(e.peek(&s, &wide, T0).remaining, 9);
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads (run natively)")]
fn charges_lost_to_a_race_are_refunded() {
    // Rule a never denies; rule b admits 50. Whatever interleaving, a is charged exactly
    // once per admitted request.
    let (e, s) = engine(1024);
    let (e, s) = (Arc::new(e), Arc::new(s));
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (e, s, admitted) = (e.clone(), s.clone(), admitted.clone());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let checks = [check(0, Algorithm::Gcra, 1000, 7), check(1, Algorithm::TokenBucket, 50, 8)];
                    if e.admit(&*s, &checks, T0).denied_by.is_none() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(admitted.load(Ordering::SeqCst), 50);
    assert_eq!(e.peek(&*s, &check(0, Algorithm::Gcra, 1000, 7), T0).remaining, 950);
}

#[test]
fn shadow_checks_never_deny() {
    let (e, s) = engine(1024);
    let shadow = Check { shadow: true, ..check(0, Algorithm::FixedWindow, 1, 3) };
    assert_eq!(e.admit(&s, &[shadow], T0).denied_by, None);
    let out = e.admit(&s, &[shadow], T0);
    assert_eq!(out.denied_by, None);
    assert!(!out.verdicts[0].decision.allowed);
}

#[test]
fn memory_is_bounded_and_a_limited_key_stays_limited_through_a_key_flood() {
    let (e, s) = engine(64);
    let entries = s.len();
    let abuser = check(0, Algorithm::TokenBucket, 3, 0xabad);
    for _ in 0..3 {
        assert_eq!(e.admit(&s, &[abuser], T0).denied_by, None);
    }
    assert_eq!(e.admit(&s, &[abuser], T0).denied_by, Some(0));
    let mut overflowed = 0;
    for i in 0..20_000u64 {
        let k = KeyHash::of(9, &[&i.to_le_bytes()]).0;
        overflowed += e.admit(&s, &[check(0, Algorithm::TokenBucket, 3, k)], T0 + i).stats.overflows;
    }
    assert!(overflowed > 0, "a full table sends new keys to the overflow counter");
    assert_eq!(s.len(), entries, "no shared-data entry is ever added after configure time");
    assert_eq!(e.admit(&s, &[abuser], T0 + 20_000).denied_by, Some(0), "still limited");
}

/// Keys that land in set 0 of `e`'s table.
fn keys_in_set_zero(e: &Engine, n: usize) -> Vec<u64> {
    (0u64..)
        .map(|i| KeyHash::of(1, &[&i.to_le_bytes()]).0)
        .filter(|k| e.table().set_of(KeyHash(*k)) == 0)
        .take(n)
        .collect()
}

#[test]
fn a_full_set_overflows_and_idle_records_are_reused_without_loss() {
    let (e, s) = engine(64);
    let keys = keys_in_set_zero(&e, 10);
    for k in &keys[..8] {
        let out = e.admit(&s, &[check(0, Algorithm::FixedWindow, 5, *k)], T0);
        assert_eq!((out.denied_by, out.stats.overflows), (None, 0));
    }
    let ninth = e.admit(&s, &[check(0, Algorithm::FixedWindow, 5, keys[8])], T0);
    assert_eq!(ninth.stats.overflows, 1, "every record of the set is live");
    // Two windows later the eight counters are idle: a new key takes a record, losslessly.
    let later = T0 + 2 * HOUR;
    let tenth = e.admit(&s, &[check(0, Algorithm::FixedWindow, 5, keys[9])], later);
    assert_eq!((tenth.denied_by, tenth.stats.overflows, tenth.stats.evictions), (None, 0, 1));
}

#[test]
fn adjust_refunds_and_settles() {
    let (e, s) = engine(1024);
    let c = Check { cost: 40, ..check(0, Algorithm::FixedWindow, 100, 5) };
    let out = e.admit(&s, &[c], T0);
    let place = out.verdicts[0].place;
    let mut stats = EngineStats::default();
    e.adjust(&s, &c, place, 25, T0, &mut stats);
    assert_eq!(e.peek(&s, &c, T0).remaining, 35);
    e.adjust(&s, &c, place, -65, T0, &mut stats);
    assert_eq!(e.peek(&s, &c, T0).remaining, 100);
}

#[test]
fn throttled_checks_are_admitted_late_in_order_and_evenly_spaced() {
    let (e, s) = engine(1024);
    // 10 per second, burst 10, hold up to 5 s.
    let c = Check {
        quota: Quota { limit: 10, window_ns: NANOS_PER_SEC, burst: 10 },
        max_wait_ns: 5 * NANOS_PER_SEC,
        ..check(0, Algorithm::Gcra, 10, 11)
    };
    let delays: Vec<u64> = (0..30).map(|_| e.admit(&s, &[c], T0).delay_ns()).collect();
    assert!(delays[..10].iter().all(|d| *d == 0));
    for (i, d) in delays[10..].iter().enumerate() {
        assert_eq!(*d, (i as u64 + 1) * NANOS_PER_SEC / 10, "held request {i}");
    }
    // Beyond max_wait: denied at once.
    let far = Check { max_wait_ns: NANOS_PER_SEC, ..c };
    assert_eq!(e.admit(&s, &[far], T0).denied_by, Some(0));
}

#[test]
fn refunding_held_requests_gives_their_places_back() {
    for algorithm in [Algorithm::LeakyBucket, Algorithm::Gcra, Algorithm::TokenBucket] {
        let (e, s) = engine(1024);
        let c = Check {
            quota: Quota { limit: 1, window_ns: NANOS_PER_SEC, burst: 1 },
            max_wait_ns: 10 * NANOS_PER_SEC,
            ..check(0, algorithm, 1, 12)
        };
        assert_eq!(e.admit(&s, &[c], T0).delay_ns(), 0);
        let held: Vec<Outcome> = (0..5).map(|_| e.admit(&s, &[c], T0)).collect();
        assert_eq!(held[4].delay_ns(), 5 * NANOS_PER_SEC, "{algorithm:?}");
        let mut stats = EngineStats::default();
        for o in &held {
            e.adjust(&s, &c, o.verdicts[0].place, -1, T0 + 1, &mut stats);
        }
        assert_eq!(e.admit(&s, &[c], T0 + 2).delay_ns(), NANOS_PER_SEC - 2, "{algorithm:?}");
    }
}
