//! Tollgate's core: rate limiting for Envoy and Istio, knowing no host. Everything here is pure
//! logic, compiled and tested natively and on wasm32; the hosts (host/wasm: the proxy-wasm
//! filter) carry out what it decides.
//!
//! Read top-down; each module depends only on those above it:
//! - `time`: nanoseconds, durations, calendar periods, RFC 3339;
//! - `engine`: the five algorithms over a bounded slot table of shared counters, exact across
//!   workers (compare-and-swap), key hashes;
//! - `request`: the view of one request, its key sources, match conditions, address blocks;
//! - `config`: the plugin configuration, read and validated with field paths;
//! - `llm`: what an LLM request asks for and what its response used (usage in JSON and SSE);
//! - `global`: rules shared by many proxies (the store's wire types, leases);
//! - `overrides`: allow-lists, emergency access, grants and per-key limits from the store;
//! - `response`: rate-limit headers and error bodies in each provider's shape;
//! - `limiter`: one request through the rules;
//! - `metrics`: metric names and one worker's tally;
//! - `filter`: the whole filter over any host (`Host`, `Stream`, `Worker`, `Flow`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod engine;
pub mod filter;
pub mod global;
pub mod limiter;
pub mod llm;
pub mod metrics;
pub mod overrides;
pub mod request;
pub mod response;
pub mod time;

/// The module tree reads top-down: no module depends on one that depends back on it.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod layout {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// `crate::X` references in a module's files (test code left out).
    fn uses(dir: &Path, module: &str, modules: &BTreeSet<String>, out: &mut BTreeSet<String>) {
        let mut files = Vec::new();
        let folder = dir.join(module);
        let mut stack = vec![folder];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    files.push(p);
                }
            }
        }
        files.push(dir.join(format!("{module}.rs")));
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "tests.rs" || name == "testing.rs" {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            let code = text.split("mod tests {").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + 7..];
                let word: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if word != module && modules.contains(&word) {
                    out.insert(word);
                }
            }
        }
    }

    #[test]
    fn no_module_depends_on_one_that_depends_back_on_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let modules: BTreeSet<String> =
            lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).map(String::from).collect();
        assert!(modules.len() >= 10, "{modules:?}");
        let graph: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .map(|m| {
                let mut out = BTreeSet::new();
                uses(&src, m, &modules, &mut out);
                (m.clone(), out)
            })
            .collect();
        let reaches = |from: &str, to: &str| {
            let (mut seen, mut stack) = (BTreeSet::new(), vec![from.to_string()]);
            while let Some(m) = stack.pop() {
                if m == to {
                    return true;
                }
                if seen.insert(m.clone()) {
                    stack.extend(graph.get(&m).into_iter().flatten().cloned());
                }
            }
            false
        };
        for (m, deps) in &graph {
            for d in deps {
                assert!(!reaches(d, m), "{m} uses {d}, which leads back to {m}: {graph:#?}");
            }
        }
        // And the reading order of this file's documentation is a valid order.
        let order: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("//! - `")?.split('`').next()).collect();
        assert_eq!(order.len(), modules.len(), "every module is in the reading order: {order:?}");
        for (i, m) in order.iter().enumerate() {
            for d in graph.get(*m).into_iter().flatten() {
                let at = order.iter().position(|o| o == d);
                assert!(at.is_some_and(|at| at < i), "{m} uses {d}, listed after it in the reading order");
            }
        }
    }
}
