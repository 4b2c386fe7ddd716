//! The fuzz corpora (`fuzz/corpus/<target>/`) replayed natively through the same checks as the
//! libFuzzer targets (`fuzz/src/lib.rs`), so CI exercises every input the fuzzers kept, in
//! seconds, without libFuzzer or a nightly flag. Also the saved inputs of the bugs the fuzzers
//! found (`fuzz/artifacts/`), as regression tests. The `replay` example is built by
//! `tollgate_e2e::fuzz`.

use tollgate_e2e::fuzz::{replay, TARGETS};

#[test]
fn every_fuzz_corpus_replays_through_its_checks() {
    let (code, out) = replay(&[]);
    print!("{out}");
    assert_eq!(code, Some(0), "a corpus input failed its checks (FAILED lines above)");
    for t in TARGETS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("replay: {t}: ")))
            .unwrap_or_else(|| panic!("no replay line for target {t}:\n{out}"));
        let inputs: usize = line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap();
        assert!(inputs >= 5, "target {t} has only {inputs} corpus inputs: {line}");
    }
    // Every fuzz target of fuzz/Cargo.toml is replayed (none forgotten here or in lib.rs).
    let manifest = tollgate_e2e::read("fuzz/Cargo.toml");
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml has {bins} targets, this test knows {}", TARGETS.len());
}

/// Found by the `duration` fuzz target: `Duration::parse("0s")` is `Some(Duration(0))`, whose
/// Display is `"0ns"`, which `Duration::parse` refuses. Harmless today (the config rejects zero
/// durations, so no zero window or wait is ever displayed), but `Display` is documented as
/// "the shortest exact form" and the two disagree; fix: display 0 as `"0s"` (or `"0ms"`).
#[test]
fn duration_zero_display_parses_back() {
    let (code, out) = replay(&["duration_with_zero", "fuzz/artifacts/duration/zero-display-roundtrip"]);
    assert_eq!(code, Some(0), "{out}");
}
