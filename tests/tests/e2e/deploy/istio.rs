//! examples/istio/: every pluginConfig passes the filter's own validator (`tollgatectl validate`,
//! natively the parser Envoy runs) and `envoy --mode validate` in an Envoy config equivalent to
//! what Istio generates; the store cluster names follow Istio's `outbound|PORT||HOST` rule for
//! the Service of tollgate-store.yaml; and a WasmPlugin's rules that read the request body (LLM
//! tokens and dollars) work on a real Envoy configured as Istio configures it, without
//! `allow_on_headers_stop_iteration` and without any EnvoyFilter.
//!
//! Needs `make build` (tollgate.wasm) and `cargo build --workspace --bins`.

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use tollgate_e2e::files::{files_with_ext, yaml_documents};
use tollgate_e2e::http::Request;
use tollgate_e2e::{repo_root, wasm_path, Envoy, EnvoyMode, EnvoyOptions, MockLlm, TempDir};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// One parsed document of a multi-document YAML file.
struct Doc {
    file: String,
    value: Value,
}

fn istio_docs() -> Vec<Doc> {
    let mut docs = Vec::new();
    for path in files_with_ext(&repo_root().join("examples/istio"), &["yaml"], false) {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let values = yaml_documents(&text).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
        docs.extend(values.into_iter().map(|value| Doc { file: file.clone(), value }));
    }
    docs
}

fn kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter().filter(|d| d.value["kind"] == kind).collect()
}

/// A plugin configuration found in examples/istio and where it came from.
struct Plugin {
    origin: String,
    config: Value,
    /// The Wasm filter config (`config` of envoy.extensions.filters.http.wasm.v3.Wasm) Envoy gets.
    wasm: Value,
}

fn plugins(docs: &[Doc]) -> Vec<Plugin> {
    let mut out = Vec::new();
    for d in kind(docs, "WasmPlugin") {
        let config = d.value["spec"]["pluginConfig"].clone();
        assert!(config.is_object(), "{}: WasmPlugin without pluginConfig", d.file);
        // What Istio generates for a WasmPlugin: the pluginConfig as a JSON StringValue, and no
        // allow_on_headers_stop_iteration (WasmPlugin has no field for it).
        let wasm = json!({
            "name": format!("{}.{}", d.value["metadata"]["namespace"].as_str().unwrap(), d.value["metadata"]["name"].as_str().unwrap()),
            "root_id": "tollgate",
            "vm_config": {"vm_id": "tollgate", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": wasm_path().display().to_string()}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config.to_string()}
        });
        out.push(Plugin { origin: d.file.clone(), config, wasm });
    }
    out
}

/// The Service of tollgate-store.yaml as Istio names its cluster: (cluster, host, port).
fn store_service(docs: &[Doc]) -> (String, String, u16) {
    let services = kind(docs, "Service");
    let svc = services
        .iter()
        .find(|d| d.file == "tollgate-store.yaml" && d.value["metadata"]["name"] == "tollgate-store")
        .expect("tollgate-store.yaml defines Service tollgate-store");
    let name = svc.value["metadata"]["name"].as_str().unwrap();
    let namespace = svc.value["metadata"]["namespace"].as_str().expect("the Service has a namespace");
    let ports = svc.value["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "one port on the store Service");
    let port = ports[0]["port"].as_u64().unwrap() as u16;
    let host = format!("{name}.{namespace}.svc.cluster.local");
    (format!("outbound|{port}||{host}"), host, port)
}

use tollgate_e2e::tollgatectl;

/// `tollgatectl validate` on a config: Ok(summary) or Err(error line).
fn validate_with_filter(config: &Value) -> Result<String, String> {
    let dir = TempDir::new("istio-plugin");
    let path = dir.0.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new(tollgatectl()).arg("validate").arg(&path).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `envoy --mode validate` on a configuration built as JSON (JSON is YAML).
fn envoy_validate(name: &str, config: &Value) -> Result<(), String> {
    tollgate_e2e::envoy_validate(name, &serde_json::to_string_pretty(config).unwrap())
}

/// A static Envoy config with the sidecar's clusters Istio would have (the store's
/// `outbound|PORT||HOST`) and the given Wasm filter config, as an inbound listener would run it.
fn envoy_like_istio(wasm: &Value, store_cluster: &str, host: &str, port: u16) -> Value {
    let cluster = |name: &str, addr: &str, port: u16| {
        json!({"name": name, "type": "STRICT_DNS", "connect_timeout": "0.25s",
               "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                   {"endpoint": {"address": {"socket_address": {"address": addr, "port_value": port}}}}]}]}})
    };
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "virtualInbound", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "inbound",
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "inbound|8000||"}}]}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.wasm", "typed_config": {"@type": WASM_TYPE, "config": wasm}},
                        {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                    ]}}]}]}],
            "clusters": [cluster("inbound|8000||", "127.0.0.1", 8000), cluster(store_cluster, host, port)]
        }
    })
}

/// Whether a configuration uses something only the request body can give.
fn body_features(config: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for rule in config["rules"].as_array().into_iter().flatten() {
        let name = rule["name"].as_str().unwrap_or("?");
        if rule["enabled"] == false {
            continue;
        }
        for key in rule["key"].as_array().into_iter().flatten() {
            if key.as_str().is_some_and(|k| k.starts_with("body:")) {
                found.push(format!("{name}: key {key}"));
            }
        }
        if let Some(unit) = rule["unit"].as_str() {
            if ["tokens", "input_tokens", "output_tokens", "cost_usd"].contains(&unit) {
                found.push(format!("{name}: unit {unit}"));
            }
        }
        if rule["degrade"]["set_model"].is_string() {
            found.push(format!("{name}: degrade.set_model"));
        }
    }
    found
}

#[test]
fn every_plugin_config_passes_the_filters_validator_and_envoy() {
    let docs = istio_docs();
    let plugins = plugins(&docs);
    let origins: Vec<&str> = plugins.iter().map(|p| p.origin.as_str()).collect();
    for file in ["wasmplugin-oci.yaml", "wasmplugin-http.yaml"] {
        assert!(origins.contains(&file), "no plugin config found in {file} (found {origins:?})");
    }
    let (cluster, host, port) = store_service(&docs);
    let mut failures = Vec::new();
    for p in &plugins {
        match validate_with_filter(&p.config) {
            Ok(summary) => eprintln!("{}: {summary}", p.origin),
            Err(e) => failures.push(format!("{}: the filter rejects its pluginConfig: {e}", p.origin)),
        }
        if let Err(e) = envoy_validate(&p.origin, &envoy_like_istio(&p.wasm, &cluster, &host, port)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The validator is not a rubber stamp: the same config with a broken rule fails.
    let mut broken = plugins[0].config.clone();
    broken["rules"][0]["window"] = json!("5x");
    let err = validate_with_filter(&broken).expect_err("window 5x is invalid");
    assert!(err.contains("rules[0].window"), "{err}");
}

#[test]
fn store_cluster_names_follow_istios_outbound_rule() {
    let docs = istio_docs();
    let (cluster, host, port) = store_service(&docs);
    assert_eq!(cluster, "outbound|8080||tollgate-store.tollgate.svc.cluster.local");
    let secret =
        kind(&docs, "Secret").into_iter().find(|d| d.value["metadata"]["name"] == "tollgate-store").expect("Secret");
    let proxy_token = &secret.value["stringData"]["proxy-token"];
    for p in plugins(&docs) {
        let store = &p.config["store"];
        assert_eq!(store["cluster"], cluster.as_str(), "{}: store.cluster", p.origin);
        assert_eq!(store["authority"], host.as_str(), "{}: store.authority", p.origin);
        assert_eq!(&store["token"], proxy_token, "{}: store.token must be the Secret's proxy-token", p.origin);
        assert!(
            p.config["rules"].as_array().unwrap().iter().any(|r| r["scope"] == "global"),
            "{}: a store section without a global rule shows nothing",
            p.origin
        );
    }

    // The Deployment serves that port, reads Redis and tokens from the Secret, and is ready on /healthz.
    let deployment = kind(&docs, "Deployment")
        .into_iter()
        .find(|d| d.value["metadata"]["name"] == "tollgate-store")
        .expect("Deployment");
    let container = &deployment.value["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let listen = args.iter().skip_while(|a| *a != "--listen").nth(1).expect("--listen");
    assert_eq!(listen.rsplit(':').next().unwrap(), port.to_string(), "the store listens on the Service port");
    let help = Command::new(tollgate_e2e::store::store_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(a.as_str()), "tollgate-store --help does not know {a}");
    }
    let secret_keys = secret.value["stringData"].as_object().unwrap();
    let mut env_names = Vec::new();
    for env in container["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(help.contains(&format!("[{name}]")), "tollgate-store --help does not know {name}");
        if let Some(key) = env["valueFrom"]["secretKeyRef"]["key"].as_str() {
            assert!(secret_keys.contains_key(key), "env {name} reads key {key}, not in the Secret");
        }
        env_names.push(name);
    }
    for required in ["REDIS_URL", "TOLLGATE_PROXY_TOKEN", "TOLLGATE_ADMIN_TOKEN"] {
        assert!(env_names.contains(&required), "the Deployment should set {required} from the Secret");
    }
    assert_eq!(container["env"][0]["valueFrom"]["secretKeyRef"]["name"], "tollgate-store");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    let named_port = container["ports"][0]["name"].as_str().unwrap();
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], named_port);
    assert_eq!(container["ports"][0]["containerPort"], port);

    // The DestinationRule applies to that host, with a connection pool and outlier detection.
    let rules = kind(&docs, "DestinationRule");
    let dr = rules.iter().find(|d| d.value["spec"]["host"] == host.as_str()).expect("a DestinationRule for the store");
    assert!(dr.value["spec"]["trafficPolicy"]["connectionPool"].is_object());
    assert!(dr.value["spec"]["trafficPolicy"]["outlierDetection"].is_object());
}

#[test]
fn wasmplugins_are_shaped_as_istio_expects_and_need_no_envoyfilter() {
    let docs = istio_docs();
    let wasm_plugins = kind(&docs, "WasmPlugin");
    assert_eq!(wasm_plugins.len(), 2);
    let mut selectors = Vec::new();
    for d in &wasm_plugins {
        let spec = &d.value["spec"];
        assert_eq!(d.value["apiVersion"], "extensions.istio.io/v1alpha1", "{}", d.file);
        assert_eq!(spec["phase"], "AUTHZ", "{}", d.file);
        assert!(spec["selector"]["matchLabels"].as_object().is_some_and(|m| !m.is_empty()), "{}: selector", d.file);
        selectors.push(spec["selector"]["matchLabels"].clone());
        let url = spec["url"].as_str().unwrap();
        match d.file.as_str() {
            "wasmplugin-oci.yaml" => assert!(url.starts_with("oci://"), "{url}"),
            "wasmplugin-http.yaml" => assert!(url.starts_with("https://") && url.ends_with("/tollgate.wasm"), "{url}"),
            other => panic!("unexpected WasmPlugin in {other}"),
        }
        // The sha256 placeholder is there, and the file says what to put in it.
        assert!(spec["sha256"].is_string(), "{}: sha256 placeholder", d.file);
        let text = std::fs::read_to_string(repo_root().join("examples/istio").join(&d.file)).unwrap();
        let comments: String = text.lines().filter(|l| l.trim_start().starts_with('#')).collect();
        assert!(comments.contains("sha256"), "{}: document the sha256 placeholder", d.file);
    }

    // Body rules need no EnvoyFilter: the OCI example limits tokens and dollars itself.
    assert!(kind(&docs, "EnvoyFilter").is_empty(), "a WasmPlugin is all Tollgate needs");
    let oci = wasm_plugins.iter().find(|d| d.file == "wasmplugin-oci.yaml").unwrap();
    let body = body_features(&oci.value["spec"]["pluginConfig"]);
    assert!(
        body.iter().any(|b| b.contains("unit tokens")) && body.iter().any(|b| b.contains("unit cost_usd")),
        "{body:?}"
    );

    // The README explains the cluster-name rule and the missing field.
    let readme = tollgate_e2e::read("examples/istio/README.md");
    for needle in ["outbound|PORT||HOST", "allow_on_headers_stop_iteration", "hold_headers", "reset"] {
        assert!(readme.contains(needle), "examples/istio/README.md should explain {needle}");
    }
}

#[test]
fn stats_tags_bootstrap_fragment_matches_the_standalone_envoy_config() {
    let docs = istio_docs();
    let cm = kind(&docs, "ConfigMap").into_iter().find(|d| d.file == "stats-tags.yaml").expect("stats-tags.yaml");
    let bootstrap: Value = serde_json::from_str(cm.value["data"]["custom_bootstrap.json"].as_str().unwrap()).unwrap();
    let vars: Vec<(String, String)> = ["UPSTREAM_PORT", "WASM", "PLUGIN_CONFIG", "STOP_ITERATION"]
        .iter()
        .map(|k| (k.to_string(), "1".to_string()))
        .collect();
    let standalone: Value =
        serde_yaml::from_str(&tollgate_e2e::render(&tollgate_e2e::read("envoy/standalone.yaml"), &vars)).unwrap();
    assert_eq!(bootstrap["stats_config"]["stats_tags"], standalone["stats_config"]["stats_tags"]);
}

#[test]
fn the_wasmplugins_llm_rules_work_on_envoy_configured_as_istio_configures_it() {
    // The OCI example's pluginConfig as shipped, minus the store (no store here) and with the
    // per-key token limit lowered so that a few requests reach it; Envoy without
    // allow_on_headers_stop_iteration, which is what a WasmPlugin gives it.
    let docs = istio_docs();
    let oci = plugins(&docs).into_iter().find(|p| p.origin == "wasmplugin-oci.yaml").unwrap();
    let mut config = oci.config.clone();
    config.as_object_mut().unwrap().remove("store");
    let rules = config["rules"].as_array_mut().unwrap();
    rules.retain(|r| r["scope"] != "global");
    let tpm = rules.iter_mut().find(|r| r["unit"] == "tokens").expect("a token rule");
    tpm["limit"] = json!(250);
    tpm["algorithm"] = json!("fixed_window");
    config["client_ip"] = json!({"trusted_hops": 0});
    let llm = MockLlm::start();
    let opts = EnvoyOptions::standalone(&config.to_string(), llm.port).in_mode(EnvoyMode::WasmPlugin);
    tollgate_e2e::away_from_window_edge(Duration::from_secs(60), Duration::from_secs(20));
    let envoy = Envoy::start(opts);
    let chat = |max_tokens: u64| {
        let body = json!({"model": "gpt-4o", "max_tokens": max_tokens, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        Request::post(&envoy.url("/v1/chat/completions"), &body.to_string())
            .header("authorization", "Bearer sk-istio")
            .header("x-mock-prompt-tokens", "20")
            .send()
            .unwrap()
    };
    // 20 + 80 tokens used each time, settled from the stream's usage (which Tollgate asked for).
    for i in 0..2 {
        let r = chat(80);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = chat(80);
    assert_eq!(r.status, 429, "200 used + 80 reserved exceed 250: {}", r.text());
    assert_eq!(r.json()["error"]["rule"], "per-key-tpm");
    assert!(!envoy.log().contains("panicked"));
}
