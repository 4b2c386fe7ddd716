//! Fuzzing in a short, bounded form on every `cargo test` (and so `make test`), on the stable
//! toolchain alone: the `replay` example of the fuzz crate in its mutation mode
//! (`replay --mutate SECONDS --seed N`) mutates every target's corpus (`fuzz/corpus/<target>/`)
//! for a few seconds per target and runs each input through the same checks as the libFuzzer
//! targets (`fuzz/src/lib.rs`). No coverage feedback: `make fuzz` (cargo-fuzz) is the real,
//! longer fuzzing; this catches what a few hundred thousand mutations of the corpus find.
//!
//! The seed changes on every run (from the clock) and is printed: a failure saves its input to
//! `target/fuzz-mutate/<target>/crash-<hash>` and the assert message says how to run it again.
//! `FUZZ_SHORT_SEED=N` reruns with a given seed, `FUZZ_SHORT_SECONDS=S` fuzzes S s per target.
//!
//! Built like `fuzz_corpus` builds it: with cargo, without the libFuzzer runtime
//! (`--no-default-features`), into `target/fuzz-replay/`.

use std::path::PathBuf;
use std::time::Instant;
use tollgate_e2e::fuzz::{replay, replay_bin, TARGETS};
use tollgate_e2e::repo_root;

/// Seconds of mutations per target (8 targets: 24 s in all).
const SECONDS: f64 = 3.0;

/// `FUZZ_SHORT_SEED`, else one from the clock and the process id.
fn seed() -> u64 {
    if let Ok(s) = std::env::var("FUZZ_SHORT_SEED") {
        return s.trim().parse().unwrap_or_else(|_| panic!("FUZZ_SHORT_SEED is not a number: {s:?}"));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut z = (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 48);
    // SplitMix64's finalizer: nearby clocks give unrelated seeds.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) >> 1
}

fn seconds() -> f64 {
    match std::env::var("FUZZ_SHORT_SECONDS") {
        Ok(s) => s
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| *s > 0.0)
            .unwrap_or_else(|| panic!("FUZZ_SHORT_SECONDS is not a positive number of seconds: {s:?}")),
        Err(_) => SECONDS,
    }
}

/// Runs and failures of a `mutate: TARGET: R runs in S s, F failures (...)` line.
fn runs_of(out: &str, target: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.starts_with(&format!("mutate: {target}: ")) && l.contains(" runs in "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let runs = words.get(2)?.parse().ok()?;
    let failures = words.get(7)?.parse().ok()?;
    Some((runs, failures))
}

#[test]
fn every_fuzz_target_survives_a_short_mutation_run() {
    let (seed, secs) = (seed(), seconds());
    println!("fuzz seed {seed}, {secs} s per target");
    let repro = format!(
        "reproduce with the same seed: \
         `cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- --mutate {secs} --seed {seed} TARGET` \
         (add `--runs N` to stop right at the failing run #N, with a longer `--mutate` so that time does not run out first), or `FUZZ_SHORT_SEED={seed} cargo test -p tollgate-e2e --test e2e -- hardening::fuzz_short`; \
         replay the saved input with `cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- TARGET FILE` \
         (the FAILED line above names the target, the file and the panic message)"
    );
    // Build first, so that the time below is the fuzzing alone.
    replay_bin();
    let start = Instant::now();
    let (code, out) = replay(&["--mutate", &secs.to_string(), "--seed", &seed.to_string()]);
    let took = start.elapsed();
    print!("{out}");
    println!("took {:.1} s", took.as_secs_f64());
    assert_eq!(code, Some(0), "short fuzzing found a failing input (seed {seed}):\n{out}\n{repro}");
    for t in TARGETS {
        let (runs, failures) =
            runs_of(&out, t).unwrap_or_else(|| panic!("no `mutate: {t}: N runs ...` line (seed {seed}):\n{out}"));
        assert_eq!(failures, 0, "target {t} (seed {seed}):\n{out}\n{repro}");
        // How many runs fit in the time depends on the machine: only that there were some.
        assert!(runs > 0, "target {t}: no run in {secs} s (seed {seed}): the mutator produced no input:\n{out}");
    }
    // Every fuzz target of fuzz/Cargo.toml is fuzzed (none forgotten here or in lib.rs).
    let manifest = tollgate_e2e::read("fuzz/Cargo.toml");
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml has {bins} targets, this test knows {}", TARGETS.len());
}

/// The failure path works: the `selftest` pseudo-target of `replay` has a planted bug (it
/// panics on an input holding a NUL byte followed by 0xff) that the mutator finds within a few
/// hundred runs; `selftest_hang` never returns on it, which the watchdog turns into a failure.
#[test]
fn short_fuzzing_reports_saves_and_replays_a_failure() {
    let dir = repo_root().join("target/fuzz-mutate-selftest");
    let _ = std::fs::remove_dir_all(&dir);
    let out_dir = dir.to_str().unwrap();

    let (code, out) = replay(&["--mutate", "20", "--seed", "1", "--out", out_dir, "selftest"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("mutate: selftest: FAILED at run #"), "{out}");
    assert!(out.contains("selftest: the planted bug"), "no panic message:\n{out}");
    assert_eq!(runs_of(&out, "selftest").map(|(_, f)| f), Some(1), "{out}");
    let saved: Vec<PathBuf> = std::fs::read_dir(dir.join("selftest")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("crash-") && name.len() == "crash-".len() + 16, "{name}");
    assert!(out.contains(&saved[0].display().to_string()), "path not printed:\n{out}");
    let input = std::fs::read(&saved[0]).unwrap();
    assert!(input.windows(2).any(|w| w == [0, 0xff]), "{input:?}");
    // The saved input replays as a failure; the seed reproduces the same run.
    let (code, _) = replay(&["selftest", saved[0].to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let again = replay(&["--mutate", "20", "--seed", "1", "--out", out_dir, "selftest"]).1;
    let failing_run = |o: &str| o.lines().find(|l| l.contains("FAILED at run #")).map(str::to_owned);
    assert_eq!(failing_run(&again), failing_run(&out), "the same seed found another input");

    let (code, out) = replay(&["--mutate", "20", "--seed", "1", "--timeout", "0.5", "--out", out_dir, "selftest_hang"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("mutate: selftest_hang: FAILED: an input ran for"), "{out}");
    let saved: Vec<PathBuf> =
        std::fs::read_dir(dir.join("selftest_hang")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(saved.len() == 1 && saved[0].file_name().unwrap().to_str().unwrap().starts_with("timeout-"), "{saved:?}");
}
