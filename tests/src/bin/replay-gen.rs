//! `replay-gen`: writes a synthetic access log for `tollgatectl replay` (the throughput
//! benchmark of `make replay-bench`, docs/benchmarks.md).
//!
//! `replay-gen [--lines N] [--keys K] [--format json|text|jsonl] [--start-ms MS]`: N lines
//! (default 1,000,000) at 1,000 requests per second from K API keys (default 5,000), in
//! Envoy's JSON access-log format (default), its default text format, or JSON Lines, to stdout.
//!
//! `replay-gen --known LIMIT [--minutes M] [--burst B]`: instead, the traffic whose outcome
//! is known by construction against LIMIT requests per minute (`access_log::known`: a key at
//! twice the limit, one at half, a burst of B); examples/replay/access.log is
//! `replay-gen --known 10 --burst 20`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use tollgate_e2e::access_log::{envoy_json, envoy_text, jsonl, known, synthetic};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        value(name)
            .map(|v| v.parse::<u64>().map_err(|_| format!("{name} {v:?} is not a number")))
            .unwrap_or(Ok(default))
    };
    let run = || -> Result<(), String> {
        let lines = number("--lines", 1_000_000)?;
        let keys = number("--keys", 5_000)?;
        let start = number("--start-ms", 1_764_547_200_000)?; // 2025-12-01T00:00:00Z
        let format: fn(&tollgate_e2e::access_log::Entry) -> String = match value("--format").as_deref() {
            None | Some("json") => envoy_json,
            Some("text") => envoy_text,
            Some("jsonl") => jsonl,
            Some(other) => return Err(format!("--format {other:?}: expected json, text or jsonl")),
        };
        let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        if value("--known").is_some() {
            let entries = known(start, number("--minutes", 3)?, number("--known", 10)?, number("--burst", 20)?);
            for e in &entries {
                writeln!(out, "{}", format(e)).map_err(|e| e.to_string())?;
            }
            return out.flush().map_err(|e| e.to_string());
        }
        for e in synthetic(start, lines, keys) {
            writeln!(out, "{}", format(&e)).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replay-gen: {e}");
            ExitCode::from(2)
        }
    }
}
