//! What a replay found: per rule allowed / denied / throttled / shadow counts, the keys denied
//! most, the first and last denial, the periods where the remaining quota ran low, a time
//! series for the plot; with `--compare`, the requests whose outcome changed. Rendered as
//! text tables or as JSON (`--format json`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use tollgate_core::limiter::RuleStatus;
use tollgate_core::time::rfc3339::format_ms;

use super::input::InputStats;
use super::record::Record;
use super::simulate::{Decision, Fate, KeyId, Sim};
use crate::table;

/// Most buckets of the time series: the bucket doubles when the logs span more.
pub const MAX_BUCKETS: usize = 2048;

/// Decisions in one time bucket of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub allowed: u64,
    pub denied: u64,
    pub throttled: u64,
    /// Decisions with at least 80 % of the capacity used.
    pub near_limit: u64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.allowed += o.allowed;
        self.denied += o.denied;
        self.throttled += o.throttled;
        self.near_limit += o.near_limit;
    }

    pub fn decisions(&self) -> u64 {
        self.allowed + self.denied + self.throttled
    }
}

/// Time buckets shared by every rule (one origin, one width).
#[derive(Clone, Debug)]
pub struct Timeline {
    pub origin_ns: u64,
    pub bucket_ns: u64,
}

/// One rule's totals.
#[derive(Clone, Debug, Default)]
pub struct RuleStats {
    pub name: String,
    pub allowed: u64,
    pub denied: u64,
    pub throttled: u64,
    pub shadow_denied: u64,
    pub degraded: u64,
    pub unlimited: u64,
    pub missing_key: u64,
    pub near_limit: u64,
    pub first_denial_ns: Option<u64>,
    pub last_denial_ns: Option<u64>,
    /// Denials (or would-be denials of a shadow rule) by key.
    pub keys: HashMap<KeyId, u64>,
    pub series: Vec<Bucket>,
}

/// The report of one configuration over the logs.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: String,
    pub rules: Vec<RuleStats>,
    pub fates: BTreeMap<Fate, u64>,
    pub overridden: u64,
    pub requests: u64,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub timeline: Timeline,
    pub global_rules: usize,
    /// Raw keys by hash, for `--show-keys`.
    pub raw: HashMap<u64, String>,
    pub show_keys: bool,
}

impl Report {
    pub fn new(config: &str, sim: &Sim, show_keys: bool) -> Report {
        let rules = sim
            .limiter
            .config
            .rules
            .iter()
            .map(|r| RuleStats { name: r.name.clone(), ..RuleStats::default() })
            .collect();
        Report {
            config: config.to_string(),
            rules,
            fates: BTreeMap::new(),
            overridden: 0,
            requests: 0,
            first_ns: None,
            last_ns: None,
            timeline: Timeline { origin_ns: 0, bucket_ns: 1_000_000_000 },
            global_rules: sim.global_rules,
            raw: HashMap::new(),
            show_keys,
        }
    }

    /// The bucket index of `t`, widening every series when `t` is beyond the last bucket.
    fn bucket(&mut self, t: u64) -> usize {
        if self.first_ns.is_none() {
            self.timeline.origin_ns = t - t % self.timeline.bucket_ns;
        }
        loop {
            let i = (t.saturating_sub(self.timeline.origin_ns) / self.timeline.bucket_ns) as usize;
            if i < MAX_BUCKETS {
                return i;
            }
            // Twice as wide, aligned to the new width: the origin may move back one old bucket.
            let old_width = self.timeline.bucket_ns;
            self.timeline.bucket_ns *= 2;
            let origin = self.timeline.origin_ns - self.timeline.origin_ns % self.timeline.bucket_ns;
            let shift = (self.timeline.origin_ns - origin) / old_width;
            self.timeline.origin_ns = origin;
            for r in &mut self.rules {
                if shift == 1 && !r.series.is_empty() {
                    r.series.insert(0, Bucket::default());
                }
                r.series = merge_pairs(&r.series);
            }
        }
    }

    pub fn record(&mut self, sim: &Sim, r: &Record, d: &Decision) {
        let t = r.time_ns;
        let b = self.bucket(t);
        self.first_ns.get_or_insert(t);
        self.last_ns = Some(t);
        self.requests += 1;
        *self.fates.entry(d.fate).or_insert(0) += 1;
        if d.overridden {
            self.overridden += 1;
        }
        for o in &d.rules {
            let Some(stats) = self.rules.get_mut(o.rule) else { continue };
            if stats.series.len() <= b {
                stats.series.resize(b + 1, Bucket::default());
            }
            let bucket = &mut stats.series[b];
            if o.near_limit {
                stats.near_limit += 1;
                bucket.near_limit += 1;
            }
            let denial = match o.status {
                RuleStatus::Allowed => {
                    stats.allowed += 1;
                    bucket.allowed += 1;
                    false
                }
                RuleStatus::Unlimited => {
                    stats.unlimited += 1;
                    bucket.allowed += 1;
                    false
                }
                RuleStatus::Degraded => {
                    stats.degraded += 1;
                    bucket.denied += 1;
                    true
                }
                RuleStatus::Throttled => {
                    stats.throttled += 1;
                    bucket.throttled += 1;
                    false
                }
                RuleStatus::Denied => {
                    stats.denied += 1;
                    bucket.denied += 1;
                    true
                }
                RuleStatus::ShadowDenied => {
                    stats.shadow_denied += 1;
                    bucket.denied += 1;
                    true
                }
                // A refusal that is not a rate limit (403 missing key, 400 unknown model).
                RuleStatus::MissingKey | RuleStatus::UnknownModel => {
                    stats.missing_key += 1;
                    bucket.denied += 1;
                    true
                }
            };
            if denial {
                stats.first_denial_ns.get_or_insert(t);
                stats.last_denial_ns = Some(t);
                let (key, raw) = sim.key_of(o.rule, r);
                if self.show_keys {
                    if let (Some(h), Some(raw)) = (key.hash, raw) {
                        self.raw.entry(h).or_insert(raw);
                    }
                }
                *self.rules[o.rule].keys.entry(key).or_insert(0) += 1;
            }
        }
    }

    pub fn key_text(&self, k: &KeyId) -> String {
        match k.hash {
            None => "(key missing)".into(),
            Some(h) if self.show_keys => self.raw.get(&h).cloned().unwrap_or_else(|| format!("{h:016x}")),
            Some(h) => format!("{h:016x}"),
        }
    }

    /// The `n` keys with the most denials of a rule.
    pub fn top_keys(&self, rule: &RuleStats, n: usize) -> Vec<(String, u64)> {
        let mut keys: Vec<(&KeyId, &u64)> = rule.keys.iter().collect();
        keys.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.hash.cmp(&b.0.hash)));
        keys.into_iter().take(n).map(|(k, c)| (self.key_text(k), *c)).collect()
    }

    /// Periods where the remaining quota ran low (decisions at ≥ 80 % used): runs of
    /// consecutive buckets with such decisions, most first: (from, to, near-limit, decisions).
    pub fn low_periods(&self, rule: &RuleStats, n: usize) -> Vec<(u64, u64, u64, u64)> {
        let mut runs: Vec<(u64, u64, u64, u64)> = Vec::new();
        let mut current: Option<(usize, usize, u64, u64)> = None;
        for (i, b) in rule.series.iter().enumerate() {
            match (&mut current, b.near_limit > 0) {
                (Some(c), true) => {
                    c.1 = i;
                    c.2 += b.near_limit;
                    c.3 += b.decisions();
                }
                (None, true) => current = Some((i, i, b.near_limit, b.decisions())),
                (Some(c), false) => {
                    runs.push(self.run(c));
                    current = None;
                }
                (None, false) => {}
            }
        }
        if let Some(c) = &current {
            runs.push(self.run(c));
        }
        runs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        runs.truncate(n);
        runs
    }

    fn run(&self, c: &(usize, usize, u64, u64)) -> (u64, u64, u64, u64) {
        let start = self.timeline.origin_ns + c.0 as u64 * self.timeline.bucket_ns;
        let end = self.timeline.origin_ns + (c.1 as u64 + 1) * self.timeline.bucket_ns;
        (start, end, c.2, c.3)
    }

    pub fn to_json(&self, top: usize) -> Value {
        let fates: serde_json::Map<String, Value> = self.fates.iter().map(|(f, n)| (f.label(), json!(n))).collect();
        json!({
            "config": self.config,
            "requests": self.requests,
            "outcomes": fates,
            "overridden": self.overridden,
            "first": self.first_ns.map(time),
            "last": self.last_ns.map(time),
            "rules": self.rules.iter().map(|r| json!({
                "rule": r.name,
                "allowed": r.allowed,
                "denied": r.denied,
                "throttled": r.throttled,
                "shadow_denied": r.shadow_denied,
                "degraded": r.degraded,
                "unlimited": r.unlimited,
                "missing_key": r.missing_key,
                "near_limit": r.near_limit,
                "first_denial": r.first_denial_ns.map(time),
                "last_denial": r.last_denial_ns.map(time),
                "top_denied_keys": self.top_keys(r, top).into_iter()
                    .map(|(k, n)| json!({"key": k, "denied": n})).collect::<Vec<_>>(),
                "low_periods": self.low_periods(r, 3).into_iter()
                    .map(|(from, to, near, all)| json!({"from": time(from), "to": time(to), "near_limit": near, "decisions": all}))
                    .collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn merge_pairs(series: &[Bucket]) -> Vec<Bucket> {
    series
        .chunks(2)
        .map(|c| {
            let mut b = Bucket::default();
            for x in c {
                b.add(x);
            }
            b
        })
        .collect()
}

/// RFC 3339 with milliseconds, UTC.
pub fn time(ns: u64) -> String {
    format_ms(ns / 1_000_000)
}

/// A duration as the configuration writes them (`2s`, `1m`, `1h30m` rounded down to s).
fn span(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{}ms", ns / 1_000_000),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One request whose outcome changed between two configurations.
#[derive(Clone, Debug)]
pub struct Change {
    pub time_ns: u64,
    pub method: String,
    pub path: String,
    pub from: Fate,
    pub to: Fate,
    pub rule: String,
    pub key: String,
}

/// The requests whose outcome changes from OLD to NEW.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub total: u64,
    /// (from, to) → count.
    pub transitions: BTreeMap<(Fate, Fate), u64>,
    /// (from, to, rule) → count, and (from, to, rule, key) → count.
    pub by_rule: HashMap<(Fate, Fate, String), u64>,
    pub by_key: HashMap<(Fate, Fate, String, String), u64>,
    pub examples: Vec<Change>,
}

/// Examples of changed requests kept.
pub const CHANGE_EXAMPLES: usize = 10;

impl Changes {
    /// Compare the decisions on one record; `old` and `new` are the two simulations.
    pub fn record(&mut self, r: &Record, (old, od): (&Sim, &Decision), (new, nd): (&Sim, &Decision), raw: bool) {
        if od.fate == nd.fate {
            return;
        }
        self.total += 1;
        *self.transitions.entry((od.fate, nd.fate)).or_insert(0) += 1;
        // The rule that made the difference: the one that denied or held (in the config
        // where the request fared worse).
        let worse_in_new = nd.fate > od.fate;
        let (sim, d) = if worse_in_new { (new, nd) } else { (old, od) };
        let rule = d.denied_by.or_else(|| d.throttled_by());
        let (rule_name, key) = match rule {
            Some(i) => {
                let (k, text) = sim.key_of(i, r);
                let key = match (k.hash, raw) {
                    (None, _) => "(key missing)".to_string(),
                    (Some(_), true) => text.unwrap_or_default(),
                    (Some(h), false) => format!("{h:016x}"),
                };
                (sim.rule_name(i).to_string(), key)
            }
            None => ("(none)".to_string(), "-".to_string()),
        };
        *self.by_rule.entry((od.fate, nd.fate, rule_name.clone())).or_insert(0) += 1;
        *self.by_key.entry((od.fate, nd.fate, rule_name.clone(), key.clone())).or_insert(0) += 1;
        if self.examples.len() < CHANGE_EXAMPLES {
            self.examples.push(Change {
                time_ns: r.time_ns,
                method: r.method.clone(),
                path: r.path.clone(),
                from: od.fate,
                to: nd.fate,
                rule: rule_name,
                key,
            });
        }
    }

    fn sorted<K: Clone + Ord>(map: &HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = map.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    pub fn to_json(&self, top: usize) -> Value {
        json!({
            "changed": self.total,
            "transitions": self.transitions.iter().map(|((f, t), n)| json!({"from": f.label(), "to": t.label(), "requests": n})).collect::<Vec<_>>(),
            "by_rule": Changes::sorted(&self.by_rule, usize::MAX).into_iter().map(|((f, t, rule), n)| json!({"from": f.label(), "to": t.label(), "rule": rule, "requests": n})).collect::<Vec<_>>(),
            "by_key": Changes::sorted(&self.by_key, top).into_iter().map(|((f, t, rule, key), n)| json!({"from": f.label(), "to": t.label(), "rule": rule, "key": key, "requests": n})).collect::<Vec<_>>(),
            "examples": self.examples.iter().map(|c| json!({"time": time(c.time_ns), "method": c.method, "path": c.path, "from": c.from.label(), "to": c.to.label(), "rule": c.rule, "key": c.key})).collect::<Vec<_>>(),
        })
    }
}

/// Everything the command prints.
pub struct Output<'a> {
    pub files: &'a [String],
    pub input: &'a InputStats,
    pub new: &'a Report,
    pub old: Option<&'a Report>,
    pub changes: Option<&'a Changes>,
    pub top: usize,
    pub seconds: f64,
}

const SIMULATION_NOTE: &str = "global rules are simulated as one fleet (one exact counter per key, as sync: strict); \
throttled requests are charged at once and hold a throttle-queue place until released, without delaying later requests; \
token and cost reservations settle with the logged tokens when the request ends; store overrides and failure modes are not simulated";

impl Output<'_> {
    pub fn to_json(&self) -> Value {
        let i = self.input;
        json!({
            "files": self.files,
            "input": {
                "lines": i.lines,
                "requests": self.new.requests,
                "blank": i.blank,
                "unreadable": i.unreadable,
                "unreadable_examples": i.examples.iter().map(|(f, l, why)| json!({"file": f, "line": l, "reason": why})).collect::<Vec<_>>(),
                "out_of_order": i.out_of_order,
                "formats": {"json": i.json, "envoy_text": i.envoy_text},
            },
            "simulation": {
                "global_rules": self.new.global_rules,
                "note": SIMULATION_NOTE,
                "bucket_ms": self.new.timeline.bucket_ns / 1_000_000,
                "seconds": (self.seconds * 1000.0).round() / 1000.0,
            },
            "new": self.new.to_json(self.top),
            "old": self.old.map(|o| o.to_json(self.top)),
            "changes": self.changes.map(|c| c.to_json(self.top)),
        })
    }

    pub fn to_text(&self) -> String {
        let i = self.input;
        let r = self.new;
        let mut out = String::new();
        let range = match (r.first_ns, r.last_ns) {
            (Some(a), Some(b)) => format!("from {} to {} ({})", time(a), time(b), span(b - a)),
            _ => "no request".into(),
        };
        out.push_str(&format!(
            "replayed {} requests ({} lines of {}), {range}, in {:.1} s\n",
            r.requests,
            i.lines,
            self.files.join(", "),
            self.seconds
        ));
        if r.global_rules > 0 {
            out.push_str(&format!(
                "{} global rule(s) simulated as one fleet: one exact counter per key for all these requests (as sync: strict)\n",
                r.global_rules
            ));
        }
        if i.unreadable > 0 {
            out.push_str(&format!("{} unreadable lines (not replayed), the first:\n", i.unreadable));
            for (f, l, why) in &i.examples {
                out.push_str(&format!("  {f}:{l}: {why}\n"));
            }
        } else {
            out.push_str("every line was read\n");
        }
        if i.out_of_order > 0 {
            out.push_str(&format!(
                "{} requests came more than 60 s out of time order and were replayed late\n",
                i.out_of_order
            ));
        }
        let fates: Vec<String> = r.fates.iter().map(|(f, n)| format!("{n} {}", f.label())).collect();
        out.push_str(&format!(
            "\nconfig {}: {}",
            r.config,
            if fates.is_empty() { "-".into() } else { fates.join(", ") }
        ));
        if r.overridden > 0 {
            out.push_str(&format!(" ({} let through by the allow lists)", r.overridden));
        }
        out.push('\n');
        out.push_str(&rules_table(r));
        for rule in &r.rules {
            let keys = r.top_keys(rule, self.top);
            let lows = r.low_periods(rule, 3);
            if keys.is_empty() && lows.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}", rule.name));
            if let (Some(a), Some(b)) = (rule.first_denial_ns, rule.last_denial_ns) {
                out.push_str(&format!(": first denial {}, last {}", time(a), time(b)));
            }
            out.push('\n');
            if !keys.is_empty() {
                let title = if r.show_keys { "KEY" } else { "KEY (hash)" };
                let rows: Vec<Vec<String>> = keys.into_iter().map(|(k, n)| vec![k, n.to_string()]).collect();
                out.push_str(&indent(&table::render(&[title, "DENIED"], &rows)));
                out.push('\n');
            }
            if !lows.is_empty() {
                let rows: Vec<Vec<String>> = lows
                    .into_iter()
                    .map(|(a, b, near, all)| vec![time(a), time(b), near.to_string(), all.to_string()])
                    .collect();
                out.push_str(&indent(&table::render(&["REMAINING LOW FROM", "TO", "AT >= 80%", "DECISIONS"], &rows)));
                out.push('\n');
            }
        }
        if let (Some(old), Some(ch)) = (self.old, self.changes) {
            let fates: Vec<String> = old.fates.iter().map(|(f, n)| format!("{n} {}", f.label())).collect();
            out.push_str(&format!("\ncompared with {}: {}\n", old.config, fates.join(", ")));
            out.push_str(&rules_table(old));
            out.push_str(&format!("\n{} requests change outcome from {} to {}\n", ch.total, old.config, r.config));
            if ch.total > 0 {
                let rows: Vec<Vec<String>> = Changes::sorted(&ch.by_rule, usize::MAX)
                    .into_iter()
                    .map(|((f, t, rule), n)| vec![f.label(), t.label(), rule, n.to_string()])
                    .collect();
                out.push_str(&table::render(&["FROM", "TO", "RULE", "REQUESTS"], &rows));
                out.push_str("\n\n");
                let rows: Vec<Vec<String>> = Changes::sorted(&ch.by_key, self.top)
                    .into_iter()
                    .map(|((f, t, rule, key), n)| vec![f.label(), t.label(), rule, key, n.to_string()])
                    .collect();
                out.push_str(&table::render(&["FROM", "TO", "RULE", "KEY", "REQUESTS"], &rows));
                out.push_str("\n\nfirst changed requests:\n");
                for c in &ch.examples {
                    out.push_str(&format!(
                        "  {} {} {}: {} -> {} ({} {})\n",
                        time(c.time_ns),
                        c.method,
                        c.path,
                        c.from.label(),
                        c.to.label(),
                        c.rule,
                        c.key
                    ));
                }
            }
        }
        out.push_str(&format!("\nnote: {SIMULATION_NOTE}.\n"));
        out
    }
}

fn rules_table(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .rules
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.allowed.to_string(),
                x.denied.to_string(),
                x.throttled.to_string(),
                x.shadow_denied.to_string(),
                x.degraded.to_string(),
                x.unlimited.to_string(),
                x.missing_key.to_string(),
                x.near_limit.to_string(),
            ]
        })
        .collect();
    table::render(
        &["RULE", "ALLOWED", "DENIED", "THROTTLED", "SHADOW", "DEGRADED", "UNLIMITED", "MISSING KEY", "AT >= 80%"],
        &rows,
    ) + "\n"
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn series_widen_and_runs_of_low_buckets_rank() {
        let mut r = Report {
            config: "c".into(),
            rules: vec![RuleStats { name: "r".into(), ..RuleStats::default() }],
            fates: BTreeMap::new(),
            overridden: 0,
            requests: 0,
            first_ns: None,
            last_ns: None,
            timeline: Timeline { origin_ns: 0, bucket_ns: 1_000_000_000 },
            global_rules: 0,
            raw: HashMap::new(),
            show_keys: false,
        };
        assert_eq!(r.bucket(5_500_000_000), 0);
        r.first_ns = Some(5_500_000_000);
        assert_eq!(r.timeline.origin_ns, 5_000_000_000);
        r.rules[0].series = vec![Bucket { near_limit: 1, allowed: 1, ..Bucket::default() }; 3];
        let far = 5_000_000_000 + MAX_BUCKETS as u64 * 1_000_000_000;
        assert_eq!(r.bucket(far), MAX_BUCKETS / 2);
        assert_eq!(r.timeline.bucket_ns, 2_000_000_000);
        assert_eq!(r.timeline.origin_ns, 4_000_000_000, "aligned to the new width");
        let near: Vec<u64> = r.rules[0].series.iter().map(|b| b.near_limit).collect();
        assert_eq!(near, [1, 2], "[5s,6s) alone in [4s,6s), then [6s,8s)");
        r.rules[0].series = [0, 2, 3, 0, 0, 9, 0, 1]
            .iter()
            .map(|n| Bucket { near_limit: *n, allowed: *n, ..Bucket::default() })
            .collect();
        let lows = r.low_periods(&r.rules[0].clone(), 2);
        let o = r.timeline.origin_ns;
        assert_eq!(lows[0], (o + 10_000_000_000, o + 12_000_000_000, 9, 9));
        assert_eq!(lows[1], (o + 2_000_000_000, o + 6_000_000_000, 5, 5));
    }

    #[test]
    fn spans() {
        assert_eq!(span(90_000_000_000), "90s");
        assert_eq!(span(3_600_000_000_000), "1h");
        assert_eq!(span(5_000_000), "5ms");
    }
}
