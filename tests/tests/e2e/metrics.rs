//! Contract §3: per-rule and per-proxy counters exported through Envoy's /stats/prometheus,
//! and the debug header and log line of "configured but nothing is limited" troubleshooting.

use serde_json::json;
use tollgate_e2e::http::Request;
use tollgate_e2e::{Envoy, MockLlm};

#[test]
fn prometheus_counts_match_known_traffic() {
    let llm = MockLlm::start();
    let config = json!({"debug": true, "rules": [
        {"name": "enforced", "key": ["api_key"], "algorithm": "fixed_window", "limit": 3, "window": "1h"},
        {"name": "watching", "key": ["api_key"], "algorithm": "fixed_window", "limit": 1, "window": "1h", "strategy": "shadow"}
    ]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let mut statuses = Vec::new();
    let mut debug = Vec::new();
    for _ in 0..5 {
        let r = Request::get(&envoy.url("/m")).header("x-api-key", "sk-m").send().unwrap();
        statuses.push(r.status);
        debug.push(r.header("x-tollgate-rules").unwrap_or("").to_string());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(debug[0], "enforced=allowed, watching=allowed");
    assert_eq!(debug[1], "enforced=allowed, watching=shadow_denied");
    assert_eq!(debug[3], "enforced=denied, watching=shadow_denied");
    let value =
        |s: &str| envoy.prometheus_value(s).unwrap_or_else(|| panic!("{s} not exported:\n{}", envoy.prometheus()));
    assert_eq!(value("tollgate_rule_allowed{rule=\"enforced\"}"), 3.0);
    assert_eq!(value("tollgate_rule_denied{rule=\"enforced\"}"), 2.0);
    // >= 80 % used: the 3rd request (0 left) and both denials.
    assert_eq!(value("tollgate_rule_near_limit{rule=\"enforced\"}"), 3.0);
    // The shadow rule passed the 1st; the 2nd and 3rd would have been denied; the 4th and 5th
    // were denied by "enforced", so "watching" was not charged and still reports a denial.
    assert_eq!(value("tollgate_rule_allowed{rule=\"watching\"}"), 1.0);
    assert_eq!(value("tollgate_rule_shadow_denied{rule=\"watching\"}"), 4.0);
    for proxy in [
        "cas_retries",
        "cas_exhausted",
        "store_errors",
        "store_timeouts",
        "failure_mode_used",
        "slots_evicted",
        "usage_missing",
        "config_errors",
    ] {
        assert!(envoy.prometheus_value(&format!("tollgate_{proxy}{{}}")).is_some(), "tollgate_{proxy} exported");
    }
    let text = envoy.prometheus();
    assert!(!text.contains("sk-m"), "no raw key in metrics");
    let log = envoy.log();
    assert!(
        log.contains("debug: GET /m -> deny 429; rules: enforced=denied, watching=shadow_denied"),
        "debug log line"
    );
    assert!(!log.contains("sk-m"), "no raw key in Envoy's log");
}
