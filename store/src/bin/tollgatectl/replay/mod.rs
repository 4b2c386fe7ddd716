//! `tollgatectl replay --config NEW.json [--compare OLD.json] [--format json] [--plot FILE.svg]
//! [--show-keys] [--top N] LOG...`: recorded traffic through the filter's own core, natively,
//! in simulated time, and what the configuration would have done with it.
//!
//! Reading order: `input` (files, gzip, merging in time order) → `json_line` and `envoy_text`
//! (the formats) → `record` → `simulate` (the limiter in log time) → `report` (text and JSON)
//! → `plot` (SVG); `progress` draws a bar on a terminal.

mod envoy_text;
mod input;
mod json_line;
mod plot;
mod progress;
mod record;
mod report;
mod simulate;

use tollgate_core::config::Config;

use crate::cli::{usage, Args, Fail};
use input::Input;
use report::{Changes, Output, Report};
use simulate::Sim;

/// Keys listed per rule unless `--top` says otherwise.
const DEFAULT_TOP: usize = 10;

fn load(path: &str) -> Result<Config, Fail> {
    let bytes = std::fs::read(path).map_err(|e| Fail::Error(format!("cannot read {path}: {e}")))?;
    Config::parse(&bytes).map_err(|e| Fail::Error(format!("{path}: {e}")))
}

/// Run `tollgatectl replay` with the arguments after `replay`.
pub fn run(rest: &[String]) -> Result<(), Fail> {
    let args = Args::parse(rest, &["config", "compare", "format", "plot", "top"], &["show-keys"])?;
    for common in ["store", "token", "admin", "reason"] {
        if args.value(common).is_some() {
            return Err(usage(format!("replay takes no --{common}")));
        }
    }
    let config_path = args.value("config").ok_or_else(|| usage("replay needs --config NEW.json"))?;
    let json = match args.value("format").unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => return Err(usage(format!("--format {other:?}: expected text or json"))),
    };
    let top = match args.value("top") {
        None => DEFAULT_TOP,
        Some(n) => {
            n.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| usage("--top takes 1 to 1000"))?
        }
    };
    if args.positionals.is_empty() {
        return Err(usage("replay needs at least one LOG file (- for standard input)"));
    }
    let show_keys = args.flag("show-keys");
    let new_config = load(config_path)?;
    let old_config = args.value("compare").map(load).transpose()?;
    let mut input = Input::open(&args.positionals).map_err(Fail::Error)?;

    let mut new = Sim::new(new_config).map_err(Fail::Error)?;
    let mut new_report = Report::new(config_path, &new, show_keys);
    let mut old = match (&old_config, args.value("compare")) {
        (Some(c), Some(path)) => {
            let sim = Sim::new(c.clone()).map_err(Fail::Error)?;
            let report = Report::new(path, &sim, show_keys);
            Some((sim, report, Changes::default()))
        }
        _ => None,
    };
    let mut progress = progress::Progress::new();
    while let Some(record) = input.next_record().map_err(Fail::Error)? {
        let nd = new.decide(&record);
        new_report.record(&new, &record, &nd);
        if let Some((sim, report, changes)) = old.as_mut() {
            let od = sim.decide(&record);
            report.record(sim, &record, &od);
            changes.record(&record, (sim, &od), (&new, &nd), show_keys);
        }
        if new_report.requests.is_multiple_of(4096) {
            progress.tick(&input, new_report.requests);
        }
    }
    progress.done();
    let seconds = progress.elapsed().as_secs_f64();

    if let Some(path) = args.value("plot") {
        let svg = plot::svg(&new_report, old.as_ref().map(|(_, r, _)| r));
        std::fs::write(path, svg).map_err(|e| Fail::Error(format!("cannot write {path}: {e}")))?;
    }
    let out = Output {
        files: &args.positionals,
        input: &input.stats,
        new: &new_report,
        old: old.as_ref().map(|(_, r, _)| r),
        changes: old.as_ref().map(|(_, _, c)| c),
        top,
        seconds,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out.to_json()).unwrap_or_default());
    } else {
        print!("{}", out.to_text());
    }
    Ok(())
}
