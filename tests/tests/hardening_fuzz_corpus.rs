//! The fuzz corpora (`fuzz/corpus/<target>/`) replayed natively through the same checks as the
//! libFuzzer targets (`fuzz/src/lib.rs`), so CI exercises every input the fuzzers kept, in
//! seconds, without libFuzzer or a nightly flag. Also the saved inputs of the bugs the fuzzers
//! found (`fuzz/artifacts/`), as ignored regression tests until they are fixed.
//!
//! The fuzz crate is its own workspace (it is not a member of this one), so this test builds its
//! `replay` example with cargo, without the libFuzzer runtime (`--no-default-features`), into
//! `target/fuzz-replay/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use tollgate_e2e::repo_root;

/// The `replay` example of the fuzz crate, built from the current sources.
fn replay_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo =
                std::env::var("CARGO").ok().or(option_env!("CARGO").map(String::from)).unwrap_or("cargo".into());
            let root = repo_root();
            let target_dir = root.join("target/fuzz-replay");
            let out = Command::new(cargo)
                .args(["build", "-q", "--no-default-features", "--example", "replay", "--manifest-path"])
                .arg(root.join("fuzz/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cargo build --manifest-path fuzz/Cargo.toml --no-default-features --example replay failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            target_dir.join("debug/examples/replay")
        })
        .clone()
}

/// Run `replay` with `args`: (exit code, stdout).
fn replay(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(replay_bin()).args(args).current_dir(repo_root()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{stdout}\n{stderr}");
    }
    (out.status.code(), stdout)
}

const TARGETS: [&str; 8] = ["config", "keys", "usage_json", "sse", "duration", "response", "algorithm", "limiter"];

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
