//! One `check` (cost 1) per algorithm on a fresh-ish state: a counter that has seen some
//! traffic and still has room, so every call takes the admitting path.
//!
//! Run: `cargo bench -p tollgate-bench -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate_core::config::reset::parse_rule_window;
use tollgate_core::engine::algorithm::{Algorithm, Quota, State, NANOS_PER_SEC};

/// 2024-05-01T13:00:00.5Z
const NOW: u64 = 1_714_568_400 * NANOS_PER_SEC + NANOS_PER_SEC / 2;

fn decision(c: &mut Criterion) {
    // 100 per minute with a burst of 20: the emission interval (0.6 s) is not a whole
    // number of ns per unit after scaling, exercising the exact rational paths.
    let q = Quota { limit: 100, window_ns: 60 * NANOS_PER_SEC, burst: 20 };
    let mut group = c.benchmark_group("check");
    for alg in Algorithm::ALL {
        // Some earlier traffic: a few units 1.5 s ago (the previous window for windows).
        let (_, state) = alg.check(State::default(), NOW - 3 * NANOS_PER_SEC / 2, 5, &q);
        group.bench_function(alg.name(), |b| {
            b.iter(|| alg.check(black_box(state), black_box(NOW), black_box(1), black_box(&q)))
        });
    }
    group.finish();
}

/// The period of a calendar window containing `now` (per request per calendar rule). "same"
/// asks again within the current period (the common case); "moving" asks for a time in
/// another period each call.
fn calendar(c: &mut Criterion) {
    let mut group = c.benchmark_group("calendar_period");
    let cases = [
        ("1d_utc", "1d", serde_json::json!({})),
        ("1d_berlin", "1d", serde_json::json!({"timezone": "Europe/Berlin"})),
        ("1w_new_york", "1w", serde_json::json!({"timezone": "America/New_York", "weekday": "sun"})),
        ("1mo_berlin", "1mo", serde_json::json!({"timezone": "Europe/Berlin", "day": 15, "at": "02:30"})),
    ];
    for (name, window, reset) in cases {
        let Ok(Some(w)) = parse_rule_window(window, Some(&reset), "rules[0]") else { continue };
        group.bench_function(format!("{name}/same"), |b| b.iter(|| w.period(black_box(NOW))));
        let mut now = NOW;
        group.bench_function(format!("{name}/moving"), |b| {
            b.iter(|| {
                now = now.wrapping_add(40 * 86_400 * NANOS_PER_SEC) % (4_000_000_000 * NANOS_PER_SEC);
                w.period(black_box(now))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision, calendar);
criterion_main!(benches);
