//! Tollgate's end-to-end tests: one test binary (adding a test never adds a link step), its
//! modules named by the behaviour they cover, each opened by a comment saying what. They run
//! the real parts (Envoy from .venv with tollgate.wasm, Redis, tollgate-store, tollgatectl, the
//! provider SDKs, Chromium) against the mock LLM upstream, all on 127.0.0.1 with ports chosen
//! at run time; the helpers they share are the harness, `tollgate_e2e` (tests/src/).
//!
//! A failure names its module: `test hardening::limits::... FAILED`. Run one module with
//! `cargo test -p tollgate-e2e --test e2e -- hardening::`, one test by its name.
//!
//! Needs `make build` (tollgate.wasm) and `cargo build --workspace --bins --exclude
//! tollgate-bench` first (`make test` does both); a missing tool fails with how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod body_phase;
mod config;
mod deploy;
mod engine;
mod foundation;
mod global;
mod hardening;
mod keys;
mod llm;
mod metrics;
mod mock_llm;
mod replay;
mod store;
mod throttle;
mod tutorials;

use std::path::Path;

/// Every `.rs` file under tests/tests/ is a module of this binary (an undeclared file would
/// never be compiled, a file beside e2e/ would be a binary of its own).
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let root = tollgate_e2e::repo_root().join("tests/tests");
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        if entry.path().is_file() {
            stray.push(tollgate_e2e::rel(&entry.path()));
        }
    }
    fn walk(dir: &Path, stray: &mut Vec<String>) {
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        let parent = if dir.join("main.rs").is_file() { dir.join("main.rs") } else { dir.join("mod.rs") };
        let declared = std::fs::read_to_string(&parent).unwrap_or_default();
        for path in files {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !declared.contains(&format!("mod {stem};")) {
                    stray.push(tollgate_e2e::rel(&path));
                }
                walk(&path, stray);
            } else if stem != "main" && stem != "mod" && !declared.contains(&format!("mod {stem};")) {
                stray.push(tollgate_e2e::rel(&path));
            }
        }
    }
    walk(&root.join("e2e"), &mut stray);
    assert!(stray.is_empty(), "not a module of tests/tests/e2e/main.rs (declare them with `mod`): {stray:?}");
}
