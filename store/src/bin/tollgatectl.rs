//! `tollgatectl`: the Tollgate admin CLI (contract §5).
//!
//! `validate` runs the filter's own configuration parser natively, so it reports exactly what
//! Envoy would log after `invalid configuration: `. The store commands (`keys`, `overrides`,
//! `audit`, `stats`) need the tollgate-store admin API and are not implemented yet.
//!
//! Exit codes: 0 success; 1 an invalid or unreadable configuration; 2 a usage error or a
//! command that is not implemented yet.

use std::io::Write;
use std::process::ExitCode;
use tollgate::config::Config;

const USAGE: &str = "\
tollgatectl: the Tollgate admin CLI

Usage:
  tollgatectl validate CONFIG.json [CONFIG.json ...]
      Check plugin configurations with the filter's own parser (the same errors Envoy
      logs after \"invalid configuration: \"). Prints `CONFIG.json: ok (N rules: ...)`,
      or `CONFIG.json: PATH: REASON` on stderr. `-` reads standard input.

  Against a tollgate-store (admin API; not implemented yet):
  tollgatectl keys status KEY              A key's counters and limits
  tollgatectl keys limits KEY ...          Set a key's per-key limits or tier
  tollgatectl keys reset KEY               Reset a key's counters
  tollgatectl overrides add ...            Add an override: allow_key, allow_ip, emergency, grant
  tollgatectl overrides list               List the active overrides
  tollgatectl overrides remove ID          Remove an override
  tollgatectl audit                        Show the admin audit log
  tollgatectl stats                        Show the store's statistics

Options:
  -h, --help       Show this help
  -V, --version    Show the version

Exit status: 0 ok; 1 invalid or unreadable configuration; 2 usage error or a command
that is not implemented yet.
";

/// The store-backed commands of contract §5, not implemented yet.
const STORE_COMMANDS: &[&str] = &["keys", "overrides", "audit", "stats"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("tollgatectl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "validate" => validate(&args[1..]),
        c if STORE_COMMANDS.contains(&c) => {
            eprintln!("tollgatectl {c}: not implemented yet: needs tollgate-store admin API");
            ExitCode::from(2)
        }
        other => {
            eprintln!("tollgatectl: unknown command {other:?}\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `tollgatectl validate FILE...`: exit 0 when every file is a valid configuration.
fn validate(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.is_empty() {
        eprintln!("tollgatectl validate: missing CONFIG.json (usage: tollgatectl validate CONFIG.json)");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for file in args {
        match check_file(file) {
            Ok(summary) => println!("{file}: ok ({summary})"),
            Err(message) => {
                all_ok = false;
                eprintln!("{file}: {message}");
            }
        }
    }
    let _ = std::io::stdout().flush();
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Parse one file: a summary of its rules, or the error text.
fn check_file(file: &str) -> Result<String, String> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(file).map_err(|e| format!("cannot read the file: {e}"))?
    };
    let config = Config::parse(&bytes).map_err(|e| e.to_string())?;
    Ok(summary(&config))
}

/// `2 rules: per-key-rpm, per-ip [disabled]`, with a note when the filter is off.
fn summary(config: &Config) -> String {
    let names: Vec<String> = config
        .rules
        .iter()
        .map(|r| if r.enabled { r.name.clone() } else { format!("{} [disabled]", r.name) })
        .collect();
    let count = match names.len() {
        1 => "1 rule".to_string(),
        n => format!("{n} rules"),
    };
    let mut out = if names.is_empty() { count } else { format!("{count}: {}", names.join(", ")) };
    if !config.enabled {
        out.push_str("; the filter is disabled (\"enabled\": false)");
    }
    out
}
