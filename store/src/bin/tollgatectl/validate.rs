//! `tollgatectl validate CONFIG.json...`: the filter's own configuration parser, natively: a
//! summary of each valid file's rules, or the error Envoy would log.

use std::io::Write;
use std::process::ExitCode;

use tollgate_core::config::Config;

/// `tollgatectl validate FILE...`: exit 0 when every file is a valid configuration.
pub fn run(args: &[String], usage: &str) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{usage}");
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
