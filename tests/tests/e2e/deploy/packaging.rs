//! Shipping Tollgate: the Docker Compose example, every Envoy config in the repo, and the OCI
//! packaging of tollgate.wasm.
//!
//! No Docker engine runs where these tests run, so no image is built or started here: the
//! compose file is checked statically (mounted files exist, cluster addresses and ports line
//! up with the services, the store's flags are real) and its Envoy config goes through the real
//! Envoy's `--mode validate`, which also loads the filter and validates the plugin config.
//!
//! Needs `make build` (tollgate.wasm) and `cargo build --workspace --bins`.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use tollgate_e2e::files::{rel, yaml_file};
use tollgate_e2e::{envoy_bin, envoy_validate, render, repo_root, wasm_path, workspace_bin, TempDir};

// ---------------------------------------------------------------------------------------------
// Helpers.

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("expected a string or number, got {other}"),
    }
}

/// A compose `command`/`entrypoint` as a list of words (list form, or a string split on spaces).
fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(s).collect(),
        Value::String(t) => t.split_whitespace().map(String::from).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a command, got {other}"),
    }
}

/// The value after `flag` in `args` (`--flag value` or `--flag=value`).
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(String::from)
        }
    })
}

/// The port of `host:port` (or `[v6]:port`).
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// `help` output of a binary.
fn help(bin: &Path) -> String {
    let out = Command::new(bin).arg("--help").output().unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("--"), "{} --help printed no flags:\n{text}", bin.display());
    text
}

/// Every `--flag` of `args` must be documented in `help_text`.
fn assert_flags_documented(what: &str, args: &[String], help_text: &str) {
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap();
        let documented = help_text.lines().any(|l| l.split_whitespace().any(|w| w.trim_end_matches(',') == flag));
        assert!(documented, "{what}: flag {flag} is not in its --help:\n{help_text}");
    }
}

/// Run `envoy --mode validate` on a config text; Err(log) when Envoy rejects it.
/// Replace the filename of every Wasm module `.../tollgate.wasm` that does not exist here
/// (e.g. the compose container path) with the locally built filter.
fn with_local_wasm(config: &str) -> String {
    let wasm = wasm_path().display().to_string();
    config
        .lines()
        .map(|line| {
            let Some(i) = line.find("filename:") else { return line.to_string() };
            let rest = line[i + "filename:".len()..].trim();
            let value = rest.trim_end_matches(['}', ' ']).trim_matches('"');
            if value.ends_with("tollgate.wasm") && !Path::new(value).exists() {
                line.replace(value, &wasm)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            if !matches!(name.as_str(), "target" | ".venv" | ".git" | "node_modules" | ".tmp") {
                walk(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Docker Compose.

struct Compose {
    services: BTreeMap<String, Value>,
    envoy_config_path: PathBuf,
    envoy_config: Value,
}

fn compose() -> Compose {
    let file = repo_root().join("examples/docker-compose.yaml");
    let doc = yaml_file(&file);
    let services: BTreeMap<String, Value> =
        doc["services"].as_object().expect("services").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let envoy = &services["envoy"];
    let mounts = mounts(envoy);
    let command = words(&envoy["command"]);
    let config_in_container = flag_value(&command, "-c")
        .or_else(|| flag_value(&command, "--config-path"))
        .unwrap_or_else(|| "/etc/envoy/envoy.yaml".into());
    let (src, _) = mounts
        .iter()
        .find(|(_, dst)| *dst == config_in_container)
        .unwrap_or_else(|| panic!("envoy runs -c {config_in_container}, which no volume mounts: {mounts:?}"));
    let envoy_config_path = repo_root().join("examples").join(src);
    let envoy_config = yaml_file(&envoy_config_path);
    Compose { services, envoy_config_path, envoy_config }
}

/// `SRC:DST[:MODE]` volumes of a service (short syntax; named volumes have no `/` or `.`).
fn mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|vols| {
            vols.iter()
                .map(|v| {
                    let v = s(v);
                    let parts: Vec<&str> = v.split(':').collect();
                    assert!(parts.len() >= 2, "volume {v:?}: expected SRC:DST");
                    (parts[0].to_string(), parts[1].to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Container ports a service publishes (`HOST:CONTAINER`, `IP:HOST:CONTAINER`) or exposes.
fn service_ports(service: &Value) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for key in ["ports", "expose"] {
        for p in service[key].as_array().into_iter().flatten() {
            let p = s(p);
            ports.insert(p.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap());
        }
    }
    ports
}

/// The Tollgate plugin config inside an Envoy config (the Wasm filter's StringValue).
fn plugin_configs(envoy: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    collect_plugin_configs(envoy, &mut out);
    out
}

fn collect_plugin_configs(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if m.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm")
            {
                let text = m["config"]["configuration"]["value"].as_str().expect("a StringValue configuration");
                out.push(serde_json::from_str(text).unwrap_or_else(|e| panic!("plugin config is not JSON: {e}")));
            }
            m.values().for_each(|x| collect_plugin_configs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_plugin_configs(x, out)),
        _ => {}
    }
}

fn clusters(envoy: &Value) -> BTreeMap<String, Value> {
    envoy["static_resources"]["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| (s(&c["name"]), c.clone()))
        .collect()
}

fn endpoints(cluster: &Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for group in cluster["load_assignment"]["endpoints"].as_array().into_iter().flatten() {
        for ep in group["lb_endpoints"].as_array().into_iter().flatten() {
            let sa = &ep["endpoint"]["address"]["socket_address"];
            out.push((s(&sa["address"]), sa["port_value"].as_u64().expect("port_value") as u16));
        }
    }
    out
}

/// The port a compose service listens on: its `--listen ADDR` flag, else its only exposed port.
fn listening_port(name: &str, service: &Value) -> u16 {
    let args = [words(&service["entrypoint"]), words(&service["command"])].concat();
    let ports = service_ports(service);
    match flag_value(&args, "--listen") {
        Some(addr) => {
            let port = port_of(&addr);
            assert!(ports.contains(&port), "service {name} listens on {port} but exposes {ports:?}");
            port
        }
        None => {
            assert_eq!(ports.len(), 1, "service {name}: cannot tell its port from {ports:?}");
            *ports.iter().next().unwrap()
        }
    }
}

#[test]
fn compose_mounts_exist_and_names_ports_and_flags_line_up() {
    eprintln!(
        "note: no Docker engine runs here, so the compose images are not built or started; \
         this test checks the compose file statically and the Envoy config with `envoy --mode validate`"
    );
    let c = compose();
    for name in ["envoy", "redis", "tollgate-store", "mock-llm"] {
        assert!(c.services.contains_key(name), "docker-compose.yaml has no {name} service");
    }
    assert_eq!(s(&c.services["envoy"]["image"]), "envoyproxy/envoy:v1.40.0");
    assert_eq!(s(&c.services["redis"]["image"]), "redis:7");
    // The official image is the Envoy the tests run.
    let version = Command::new(envoy_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("/1.40.0/"), "the harness Envoy is not 1.40.0");

    // Every mounted file exists, relative to examples/ (tollgate.wasm is `make build`'s output).
    let examples = repo_root().join("examples");
    for (name, service) in &c.services {
        for (src, dst) in mounts(service) {
            let path = examples.join(&src);
            let hint = if src.ends_with("tollgate.wasm") { ": run `make build`" } else { "" };
            assert!(path.is_file(), "service {name} mounts {src} (at {dst}), missing as {}{hint}", path.display());
        }
    }

    // The Envoy config loads the mounted filter.
    let envoy_mounts = mounts(&c.services["envoy"]);
    let wasm_in_container =
        &envoy_mounts.iter().find(|(src, _)| src.ends_with("tollgate.wasm")).expect("tollgate.wasm").1;
    let config_text = std::fs::read_to_string(&c.envoy_config_path).unwrap();
    assert!(!config_text.contains("${"), "{} must be concrete, no placeholders", rel(&c.envoy_config_path));
    assert!(
        config_text.contains(&format!("filename: {wasm_in_container}")),
        "the compose Envoy config must load the module mounted at {wasm_in_container}"
    );

    // Envoy publishes its listener and admin ports.
    let published = service_ports(&c.services["envoy"]);
    let listener_port = c.envoy_config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
        .as_u64()
        .unwrap() as u16;
    let admin_port = c.envoy_config["admin"]["address"]["socket_address"]["port_value"].as_u64().unwrap() as u16;
    assert!(published.contains(&listener_port), "envoy publishes {published:?}, listener is {listener_port}");
    assert!(published.contains(&admin_port), "envoy publishes {published:?}, admin is {admin_port}");

    // Cluster addresses are compose services, ports the ports those services listen on.
    let clusters = clusters(&c.envoy_config);
    let depends: BTreeSet<String> =
        c.services["envoy"]["depends_on"].as_object().expect("envoy depends_on").keys().cloned().collect();
    for (cluster_name, cluster) in &clusters {
        let ty = s(&cluster["type"]);
        assert!(
            ty == "STRICT_DNS" || ty == "LOGICAL_DNS",
            "cluster {cluster_name}: hostnames need STRICT_DNS, not {ty}"
        );
        for (host, port) in endpoints(cluster) {
            let service = c
                .services
                .get(&host)
                .unwrap_or_else(|| panic!("cluster {cluster_name} points at {host}, not a compose service"));
            assert_eq!(port, listening_port(&host, service), "cluster {cluster_name}: port of {host}");
            assert!(depends.contains(&host), "envoy should depend_on {host} (cluster {cluster_name})");
        }
    }
    assert_eq!(endpoints(&clusters["upstream"])[0].0, "mock-llm");

    // The plugin config names the store cluster and the store's proxy token.
    let plugins = plugin_configs(&c.envoy_config);
    assert_eq!(plugins.len(), 1, "one Tollgate filter in the compose Envoy config");
    let store = &plugins[0]["store"];
    let store_cluster = s(&store["cluster"]);
    let store_endpoints =
        endpoints(clusters.get(&store_cluster).unwrap_or_else(|| panic!("no cluster {store_cluster}")));
    assert_eq!(store_endpoints[0].0, "tollgate-store");
    assert!(
        plugins[0]["rules"].as_array().unwrap().iter().any(|r| r["scope"] == "global"),
        "the compose example should exercise the store with a global rule"
    );
    let env = &c.services["tollgate-store"]["environment"];
    let token = s(&env["TOLLGATE_PROXY_TOKEN"]);
    let default_token = token.split_once(":-").map(|(_, d)| d.trim_end_matches('}')).unwrap_or(&token);
    assert_eq!(default_token, s(&store["token"]), "store.token must equal the store's TOLLGATE_PROXY_TOKEN");

    // tollgate-store: the command line the brief fixes, with real flags and env variables.
    let store_svc = &c.services["tollgate-store"];
    let args = [words(&store_svc["entrypoint"]), words(&store_svc["command"])].concat();
    assert_eq!(args[0], "tollgate-store");
    assert_eq!(flag_value(&args, "--listen").as_deref(), Some("0.0.0.0:8080"));
    let redis_url = flag_value(&args, "--redis").expect("--redis");
    assert_eq!(redis_url, format!("redis://redis:{}", listening_port("redis", &c.services["redis"])));
    let store_help = help(&tollgate_e2e::store::store_bin());
    assert_flags_documented("tollgate-store", &args, &store_help);
    for var in env.as_object().unwrap().keys() {
        assert!(store_help.contains(&format!("[{var}]")), "tollgate-store --help does not know {var}");
    }
    let mock = &c.services["mock-llm"];
    let mock_args = [words(&mock["entrypoint"]), words(&mock["command"])].concat();
    assert_eq!(mock_args[0], "mock-llm");
    assert_flags_documented("mock-llm", &mock_args, &help(&workspace_bin("mock-llm")));

    // Both built services come from store/Dockerfile stages that exist.
    for name in ["tollgate-store", "mock-llm"] {
        let build = &c.services[name]["build"];
        let dockerfile = repo_root().join("examples").join(s(&build["context"])).join(s(&build["dockerfile"]));
        let text = std::fs::read_to_string(&dockerfile).unwrap_or_else(|e| panic!("{}: {e}", dockerfile.display()));
        let target = s(&build["target"]);
        assert!(
            text.lines().any(|l| l.starts_with("FROM ") && l.trim_end().ends_with(&format!(" AS {target}"))),
            "{}: no stage {target}",
            dockerfile.display()
        );
    }
}

#[test]
fn store_dockerfile_builds_the_binaries_the_compose_file_runs() {
    let text = tollgate_e2e::read("store/Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms[0].contains("rust:") && froms[0].contains(" AS builder"), "first stage: the Rust builder");
    assert!(froms[1..].iter().all(|f| f.contains("debian:") && f.contains("-slim")), "runtime stages: debian-slim");
    assert!(froms.last().unwrap().ends_with("AS tollgate-store"), "the default (last) stage is the store");
    // COPY sources exist, and every workspace member is copied (cargo loads the whole workspace).
    let mut copied = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo_root().join(src).exists(), "store/Dockerfile copies {src}, which does not exist");
            copied.insert(src.to_string());
        }
    }
    let cargo = tollgate_e2e::read("Cargo.toml");
    let members = cargo.lines().find(|l| l.starts_with("members")).expect("workspace members");
    for member in members.split('"').skip(1).step_by(2).filter(|m| *m != ".") {
        let covered = copied.iter().any(|c| member == c || member.starts_with(&format!("{c}/")));
        assert!(covered, "store/Dockerfile does not copy workspace member {member}");
    }
    for (bin, manifest) in [("tollgate-store", "store/Cargo.toml"), ("mock-llm", "tests/Cargo.toml")] {
        assert!(text.contains(&format!("--bin {bin}")), "store/Dockerfile does not build {bin}");
        assert!(tollgate_e2e::read(manifest).contains(&format!("name = \"{bin}\"")), "{manifest} has no bin {bin}");
    }
    assert!(text.contains("--locked"), "build with the repo's Cargo.lock");

    let wasm_image = tollgate_e2e::read("Dockerfile.wasm");
    let instructions: Vec<&str> =
        wasm_image.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    assert_eq!(instructions, vec!["FROM scratch", "COPY tollgate.wasm /plugin.wasm"]);
}

// ---------------------------------------------------------------------------------------------
// Every Envoy config of the repo passes `envoy --mode validate`.

/// A plugin config for templates: an example of examples/, with a store section and a global
/// rule when the template has a tollgate_store cluster.
fn plugin_config_for(template: &str) -> String {
    let mut config: Value = serde_json::from_str(&tollgate_e2e::read("examples/demo.json")).unwrap();
    if template.contains("tollgate_store") {
        config["store"] = json!({"cluster": "tollgate_store", "authority": "tollgate-store", "token": "t"});
        config["rules"].as_array_mut().unwrap().push(json!({
            "name": "fleet", "key": ["api_key"], "scope": "global", "algorithm": "fixed_window",
            "limit": 100, "window": "1m"
        }));
    }
    config.to_string()
}

/// The config text, rendered: placeholders filled (dummy ports, the built filter, a valid
/// plugin config) and container paths of tollgate.wasm pointed at the built filter.
fn rendered(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut port = 18_000;
    for piece in text.split("${").skip(1) {
        let name = piece.split('}').next().unwrap().to_string();
        if vars.iter().any(|(k, _)| *k == name) {
            continue;
        }
        let value = match name.as_str() {
            "WASM" => wasm_path().display().to_string(),
            "PLUGIN_CONFIG" => serde_json::to_string(&plugin_config_for(&text)).unwrap(),
            "STOP_ITERATION" => "true".to_string(),
            n if n.starts_with("ACCESS_LOG_") => {
                std::env::temp_dir().join(format!("tollgate-validate-{}.log", n.to_lowercase())).display().to_string()
            }
            n if n.ends_with("_PORT") => {
                port += 1;
                port.to_string()
            }
            other => panic!(
                "{}: unknown placeholder ${{{other}}}: teach tests/tests/e2e/deploy/packaging.rs its value",
                rel(path)
            ),
        };
        vars.push((name, value));
    }
    with_local_wasm(&render(&text, &vars))
}

/// Every YAML file of the repo that is an Envoy bootstrap (has static_resources).
fn envoy_configs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(&repo_root(), &mut files);
    let mut configs: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("static_resources:"))))
        .collect();
    configs.sort();
    configs
}

#[test]
fn every_envoy_config_in_the_repo_passes_envoy_validate() {
    let configs = envoy_configs();
    let names: Vec<String> = configs.iter().map(|p| rel(p)).collect();
    for expected in ["envoy/standalone.yaml", "envoy/with-store.yaml", "examples/compose/envoy.yaml"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not found among {names:?}");
    }
    let results: Vec<(String, Result<(), String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|p| {
                let name = rel(p);
                let text = rendered(p);
                scope.spawn(move || {
                    let r = envoy_validate(&name, &text);
                    (name, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    eprintln!("envoy --mode validate: {} configs: {names:?}", results.len());
    assert!(failures.is_empty(), "{} of {} Envoy configs rejected:\n{}", failures.len(), results.len(), {
        failures.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n\n")
    });
}

#[test]
fn envoy_validate_also_rejects_an_invalid_plugin_config() {
    // Without this, a validate that skipped the filter would pass everything above.
    let template = tollgate_e2e::read("envoy/standalone.yaml");
    let bad = json!({"rules": [{"name": "r", "algorithm": "fixed_window", "limit": 0, "window": "1m"}]});
    let vars = vec![
        ("UPSTREAM_PORT".to_string(), "18000".to_string()),
        ("WASM".to_string(), wasm_path().display().to_string()),
        ("PLUGIN_CONFIG".to_string(), serde_json::to_string(&bad.to_string()).unwrap()),
        ("STOP_ITERATION".to_string(), "false".to_string()),
    ];
    let err = envoy_validate("invalid", &render(&template, &vars)).expect_err("limit 0 must be rejected");
    assert!(err.contains("rules[0].limit"), "the log should name the field:\n{err}");
    // And the compose config with a broken cluster reference is rejected too.
    let compose = with_local_wasm(&tollgate_e2e::read("examples/compose/envoy.yaml"));
    let broken = compose.replace("route: { cluster: upstream,", "route: { cluster: no-such-cluster,");
    assert_ne!(broken, compose);
    assert!(envoy_validate("broken compose", &broken).is_err(), "a route to an unknown cluster must fail");
}

// ---------------------------------------------------------------------------------------------
// OCI packaging.

/// SHA-256 (FIPS 180-4), hex: the digests are checked independently of the script's sha256sum.
fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_matches_known_vectors() {
    assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let long = vec![b'a'; 1000];
    assert_eq!(sha256_hex(&long), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

/// Run scripts/oci.sh into `out` (no engine, a fixed creation time).
fn run_oci(out: &Path, wasm: &Path) -> std::process::Output {
    Command::new(repo_root().join("scripts/oci.sh"))
        .env("OUT", out)
        .env("WASM", wasm)
        .env("OCI_ENGINE", "none")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("TAG")
        .output()
        .expect("run scripts/oci.sh")
}

/// A checked OCI layout: every blob is named by its digest; returns the one manifest.
fn check_layout(dir: &Path, tag: &str) -> (Value, String) {
    let layout: Value = serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let blobs = dir.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        assert_eq!(sha256_hex(&std::fs::read(entry.path()).unwrap()), name, "{}: blob name != digest", dir.display());
    }
    let blob = |desc: &Value| -> Vec<u8> {
        let digest = s(&desc["digest"]);
        let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("digest {digest}"));
        let bytes = std::fs::read(blobs.join(hex)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
        assert_eq!(bytes.len() as u64, desc["size"].as_u64().unwrap(), "size of {digest}");
        bytes
    };
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one manifest per layout");
    assert_eq!(manifests[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifests[0]["annotations"]["org.opencontainers.image.ref.name"], tag);
    let manifest: Value = serde_json::from_slice(&blob(&manifests[0])).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    blob(&manifest["config"]);
    for layer in manifest["layers"].as_array().unwrap() {
        blob(layer);
    }
    (manifest, s(&manifests[0]["digest"]))
}

#[test]
fn oci_script_writes_valid_layouts_of_the_built_module() {
    let wasm = wasm_path();
    let module = std::fs::read(&wasm).unwrap();
    let module_digest = format!("sha256:{}", sha256_hex(&module));
    let cargo = tollgate_e2e::read("Cargo.toml");
    let version = cargo.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"').to_string();
    let tmp = TempDir::new("oci");
    let out = run_oci(&tmp.0, &wasm);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "scripts/oci.sh failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&module_digest[7..]), "the script prints the module's sha256 (for WasmPlugin):\n{stdout}");

    // The Wasm OCI artifact: the module itself is the layer.
    let (manifest, artifact_digest) = check_layout(&tmp.0.join("oci"), &version);
    let config = &manifest["config"];
    assert_eq!(config["mediaType"], "application/vnd.wasm.config.v0+json");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert!(
        ["application/wasm", "application/vnd.wasm.content.layer.v1+wasm"]
            .contains(&layers[0]["mediaType"].as_str().unwrap()),
        "layer media type {}",
        layers[0]["mediaType"]
    );
    assert_eq!(layers[0]["digest"], module_digest.as_str());
    assert_eq!(layers[0]["size"], module.len() as u64);
    let config_blob: Value = serde_json::from_slice(
        &std::fs::read(tmp.0.join("oci/blobs/sha256").join(&s(&config["digest"])[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(config_blob["architecture"], "wasm");
    assert_eq!(config_blob["os"], "wasip1");
    assert_eq!(config_blob["layerDigests"], json!([module_digest]));
    assert_eq!(config_blob["created"], "2023-11-14T22:13:20Z", "created = SOURCE_DATE_EPOCH");

    // The Istio image: one tar+gzip layer holding exactly /plugin.wasm = the module.
    let (image, _) = check_layout(&tmp.0.join("oci-istio"), &version);
    let layer = &image["layers"][0];
    assert_eq!(image["layers"].as_array().unwrap().len(), 1);
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(image["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layer_path = tmp.0.join("oci-istio/blobs/sha256").join(&s(&layer["digest"])[7..]);
    let list = Command::new("tar").arg("-tzf").arg(&layer_path).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "plugin.wasm");
    let extracted = Command::new("tar").arg("-xzOf").arg(&layer_path).arg("plugin.wasm").output().unwrap();
    assert!(extracted.stdout == module, "plugin.wasm in the layer is not the built module");
    let tar = Command::new("gzip").arg("-dc").arg(&layer_path).output().unwrap();
    let image_config: Value = serde_json::from_slice(
        &std::fs::read(tmp.0.join("oci-istio/blobs/sha256").join(&s(&image["config"]["digest"])[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(image_config["rootfs"]["diff_ids"], json!([format!("sha256:{}", sha256_hex(&tar.stdout))]));

    // Reproducible: the same module and time give the same digests (so they can be pinned).
    let again = TempDir::new("oci-again");
    assert!(run_oci(&again.0, &wasm).status.success());
    assert_eq!(check_layout(&again.0.join("oci"), &version).1, artifact_digest);

    // No module: a clear failure.
    let none = TempDir::new("oci-none");
    let failed = run_oci(&none.0, &none.0.join("missing.wasm"));
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("make build"));
}

// ---------------------------------------------------------------------------------------------
// Docs.

#[test]
fn deploy_and_monitoring_docs_link_to_files_that_exist() {
    for doc in ["docs/deploy.md", "docs/monitoring.md", "examples/istio/README.md"] {
        let path = repo_root().join(doc);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
        let mut links = 0;
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            if target.starts_with("http") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let resolved = path.parent().unwrap().join(file);
            assert!(resolved.exists(), "{doc} links to {target}, which does not exist");
            links += 1;
        }
        assert!(links > 0, "{doc} links to nothing");
    }
    let deploy = tollgate_e2e::read("docs/deploy.md");
    for needle in [
        "oras push",
        "crane",
        "docker compose",
        "outbound|8080||tollgate-store.tollgate.svc.cluster.local",
        "allow_on_headers_stop_iteration",
        "hold_headers",
        "scripts/oci.sh",
        "with-store.yaml",
    ] {
        assert!(deploy.contains(needle), "docs/deploy.md should cover {needle:?}");
    }
}
