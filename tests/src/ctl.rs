//! `tollgatectl`, the real binary built from the current sources (`cargo test` does not build
//! another package's binaries, and a stale binary would test old code), and what it printed.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{repo_root, workspace_bin};

/// The built `tollgatectl`, built once per test process.
pub fn tollgatectl() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo =
                std::env::var("CARGO").ok().or(option_env!("CARGO").map(String::from)).unwrap_or("cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-q", "-p", "tollgate-store", "--bin", "tollgatectl"]).current_dir(repo_root());
            if std::env::current_exe().unwrap().components().any(|c| c.as_os_str() == "release") {
                cmd.arg("--release");
            }
            assert!(cmd.status().unwrap().success(), "cargo build -p tollgate-store --bin tollgatectl failed");
            workspace_bin("tollgatectl")
        })
        .clone()
}

/// Run `tollgatectl ARGS` in the repository root.
pub fn run(args: &[&str]) -> Output {
    Command::new(tollgatectl()).args(args).current_dir(repo_root()).output().unwrap()
}

/// Run `tollgatectl ARGS` with only the environment `env` (no inherited variables).
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(tollgatectl()).args(args).env_clear().envs(env.iter().copied()).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
