//! A running `tollgate-store` (the workspace's built binary) on a free port, killed on drop;
//! its stderr is printed when the test failed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::http::{Request, Response};
use crate::{Proc, TempDir};

/// The port of a starting tollgate-store, from the first line of its stdout (`tollgate-store
/// listening on ADDR:PORT`), waiting at most 15 s; the rest of its stdout is drained so that
/// the store never blocks on a full pipe. Err: the line it printed instead.
pub fn listening_port(stdout: std::process::ChildStdout) -> Result<u16, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    let port =
        line.trim().strip_prefix("tollgate-store listening on ").and_then(|a| a.rsplit(':').next()?.parse().ok());
    port.ok_or(line)
}

pub const PROXY_TOKEN: &str = "test-proxy-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The built `tollgate-store` binary, or a failure that says how to build it (also when it
/// is older than its sources: a stale binary would test old code).
pub fn store_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_STORE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("tollgate-store"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("tollgate-store not found next to {}: run `cargo build -p tollgate-store`", exe.display())
        });
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if let (Some(built), Some((newest, path))) = (built, newest_source()) {
        assert!(
            built >= newest,
            "{} is older than {}: run `cargo build -p tollgate-store`",
            bin.display(),
            path.display()
        );
    }
    bin
}

/// The most recently modified source the store binary is built from (the store's own code,
/// the console's embedded files, the filter's algorithms and the wire types), with its modification time.
fn newest_source() -> Option<(SystemTime, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            // tollgatectl's own files do not go into the tollgate-store binary.
            if p.ends_with("tollgatectl") {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| ["rs", "html", "css", "js", "svg"].iter().any(|x| e == *x)) {
                // Sources, and the console's files embedded with include_bytes!.
                out.push(p);
            }
        }
    }
    let root = crate::repo_root();
    let mut files = vec![root.join("store/openapi.json")];
    walk(&root.join("store/src"), &mut files);
    // The store links the core (its algorithms, wire types, configuration).
    walk(&root.join("src"), &mut files);
    files.into_iter().filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p))).max()
}

pub struct Store {
    pub port: u16,
    dir: TempDir,
    proc: Option<Proc>,
}

impl Store {
    /// Start against `redis_url` with the test tokens, on a free port; `extra` are more flags.
    /// Unless `extra` sets `--redis-timeout-ms`, Redis calls get 5 s: on a busy machine Redis
    /// can be starved for longer than the store's 200 ms default, and a test that is not about
    /// a slow Redis must not see its 503s (the tests that are pass their own deadline).
    pub fn start(redis_url: &str, extra: &[&str]) -> Store {
        let mut args = vec!["--redis", redis_url];
        if !extra.contains(&"--redis-timeout-ms") {
            args.extend_from_slice(&["--redis-timeout-ms", "5000"]);
        }
        args.extend_from_slice(extra);
        Store::start_with(&args)
    }

    /// Start with exactly these flags plus `--listen 127.0.0.1:0` and the test tokens.
    pub fn start_with(flags: &[&str]) -> Store {
        let dir = TempDir::new("store");
        let err_path = dir.0.join("stderr.log");
        let err = std::fs::File::create(&err_path).unwrap();
        let mut child = Command::new(store_bin())
            .args(flags)
            .args(["--listen", "127.0.0.1:0", "--proxy-token", PROXY_TOKEN, "--admin-token", ADMIN_TOKEN])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn tollgate-store");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc { name: "tollgate-store".into(), child };
        let port = match listening_port(stdout) {
            Ok(port) => port,
            Err(line) => {
                drop(proc);
                panic!(
                    "tollgate-store printed {line:?}, expected `tollgate-store listening on 127.0.0.1:PORT`. stderr:\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
        };
        Store { port, dir, proc: Some(proc) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Response {
        crate::http::get(&self.url(path)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// POST JSON with the proxy token.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request(path, body, None)
    }

    /// POST JSON with the proxy token at a chosen time (the store must run with `--test-clock`).
    pub fn post_at(&self, path: &str, body: &serde_json::Value, now_ns: u64) -> Response {
        self.request(path, body, Some(now_ns))
    }

    fn request(&self, path: &str, body: &serde_json::Value, now_ns: Option<u64>) -> Response {
        let mut req =
            Request::post(&self.url(path), &body.to_string()).header("authorization", &format!("Bearer {PROXY_TOKEN}"));
        if let Some(now) = now_ns {
            req = req.header("x-tollgate-now-ns", &now.to_string());
        }
        req.send().unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Send SIGTERM and wait (up to `timeout`) for the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let proc = self.proc.as_mut()?;
        let _ = Command::new("kill").args(["-TERM", &proc.child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = proc.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.proc.take());
        if std::thread::panicking() {
            eprintln!("---- tollgate-store stderr (test failed) ----\n{}\n---- end ----", self.stderr());
        }
    }
}

/// Run `tollgate-store` with `args` (and only the environment variables in `env`) expecting
/// it to exit within `timeout`: (exit code, stdout, stderr). A run still going then is killed
/// and reported with exit code None.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(store_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate-store");
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (code, out, err)
}
