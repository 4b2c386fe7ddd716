//! `tollgatectl`: the Tollgate admin CLI (contract §5).
//!
//! `validate` (`validate.rs`) runs the filter's own configuration parser natively, so it reports
//! exactly what Envoy would log after `invalid configuration: `. `replay` (`replay/`) runs
//! recorded traffic through the filter's own core natively, in simulated time. The store
//! commands (`keys`, `overrides`, `audit`, `stats`; `admin.rs`, over `http.rs`, printed with
//! `table.rs`) call the tollgate-store admin API (docs/admin.md). `cli.rs`: arguments and
//! failures, shared by all.
//!
//! Exit codes: 0 success; 1 an invalid or unreadable configuration, or a store command that
//! failed (store unreachable, request refused); 2 a usage error.

mod admin;
mod cli;
mod http;
mod replay;
mod table;
mod validate;

use std::process::ExitCode;

const USAGE: &str = "\
tollgatectl: the Tollgate admin CLI

Usage:
  tollgatectl validate CONFIG.json [CONFIG.json ...]
      Check plugin configurations with the filter's own parser (the same errors Envoy
      logs after \"invalid configuration: \"). Prints `CONFIG.json: ok (N rules: ...)`,
      or `CONFIG.json: PATH: REASON` on stderr. `-` reads standard input.

  tollgatectl replay --config NEW.json [--compare OLD.json] [--format text|json]
                     [--plot FILE.svg] [--show-keys] [--top N] LOG...
      Replay recorded traffic through the filter's own core, in the logs' time, and report
      what NEW.json would have done: per rule allowed/denied/throttled/shadow, the keys
      denied most (hashed unless --show-keys), first and last denial, periods where the
      remaining quota ran low; with --compare, the requests whose outcome changes.
      LOG: Envoy access logs in JSON (json_format, Istio's JSON) or the default text
      format, or JSON Lines of requests; gzip too; - reads standard input. Lines that
      cannot be read are counted and shown. --plot draws allowed and denied per rule
      over time. See the README, section \"Try a config on recorded traffic\".

  Against a tollgate-store (its admin API, docs/admin.md). KEY is the raw API key (the
  store hashes it; with --hash, KEY is a 16-hex-digit key hash, e.g. from `stats`):
  tollgatectl keys status KEY [--hash]
      A key's counters at the store (used, remaining, reset), its per-key limits and the
      overrides that apply to it
  tollgatectl keys limits KEY [--hash]
      Show a key's per-key limits
  tollgatectl keys limits KEY [--tier TIER] [--limit RULE=N]... [--burst RULE=N]... --reason TEXT
      Set them (replacing what was there); --remove --reason TEXT removes them
  tollgatectl keys reset KEY [--hash] --reason TEXT
      Delete the key's counters at the store (a fresh start for every global rule)
  tollgatectl overrides add --kind KIND [--target T] [--unlimited | --multiplier X]
                            (--ttl DURATION | --expires-at RFC3339) --reason TEXT
      KIND: allow_key (--target KEY), allow_ip (--target IP or CIDR), emergency (no
      target: nothing is limited), grant (--target KEY with --unlimited or --multiplier)
  tollgatectl overrides list [--all]
      The active overrides (--all: also those expired in the last 24 h)
  tollgatectl overrides remove ID --reason TEXT
  tollgatectl audit [--key KEY | --key-hash H] [--admin NAME] [--action A]
                    [--since T] [--until T] [--limit N]
      Admin writes, newest first; T is RFC 3339 or a duration ago (15m, 2h, 7d)
  tollgatectl stats [--top N]
      Allowed/denied per rule and per proxy, hit rate, leases, top violators by key hash,
      IP, endpoint

Store options:
  --store URL      The store [TOLLGATE_STORE_URL] (default http://127.0.0.1:8080)
  --token T        The admin token [TOLLGATE_ADMIN_TOKEN] (required)
  --admin NAME     Who makes a change, for the audit log [TOLLGATE_ADMIN, else USER]
  --reason TEXT    Why (required for every change)
  --json           Print the store's JSON answer instead of a table

Options:
  -h, --help       Show this help
  -V, --version    Show the version

Exit status: 0 ok; 1 invalid or unreadable configuration or log file, or a store command
that failed (store unreachable, request refused: one line on stderr); 2 usage error.
";

/// The store-backed commands of contract §5.
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
        "validate" => validate::run(&args[1..], USAGE),
        "replay" => {
            let rest = &args[1..];
            if rest.iter().any(|a| a == "-h" || a == "--help") {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            match replay::run(rest) {
                Ok(()) => ExitCode::SUCCESS,
                Err(fail) => fail.exit(),
            }
        }
        c if STORE_COMMANDS.contains(&c) => {
            let rest = &args[1..];
            if rest.iter().any(|a| a == "-h" || a == "--help") {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            match admin::run(c, rest, &|name| std::env::var(name).ok()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(fail) => fail.exit(),
            }
        }
        other => {
            eprintln!("tollgatectl: unknown command {other:?}\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
