//! monitoring/: the Prometheus rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), the Grafana dashboard is well formed and covers every metric of the
//! README, and every metric the dashboard and the alerts name is really exported: by a real Envoy
//! running Tollgate with reject, shadow, throttle, concurrent and token rules after some traffic
//! (`/stats/prometheus`), or by a real tollgate-store over Redis (`/metrics`).
//!
//! promtool comes from Debian's `prometheus` package: installed here when missing and root.
//! Needs `make build` (tollgate.wasm) and `cargo build --workspace --bins`.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tollgate_e2e::http::Request;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::Store;
use tollgate_e2e::{repo_root, Envoy, MockLlm};

fn promtool() -> PathBuf {
    let found = |p: &str| Command::new(p).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found("promtool").is_ok_and(|s| s.success()) {
        return PathBuf::from("promtool");
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(root, "promtool not found: run `apt-get install -y prometheus`");
    eprintln!("promtool not found: apt-get install -y prometheus");
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !quiet(&["install", "-y", "-qq", "prometheus"]) {
        quiet(&["update", "-qq"]);
        assert!(quiet(&["install", "-y", "-qq", "prometheus"]), "apt-get install -y prometheus failed");
    }
    assert!(found("promtool").is_ok_and(|s| s.success()), "promtool not found: run `apt-get install -y prometheus`");
    PathBuf::from("promtool")
}

fn alerts() -> Value {
    serde_yaml::from_str(&tollgate_e2e::read("monitoring/alerts.yaml")).expect("monitoring/alerts.yaml is YAML")
}

fn dashboard() -> Value {
    serde_json::from_str(&tollgate_e2e::read("monitoring/grafana-dashboard.json")).expect("the dashboard is JSON")
}

/// (alert name, PromQL) of every rule in alerts.yaml.
fn alert_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in alerts()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            out.push((rule["alert"].as_str().unwrap().to_string(), rule["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p.clone());
        out.extend(p["panels"].as_array().into_iter().flatten().cloned());
    }
    out
}

/// (panel title, PromQL) of every dashboard query, variable queries included.
fn dashboard_exprs() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap_or("?").to_string(), t["expr"].as_str().unwrap_or("").to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push((format!("variable {}", v["name"]), v["definition"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Metric names a PromQL expression uses: identifiers with Envoy's or Tollgate's prefix, string
/// literals (label values) and `$` variables left out.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut quote: Option<char> = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None => text.push(c),
        }
    }
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$'))
        .filter(|w| !w.starts_with('$'))
        .filter(|w| w.starts_with("tollgate_") || w.starts_with("envoy_"))
        .map(String::from)
        .collect()
}

/// Sample names of a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn metric_names_are_parsed_from_promql() {
    let names = metric_names(
        r#"sum by (rule) (rate(tollgate_rule_denied{rule=~"tollgate_x|$rule"}[$__rate_interval])) / on() max_over_time(sum(envoy_cluster_upstream_rq_active)[10m:1m]) > 0.1"#,
    );
    assert_eq!(names, BTreeSet::from(["tollgate_rule_denied".into(), "envoy_cluster_upstream_rq_active".into()]));
}

#[test]
fn promtool_checks_and_unit_tests_the_alerts() {
    let promtool = promtool();
    let dir = repo_root().join("monitoring");
    for args in [["check", "rules", "alerts.yaml"], ["test", "rules", "alerts_test.yaml"]] {
        let out = Command::new(&promtool).args(args).current_dir(&dir).output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {}: failed\n{log}", args.join(" "));
        assert!(log.contains("SUCCESS"), "promtool {}:\n{log}", args.join(" "));
    }
    // The checks can fail: a broken expression is refused.
    let broken = tollgate_e2e::TempDir::new("promtool");
    let text = tollgate_e2e::read("monitoring/alerts.yaml").replacen("sum by (rule)", "sum by rule", 1);
    std::fs::write(broken.0.join("alerts.yaml"), text).unwrap();
    let out = Command::new(&promtool).args(["check", "rules", "alerts.yaml"]).current_dir(&broken.0).output().unwrap();
    assert!(!out.status.success(), "promtool accepted a broken expression");
}

#[test]
fn alerts_cover_what_operators_need_and_are_documented() {
    let exprs = alert_exprs();
    let uses = |metric: &str| exprs.iter().filter(|(_, e)| metric_names(e).contains(metric)).count();
    for metric in [
        "tollgate_rule_denied",
        "tollgate_store_errors",
        "tollgate_failure_mode_used",
        "tollgate_usage_missing",
        "tollgate_cas_exhausted",
        "tollgate_slots_overflow",
    ] {
        assert!(uses(metric) > 0, "no alert uses {metric}");
    }
    let deny = exprs.iter().find(|(n, _)| n == "TollgateRuleDenyingOver10Percent").expect("the 10 % deny alert");
    assert!(deny.1.contains("0.10") && deny.1.contains("[5m]") && deny.1.contains("by (rule)"), "{}", deny.1);
    assert!(
        exprs.iter().any(|(n, e)| n.contains("Concurrency") && e.contains("tollgate_rule_denied")),
        "a concurrency-leak alert"
    );
    let docs = tollgate_e2e::read("docs/monitoring.md");
    for group in alerts()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                docs.lines().any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == name),
                "docs/monitoring.md has no section `### {name}`"
            );
            assert_eq!(rule["annotations"]["runbook"], format!("docs/monitoring.md#{}", name.to_lowercase()));
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            assert!(rule["annotations"]["summary"].is_string() && rule["annotations"]["description"].is_string());
        }
    }
}

#[test]
fn dashboard_is_well_formed_and_covers_every_metric() {
    let d = dashboard();
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars: Vec<&str> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(vars.contains(&"datasource") && vars.contains(&"rule"), "variables {vars:?}");
    let all = panels(&d);
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, i64, i64, i64, i64)> = Vec::new();
    for p in &all {
        let title = p["title"].as_str().unwrap().to_string();
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id in {title}");
        let g = &p["gridPos"];
        let (x, y, w, h) =
            (g["x"].as_i64().unwrap(), g["y"].as_i64().unwrap(), g["w"].as_i64().unwrap(), g["h"].as_i64().unwrap());
        assert!(x >= 0 && w > 0 && x + w <= 24 && h > 0, "{title}: gridPos {g}");
        for (other, ox, oy, ow, oh) in &boxes {
            let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
            assert!(!overlap, "panels {title:?} and {other:?} overlap");
        }
        boxes.push((title.clone(), x, y, w, h));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}: datasource");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())));
    }
    // Every metric of the README's table is on the dashboard (histograms through `_bucket`).
    let used: BTreeSet<String> = dashboard_exprs().iter().flat_map(|(_, e)| metric_names(e)).collect();
    let readme = tollgate_e2e::read("README.md");
    let table = readme.split("## Metrics").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut listed = BTreeSet::new();
    for piece in table.split('`').skip(1).step_by(2) {
        if let Some(name) = piece.split('{').next().filter(|n| n.starts_with("tollgate_")) {
            listed.insert(name.to_string());
        }
    }
    assert!(listed.len() >= 15, "README metrics table: {listed:?}");
    for name in &listed {
        let on_dashboard = used.contains(name) || used.contains(&format!("{name}_bucket"));
        assert!(on_dashboard, "README lists {name}, the dashboard does not show it");
    }
    // And tollgate-store's own metrics, as docs/store.md lists them.
    let store_doc = tollgate_e2e::read("docs/store.md");
    let store_metrics: BTreeSet<String> = store_doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|p| p.split('{').next())
        .filter(|n| n.starts_with("tollgate_store_") && (n.ends_with("_total") || n.ends_with("_seconds")))
        .map(String::from)
        .collect();
    assert!(!store_metrics.is_empty(), "docs/store.md lists the store's /metrics");
    for name in &store_metrics {
        let on_dashboard = used.contains(name) || used.contains(&format!("{name}_bucket"));
        assert!(on_dashboard, "docs/store.md lists {name}, the dashboard does not show it");
    }
}

#[test]
fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    // A real Envoy with one rule of each kind, and some traffic through each.
    let llm = MockLlm::start();
    let config = json!({"rules": [
        {"name": "reject-rph", "match": {"path_prefix": "/r"}, "key": ["api_key"], "algorithm": "fixed_window", "limit": 2, "window": "1h"},
        {"name": "shadow-rph", "match": {"path_prefix": "/r"}, "key": ["api_key"], "algorithm": "fixed_window", "limit": 1, "window": "1h", "strategy": "shadow"},
        {"name": "throttle-rps", "match": {"path_prefix": "/t"}, "key": ["api_key"], "algorithm": "token_bucket", "limit": 10, "window": "1s", "burst": 1, "strategy": "throttle", "max_wait": "2s"},
        {"name": "per-key-streams", "match": {"path_prefix": "/v1/"}, "key": ["api_key"], "unit": "concurrent", "limit": 4},
        {"name": "per-key-tpm", "match": {"path_prefix": "/v1/"}, "key": ["api_key"], "unit": "tokens", "algorithm": "token_bucket", "limit": 1000, "window": "1m"}
    ]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let get = |path: &str| Request::get(&envoy.url(path)).header("x-api-key", "sk-mon").send().unwrap().status;
    let statuses: Vec<u16> = (0..4).map(|_| get("/r")).collect();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    let statuses: Vec<u16> = (0..3).map(|_| get("/t")).collect();
    assert_eq!(statuses, vec![200, 200, 200], "throttled, not rejected");
    let chat = r#"{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let post = |no_usage: bool| {
        let mut r = Request::post(&envoy.url("/v1/chat/completions"), chat).header("x-api-key", "sk-mon");
        if no_usage {
            r = r.header("x-mock-no-usage", "1");
        }
        r.send().unwrap().status
    };
    assert_eq!((post(false), post(true)), (200, 200));

    // Redis and tollgate-store, with one check so its counters move.
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    let check = json!({"checks": [{"rule": "r", "key": "9f86d081884c7d65", "algorithm": "token_bucket", "limit": 60, "window_ms": 60000}]});
    assert_eq!(store.post("/v1/check", &check).status, 200);

    let envoy_text = envoy.prometheus();
    let value = |sample: &str| tollgate_e2e::prometheus_value(&envoy_text, sample);
    assert_eq!(value(r#"tollgate_rule_denied{rule="reject-rph"}"#), Some(2.0));
    assert!(value(r#"tollgate_rule_shadow_denied{rule="shadow-rph"}"#) > Some(0.0));
    assert!(value(r#"tollgate_rule_throttled{rule="throttle-rps"}"#) >= Some(1.0));
    assert_eq!(value(r#"tollgate_rule_allowed{rule="per-key-tpm"}"#), Some(2.0));
    assert_eq!(value(r#"tollgate_rule_allowed{rule="per-key-streams"}"#), Some(2.0));
    let mut usage_missing = value("tollgate_usage_missing{}");
    for _ in 0..50 {
        if usage_missing == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        usage_missing = envoy.prometheus_value("tollgate_usage_missing{}");
    }
    assert_eq!(usage_missing, Some(1.0), "the response without usage is counted");

    let from_envoy = exported(&envoy_text);
    let store_text = store.get("/metrics").text();
    let from_store = exported(&store_text);
    assert!(from_store.contains("tollgate_store_requests_total"), "store /metrics:\n{store_text}");

    let mut missing = BTreeMap::new();
    let mut checked = BTreeSet::new();
    for (source, exprs) in
        [("monitoring/grafana-dashboard.json", dashboard_exprs()), ("monitoring/alerts.yaml", alert_exprs())]
    {
        for (place, expr) in exprs {
            for name in metric_names(&expr) {
                checked.insert(name.clone());
                if !from_envoy.contains(&name) && !from_store.contains(&name) {
                    missing.entry(name).or_insert_with(Vec::new).push(format!("{source}: {place}"));
                }
            }
        }
    }
    eprintln!("{} metric names checked: {checked:?}", checked.len());
    assert!(checked.len() >= 30, "expected the dashboard and alerts to name many metrics: {checked:?}");
    assert!(missing.is_empty(), "named but not exported by Envoy or tollgate-store: {missing:#?}");
}
