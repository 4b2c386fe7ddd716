//! One `check` (cost 1) per algorithm on a fresh-ish state: a counter that has seen some
//! traffic and still has room, so every call takes the admitting path.
//!
//! Run: `cargo bench -p tollgate-bench -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::algorithm::{Algorithm, Quota, State, NANOS_PER_SEC};

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

criterion_group!(benches, decision);
criterion_main!(benches);
