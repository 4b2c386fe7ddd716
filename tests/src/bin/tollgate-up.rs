//! `tollgate-up`: run Tollgate on this machine to try a configuration by hand (the tutorials of
//! docs/tutorials.md use it). Starts the mock LLM and Envoy with the given plugin configuration
//! (envoy/standalone.yaml); with `--store`, also redis-server and tollgate-store
//! (envoy/with-store.yaml). Prints where everything listens, then `ready`, and runs until
//! Ctrl-C, SIGTERM, or the end of its standard input when that is not a terminal. Everything it
//! started is stopped when it exits.
//!
//! Needs `make build` (tollgate.wasm) and `cargo build -p tollgate-e2e -p tollgate-store --bins`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::{envoy_bin, repo_root, wasm_path, Envoy, EnvoyOptions, MockLlm, Proc, TempDir};

const USAGE: &str = "usage: tollgate-up [OPTIONS] CONFIG.json
  --store               also start redis-server and tollgate-store (for \"scope\": \"global\" rules)
  --proxies N           start N Envoys (default 1); with --store they share the store
  --listen-port P       Envoy 1 listens on P, Envoy 2 on P+1, ... (default: free ports, printed)
  --proxy-token T       the store's proxy token (default: the config's store.token, else dev-proxy-token)
  --admin-token T       the store's admin token, for tollgatectl (default dev-admin-token)
Prints `envoy N: http://127.0.0.1:PORT ...`, `store: ...`, then `ready`. Stops everything on
Ctrl-C, SIGTERM, or when stdin (not a terminal) closes.
";
const DEFAULT_PROXY_TOKEN: &str = "dev-proxy-token";
const DEFAULT_ADMIN_TOKEN: &str = "dev-admin-token";
/// The listener of envoy/standalone.yaml and envoy/with-store.yaml, rewritten by --listen-port.
const LISTENER: &str = "- name: ingress\n    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }";

static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Options {
    config: String,
    store: bool,
    proxies: u16,
    listen_port: Option<u16>,
    proxy_token: Option<String>,
    admin_token: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options { proxies: 1, ..Default::default() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u16>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag {
            "--store" => o.store = true,
            "--proxies" => o.proxies = number(value()?)?.max(1),
            "--listen-port" => o.listen_port = Some(number(value()?)?),
            "--proxy-token" => o.proxy_token = Some(value()?),
            "--admin-token" => o.admin_token = Some(value()?),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ if o.config.is_empty() => o.config = arg.clone(),
            _ => return Err(format!("one configuration file only ({arg:?})")),
        }
    }
    if o.config.is_empty() {
        return Err("the plugin configuration (a JSON file) is required".into());
    }
    Ok(o)
}

/// Check the configuration against --store and fill its store section; the proxy token to use.
fn prepare_store_section(config: &mut Value, o: &Options) -> Result<Option<String>, String> {
    let global = config["rules"].as_array().is_some_and(|r| r.iter().any(|r| r["scope"] == "global"));
    if !o.store {
        return match config.get("store").is_some() || global {
            true => Err("this configuration has a store section or global rules: add --store".into()),
            false => Ok(None),
        };
    }
    let Some(store) = config.as_object_mut().map(|c| c.entry("store").or_insert_with(|| json!({}))) else {
        return Err("the configuration is not a JSON object".into());
    };
    let cluster = store.get("cluster").and_then(Value::as_str).unwrap_or("tollgate_store");
    if cluster != "tollgate_store" {
        return Err(format!("store.cluster is {cluster:?}: envoy/with-store.yaml names it \"tollgate_store\""));
    }
    let in_config = store.get("token").and_then(Value::as_str).map(String::from);
    let token = match (o.proxy_token.clone(), in_config) {
        (Some(flag), Some(file)) if flag != file => {
            return Err(format!("store.token of the configuration ({file:?}) differs from --proxy-token {flag:?}"))
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => DEFAULT_PROXY_TOKEN.to_string(),
    };
    store["token"] = json!(token);
    Ok(Some(token))
}

/// tollgate-store on a free port with these tokens: (port, process).
fn start_store(redis_url: &str, proxy_token: &str, admin_token: &str) -> Result<(u16, Proc), String> {
    let mut child = Command::new(tollgate_e2e::store::store_bin())
        .args(["--redis", redis_url, "--listen", "127.0.0.1:0", "--proxy-token", proxy_token])
        .args(["--admin-token", admin_token])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start tollgate-store: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let proc = Proc { name: "tollgate-store".into(), child };
    match tollgate_e2e::store::listening_port(stdout) {
        Ok(port) => Ok((port, proc)),
        Err(line) => Err(format!("tollgate-store did not start (it printed {line:?}; its errors are above)")),
    }
}

fn run(o: &Options) -> Result<(), String> {
    // Fail early, before starting anything, when the build or Envoy is missing.
    wasm_path();
    envoy_bin();
    let text = std::fs::read_to_string(&o.config).map_err(|e| format!("read {}: {e}", o.config))?;
    let mut config: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", o.config))?;
    let proxy_token = prepare_store_section(&mut config, o)?;
    let admin_token = o.admin_token.clone().unwrap_or(DEFAULT_ADMIN_TOKEN.into());

    let llm = MockLlm::start();
    println!("mock-llm: http://127.0.0.1:{}", llm.port);
    let mut store = None;
    if let Some(proxy_token) = &proxy_token {
        let redis = Redis::start();
        println!("redis: {}", redis.url());
        let (port, proc) = start_store(&redis.url(), proxy_token, &admin_token)?;
        println!("store: http://127.0.0.1:{port} (proxy token {proxy_token}, admin token {admin_token})");
        store = Some((port, proc, redis));
    }
    let base = repo_root().join(if store.is_some() { "envoy/with-store.yaml" } else { "envoy/standalone.yaml" });
    let templates = TempDir::new("tollgate-up");
    let mut envoys = Vec::new();
    for i in 0..o.proxies {
        let mut opts = EnvoyOptions::standalone(&config.to_string(), llm.port);
        opts.template = base.clone();
        if let Some((port, _, _)) = &store {
            opts.vars.push(("STORE_PORT".into(), port.to_string()));
        }
        if let Some(first) = o.listen_port {
            let port = first.checked_add(i).ok_or("--listen-port is too high")?;
            let template = std::fs::read_to_string(&base).map_err(|e| format!("read {}: {e}", base.display()))?;
            let listener = LISTENER.replace("port_value: 0", &format!("port_value: {port}"));
            opts.template = templates.0.join(format!("envoy-{port}.yaml"));
            std::fs::write(&opts.template, template.replacen(LISTENER, &listener, 1)).unwrap();
        }
        let envoy = Envoy::try_start(opts).map_err(|f| {
            // Its errors (a port in use, an invalid plugin configuration), else the end of its log.
            let all: Vec<&str> = f.log.lines().collect();
            let errors: Vec<&str> =
                all.iter().copied().filter(|l| l.contains("][critical][") || l.contains("][error][")).collect();
            let shown = if errors.is_empty() { &all[all.len().saturating_sub(10)..] } else { &errors[..] };
            format!("Envoy {} did not start (exit {:?}):\n{}", i + 1, f.exit_code, shown.join("\n"))
        })?;
        println!("envoy {}: http://127.0.0.1:{} (admin http://127.0.0.1:{})", i + 1, envoy.port, envoy.admin_port);
        envoys.push(envoy);
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    eprintln!("(Ctrl-C stops everything)");
    if !std::io::stdin().is_terminal() {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            STOP.store(true, Ordering::SeqCst);
        });
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("tollgate-up: stopping");
    drop(envoys); // then the store, Redis and the mock LLM, by their Drop guards
    Ok(())
}

#[cfg(unix)]
fn on_stop_signals() {
    extern "C" fn stop(_: i32) {
        STOP.store(true, Ordering::SeqCst);
    }
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(2, stop); // SIGINT
        signal(15, stop); // SIGTERM
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprint!("tollgate-up: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    on_stop_signals();
    // The harness reports a missing build or tool by panicking: print it as one line (the
    // unwinding still stops whatever was started).
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p.downcast_ref::<String>().cloned().or(p.downcast_ref::<&str>().map(|s| s.to_string()));
        eprintln!("tollgate-up: {}", msg.unwrap_or_else(|| info.to_string()));
    }));
    match std::panic::catch_unwind(|| run(&o)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("tollgate-up: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}
