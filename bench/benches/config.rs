//! `Config::parse` on the configurations users write: bench/configs/realistic.json and every
//! examples/*.json. Envoy parses the plugin config on every worker at start and on every
//! reload, so this is start-up and reload latency, not per-request cost.
//!
//! Run: `cargo bench -p tollgate-bench --bench config -- --warm-up-time 1 --measurement-time 2`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate_core::config::Config;

/// (name, text) of realistic.json and each example, read at run time so new examples count.
fn configs() -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut out = vec![("realistic".to_string(), include_bytes!("../configs/realistic.json").to_vec())];
    let mut examples: Vec<_> = std::fs::read_dir(format!("{root}/examples"))
        .map(|dir| dir.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    examples.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "json"));
    examples.sort();
    for path in examples {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((name, text));
    }
    out
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("config_parse");
    for (name, text) in configs() {
        Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        group.bench_function(name, |b| b.iter(|| Config::parse(black_box(&text))));
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
