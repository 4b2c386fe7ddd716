//! The fuzz crate's `replay` example (fuzz/examples/replay.rs), for the tests that replay the
//! corpora (`hardening::fuzz_corpus`) and fuzz briefly (`hardening::fuzz_short`). The fuzz crate
//! is its own workspace (not a member of this one), so it is built with cargo, without the
//! libFuzzer runtime (`--no-default-features`), into `target/fuzz-replay/`.

use crate::repo_root;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The fuzz targets, in fuzz/Cargo.toml's order.
pub const TARGETS: [&str; 8] = ["config", "keys", "usage_json", "sse", "duration", "response", "algorithm", "limiter"];

/// The `replay` example of the fuzz crate, built from the current sources.
pub fn replay_bin() -> PathBuf {
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
pub fn replay(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(replay_bin()).args(args).current_dir(repo_root()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{stdout}\n{stderr}");
    }
    (out.status.code(), stdout)
}
