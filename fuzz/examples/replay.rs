//! Replays fuzz inputs through the same checks as the fuzz targets, natively, without libFuzzer.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay            # every corpus
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- sse FILE  # given files
//! ```
//!
//! With no arguments: every file of `fuzz/corpus/<target>/` for every target; a target whose
//! corpus is missing or empty is a failure. With `TARGET FILE...`: those files through that
//! target (or through one of the stricter `REGRESSIONS` checks). Prints one line per target (`replay: NAME: N inputs, B bytes, F failed, T ms`) and
//! one `FAILED` line per failing input, and exits 1 if any input failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Instant;

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn run(name: &str, check: fn(&[u8]), files: &[PathBuf]) -> (usize, usize) {
    let start = Instant::now();
    let mut failed = 0;
    let mut bytes = 0;
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        bytes += data.len();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed += 1;
            println!("FAILED {name} {}", file.display());
        }
    }
    println!(
        "replay: {name}: {} inputs, {bytes} bytes, {failed} failed, {} ms",
        files.len(),
        start.elapsed().as_millis()
    );
    (files.len(), failed)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lookup = |name: &str| {
        tollgate_fuzz::TARGETS
            .iter()
            .chain(tollgate_fuzz::REGRESSIONS)
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .unwrap_or_else(|| {
                let names: Vec<&str> = tollgate_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
                eprintln!("unknown target {name:?}; targets: {}", names.join(" "));
                std::process::exit(2)
            })
    };
    let mut any_failed = false;
    if let Some((target, files)) = args.split_first() {
        let check = lookup(target);
        let files: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| {
                let p = PathBuf::from(f);
                if p.is_dir() {
                    files_of(&p)
                } else {
                    vec![p]
                }
            })
            .collect();
        let (_, failed) = run(target, check, &files);
        any_failed = failed > 0;
    } else {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, check) in tollgate_fuzz::TARGETS {
            let files = files_of(&corpus.join(name));
            if files.is_empty() {
                println!("FAILED {name}: no corpus in {}", corpus.join(name).display());
                any_failed = true;
                continue;
            }
            let (_, failed) = run(name, *check, &files);
            any_failed |= failed > 0;
        }
    }
    std::process::exit(i32::from(any_failed));
}
