//! Hardening, reloads while traffic flows: the listener (with Tollgate's plugin configuration)
//! comes from a file-based LDS subscription, so the test can change the plugin configuration
//! in a running Envoy, as a control plane would (LDS; Istio pushes `WasmPlugin` changes the same
//! way), and see what happens to the counters: they live in the process's shared data, so they
//! survive the reload under an unchanged quota; a changed quota or a renamed rule starts fresh
//! counters (a state is only meaningful under the quota it was charged with). Requests sent during the reloads all get an answer (200 or 429).

use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tollgate_e2e::http::Request;
use tollgate_e2e::{free_port, wasm_path, Envoy, EnvoyOptions, MockLlm, TempDir};

/// The bootstrap: admin, the upstream cluster, listeners from `${LDS_DIR}/lds.yaml`.
const BOOTSTRAP: &str = r#"
node: { id: tollgate-test, cluster: tollgate-test }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
dynamic_resources:
  lds_config:
    resource_api_version: V3
    path_config_source:
      path: "${LDS_DIR}/lds.yaml"
      watched_directory: { path: "${LDS_DIR}" }
static_resources:
  clusters:
  - name: upstream
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${UPSTREAM_PORT} } } }
"#;

/// One listener on `port` with Tollgate configured with `plugin` (JSON text), plus an exempt
/// path `/__v{version}` by which the test sees which version serves.
fn lds(port: u16, plugin: &str, version: u32) -> String {
    let mut plugin: serde_json::Value = serde_json::from_str(plugin).unwrap();
    plugin["exempt_paths"] = json!([format!("/__v{version}")]);
    let plugin = plugin.to_string();
    let listener = json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "ingress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": format!("ingress_v{version}"),
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
                "http_filters": [
                    {"name": "envoy.filters.http.wasm", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        "config": {
                            "name": "tollgate", "root_id": "tollgate",
                            "vm_config": {"vm_id": "tollgate", "runtime": "envoy.wasm.runtime.v8",
                                          "code": {"local": {"filename": wasm_path().display().to_string()}}},
                            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin}}}},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]
    });
    // JSON is YAML.
    json!({"version_info": version.to_string(), "resources": [listener]}).to_string()
}

fn plugin(rule: &str, limit: u64) -> String {
    json!({"response": {"headers": ["x-ratelimit"]},
           "rules": [{"name": rule, "key": ["api_key"], "algorithm": "fixed_window", "limit": limit, "window": "1h"}]})
    .to_string()
}

/// Replace the LDS file atomically (write, then rename), as Envoy's file subscription expects.
fn publish(dir: &TempDir, text: &str) {
    let tmp = dir.0.join("lds.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.0.join("lds.yaml")).unwrap();
}

fn lds_updates(envoy: &Envoy) -> u64 {
    envoy
        .admin("/stats?filter=listener_manager.lds.update_success")
        .lines()
        .find_map(|l| l.strip_prefix("listener_manager.lds.update_success: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Publish `text` and wait until Envoy has applied it and the new filter answers.
fn reload(envoy: &Envoy, dir: &TempDir, text: &str, version: u32) {
    let before = lds_updates(envoy);
    publish(dir, text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lds_updates(envoy) <= before {
        assert!(Instant::now() < deadline, "LDS update {version} not applied:\n{}", envoy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // New connections reach the new configuration: its exempt path gets no rate-limit headers.
    loop {
        let r = Request::get(&envoy.url(&format!("/__v{version}"))).header("x-api-key", "sk-probe").send().unwrap();
        if r.header("x-ratelimit-limit").is_none() {
            return;
        }
        assert!(Instant::now() < deadline, "configuration v{version} not serving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn statuses(envoy: &Envoy, key: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| Request::get(&envoy.url("/x")).header("x-api-key", key).send().unwrap().status).collect()
}

#[test]
fn counters_survive_an_lds_reload_while_traffic_flows() {
    let llm = MockLlm::start();
    let dir = TempDir::new("lds");
    let port = free_port();
    let envoy = lds_envoy(&dir, llm.port, port, &lds(port, &plugin("per-key", 3), 1));
    assert_eq!(statuses(&envoy, "sk-a", 4), vec![200, 200, 200, 429]);

    // Background traffic on another key through every reload: every request is answered.
    let stop = AtomicBool::new(false);
    let (answered, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                match Request::get(&envoy.url("/bg")).header("x-api-key", "sk-background").send() {
                    Ok(r) if r.status == 200 || r.status == 429 => answered.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        });

        // Stop the background client even if an assertion below fails (else the scope hangs).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = Stop(&stop);
        // The background traffic flows before and after every reload (however slowly the
        // machine runs it): wait for one more answer each time, with a generous deadline.
        let flowed = || {
            let seen = answered.load(Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(30);
            while answered.load(Ordering::SeqCst) <= seen && failed.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "no background request was answered in 30 s");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        flowed();

        // Same rule, same limit: the count (3 of 3) survives the reload.
        reload(&envoy, &dir, &lds(port, &plugin("per-key", 3), 2), 2);
        flowed();
        assert_eq!(statuses(&envoy, "sk-a", 1), vec![429], "the count survived the reload");

        // Limit 3 -> 5: a counter is only meaningful under the quota it was charged with, so
        // the new quota starts a fresh counter (documented in the README).
        reload(&envoy, &dir, &lds(port, &plugin("per-key", 5), 3), 3);
        flowed();
        let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-a").send().unwrap();
        assert_eq!(
            (r.status, r.header("x-ratelimit-remaining")),
            (200, Some("4")),
            "a fresh counter under the new limit"
        );
        assert_eq!(statuses(&envoy, "sk-a", 5), vec![200, 200, 200, 200, 429]);

        // A renamed rule: fresh counters.
        reload(&envoy, &dir, &lds(port, &plugin("per-key-v2", 2), 4), 4);
        flowed();
        assert_eq!(statuses(&envoy, "sk-a", 3), vec![200, 200, 429]);
        stop.store(true, Ordering::SeqCst);
    });
    assert_eq!(failed.load(Ordering::SeqCst), 0, "a request during a reload got no answer (or a 5xx)");
    let log = envoy.log().to_lowercase();
    for bad in ["panic", "wasm trap", "runtimeerror", "crashed", "wasm vm failed"] {
        assert!(!log.contains(bad), "Envoy log contains {bad:?}:\n{}", envoy.log());
    }
}

fn plugin_window(alg: &str, window: &str) -> String {
    json!({"response": {"headers": ["x-ratelimit"]},
           "rules": [{"name": "per-key", "key": ["api_key"], "algorithm": alg, "limit": 2, "window": window}]})
    .to_string()
}

/// Start an Envoy whose listener comes from the LDS file in `dir`.
fn lds_envoy(dir: &TempDir, upstream: u16, port: u16, first: &str) -> Envoy {
    publish(dir, first);
    let template = dir.0.join("bootstrap.yaml");
    std::fs::write(&template, BOOTSTRAP.replace("${LDS_DIR}", &dir.0.display().to_string())).unwrap();
    let mut opts = EnvoyOptions::standalone("", upstream);
    opts.template = template;
    let envoy = Envoy::start(opts);
    assert_eq!(envoy.port, port, "the LDS listener serves on its port");
    envoy
}

/// A fixed or sliding window made longer by a reload (same rule name and algorithm, `1h` ->
/// `1d`): the stored state holds a window *index* (`now / window_ns`) counted in hours; read
/// with the new window, that index is ~24 times larger than the current day's, so the engine
/// takes it for a window in the future ("clock stepping back") and keeps counting in it. A key
/// that was limited stays limited until that window's end, which saturates: status 429,
/// `X-RateLimit-Reset: 18446744074` (u64::MAX ns, 584 years) and no `Retry-After` at all (the
/// wait reads as "never"), i.e. until Envoy restarts; a key that was not yet limited keeps its
/// count for as long. Expected: at most until the end of the current day window. Fix: put the window
/// length in the rule's hash seed (a changed window starts fresh counters, like a changed
/// algorithm), or treat a stored index beyond `now / window_ns + 1` as stale.
#[test]
fn a_window_lengthened_by_a_reload_resets_within_the_new_window() {
    let mut wrong = Vec::new();
    for alg in ["fixed_window", "sliding_window"] {
        let llm = MockLlm::start();
        let dir = TempDir::new("lds-window");
        let port = free_port();
        let envoy = lds_envoy(&dir, llm.port, port, &lds(port, &plugin_window(alg, "1h"), 1));
        assert_eq!(statuses(&envoy, "sk-w", 3), vec![200, 200, 429]);
        reload(&envoy, &dir, &lds(port, &plugin_window(alg, "1d"), 2), 2);
        let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-w").send().unwrap();
        let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        let retry: u64 = r.header("retry-after").map(|v| v.parse().unwrap()).unwrap_or(0);
        if reset > 86_400 || retry > 86_400 || (r.status == 429 && retry == 0) {
            wrong.push(format!("{alg}: status {}, reset {reset} s, retry-after {retry} s", r.status));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn plugin_gcra(unit: &str, limit: u64) -> String {
    let rule = if unit == "concurrent" {
        json!({"name": "per-key", "key": ["api_key"], "unit": "concurrent", "limit": limit})
    } else {
        json!({"name": "per-key", "key": ["api_key"], "algorithm": "gcra", "limit": limit, "window": "1m"})
    };
    json!({"response": {"headers": ["x-ratelimit"]}, "rules": [rule]}).to_string()
}

/// GCRA keeps its state as an absolute theoretical arrival time in units of `1 / limit` ns
/// (`tat = now * limit + deficit`). A reload that lowers `limit` (same rule name, same
/// algorithm) reads every stored TAT with the new, smaller `limit`: the deficit becomes about
/// `now * (old - new)`, i.e. decades. Any key that was ever used, even once, is then denied for
/// that long. `unit: concurrent` rules are GCRA inside (limit = slots), so lowering a
/// concurrency limit does the same to every key that ever had a stream. Input: `gcra` 10/1m,
/// one request, reload with 5/1m: expected 200 (4 left), got 429 with a reset of ~54 years.
/// Fix: put the quota (or at least `limit`) in the rule's hash seed, or store the TAT relative to
/// a fixed epoch in ns rather than scaled by `limit`.
#[test]
fn a_gcra_limit_lowered_by_a_reload_keeps_the_keys_usable() {
    let mut wrong = Vec::new();
    for unit in ["requests", "concurrent"] {
        let llm = MockLlm::start();
        let dir = TempDir::new("lds-gcra");
        let port = free_port();
        let envoy = lds_envoy(&dir, llm.port, port, &lds(port, &plugin_gcra(unit, 10), 1));
        assert_eq!(statuses(&envoy, "sk-g", 1), vec![200]);
        reload(&envoy, &dir, &lds(port, &plugin_gcra(unit, 5), 2), 2);
        let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-g").send().unwrap();
        if r.status != 200 {
            wrong.push(format!(
                "{unit}: status {}, x-ratelimit-reset {:?} s, retry-after {:?}",
                r.status,
                r.header("x-ratelimit-reset"),
                r.header("retry-after")
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The same GCRA scaling without any reload: a key's counter is shared by all its tiers (the
/// counter key is the rule and the key, not the tier), and each tier reads the stored TAT with
/// its own `limit`. A key that moves to a tier with a lower limit (a downgrade through
/// `tier.keys`, a per-key tier set at the store, a `grant` multiplier that expires, or simply a
/// tier header the client sets) is denied for decades. Input: `gcra` 10/1m with tier `pro` at
/// 100/1m from `x-tier`; one request as `pro`, then one without the header: expected 200
/// (9 of 10 left), got 429 with a reset of ~50 years.
#[test]
fn a_key_moving_to_a_lower_gcra_tier_keeps_a_sane_count() {
    let llm = MockLlm::start();
    let config = json!({"tier": {"source": "header:x-tier"}, "response": {"headers": ["x-ratelimit"]},
        "rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "gcra", "limit": 10, "window": "1m",
                   "tiers": {"pro": {"limit": 100}}}]});
    let envoy = Envoy::standalone(&config.to_string(), llm.port);
    let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-t").header("x-tier", "pro").send().unwrap();
    assert_eq!(r.status, 200);
    let r = Request::get(&envoy.url("/x")).header("x-api-key", "sk-t").send().unwrap();
    assert_eq!(
        r.status,
        200,
        "after one request as pro, the free tier denies: reset {:?} s, retry-after {:?} s",
        r.header("x-ratelimit-reset"),
        r.header("retry-after")
    );
}

#[test]
fn a_refused_reload_keeps_the_old_configuration_and_counts_a_config_error() {
    let llm = MockLlm::start();
    let dir = TempDir::new("lds-refused");
    let port = free_port();
    let envoy = lds_envoy(&dir, llm.port, port, &lds(port, &plugin("per-key", 3), 1));
    assert_eq!(statuses(&envoy, "sk-a", 1), vec![200]);
    let good = lds(port, &plugin("per-key", 3), 2);
    let bad = good.replace("\\\"limit\\\":3", "\\\"limit\\\":0");
    assert_ne!(bad, good, "the limit is written as expected");
    publish(&dir, &bad);
    let deadline = Instant::now() + Duration::from_secs(20);
    let rejected = || envoy.admin("/stats?filter=listener_manager.lds.update_rejected").contains(": 1");
    while !rejected() {
        assert!(Instant::now() < deadline, "the update was not rejected:\n{}", envoy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(envoy.prometheus_value("tollgate_config_errors{}"), Some(1.0));
    assert!(envoy.log().contains("rules[0].limit"), "the log names the field");
    assert_eq!(statuses(&envoy, "sk-a", 3), vec![200, 200, 429], "the old configuration still limits");
}
