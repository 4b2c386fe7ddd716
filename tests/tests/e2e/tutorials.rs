//! docs/tutorials.md as written: each tutorial's steps run here against `tollgate-up` started
//! with the tutorial's own arguments (on free ports instead of 10000), the requests of its curl
//! commands (whose text must appear in the doc verbatim) are sent, and the outputs the doc shows
//! are asserted. The configurations shown are the files of examples/, every file the doc names
//! exists, and `tollgatectl validate` accepts the configurations.
//!
//! Needs `make build` (tollgate.wasm) and `cargo build --workspace --bins` (tollgate-store,
//! tollgatectl).

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::{away_from_window_edge, free_port, read, repo_root, workspace_bin, TempDir};

const DOC: &str = "docs/tutorials.md";
const UP: &str = "cargo run -q -p tollgate-e2e --bin tollgate-up -- ";

fn doc() -> String {
    read(DOC)
}

/// Every `snippet` appears in the tutorials verbatim.
fn doc_has(snippets: &[&str]) {
    let doc = doc();
    for s in snippets {
        assert!(doc.contains(s), "{DOC} no longer contains:\n{s}\n(update the doc and this test together)");
    }
}

/// Two consecutive free ports (`--listen-port P` with two proxies takes P and P+1).
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A running `tollgate-up`, started with the arguments of the doc's command line.
struct Up {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `envoy N` URLs, in order.
    envoys: Vec<String>,
    store: Option<String>,
    mock: String,
    stdout: Vec<String>,
    _dir: TempDir,
}

impl Up {
    /// `command` is the doc's line (`cargo run ... -- ARGS`); `--listen-port 10000` becomes a free
    /// port.
    fn start(command: &str) -> Up {
        doc_has(&[command]);
        let args = command.strip_prefix(UP).unwrap_or_else(|| panic!("not a tollgate-up command: {command}"));
        let port = free_port_pair();
        let args: Vec<String> =
            args.split_whitespace().map(|a| if a == "10000" { port.to_string() } else { a.to_string() }).collect();
        let dir = TempDir::new("tutorial");
        let stderr = std::fs::File::create(dir.0.join("stderr.log")).unwrap();
        let mut child = Command::new(workspace_bin("tollgate-up"))
            .args(&args)
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tollgate-up");
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut up =
            Up { child, stdin, envoys: Vec::new(), store: None, mock: String::new(), stdout: Vec::new(), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no `ready` from tollgate-up {args:?}:\n{}", up.output()));
            up.stdout.push(line.clone());
            let url = |rest: &str| rest.split_whitespace().next().unwrap().to_string();
            if line == "ready" {
                break;
            } else if let Some(rest) = line.strip_prefix("mock-llm: ") {
                up.mock = url(rest);
            } else if let Some(rest) = line.strip_prefix("store: ") {
                up.store = Some(url(rest));
            } else if let Some((n, rest)) = line.strip_prefix("envoy ").and_then(|l| l.split_once(": ")) {
                assert_eq!(n, (up.envoys.len() + 1).to_string(), "{line}");
                up.envoys.push(url(rest));
            }
        }
        // The first Envoy is where --listen-port put it, the next ones follow.
        for (i, url) in up.envoys.iter().enumerate() {
            assert_eq!(*url, format!("http://127.0.0.1:{}", port + i as u16), "{}", up.output());
        }
        up
    }

    fn output(&self) -> String {
        let err = std::fs::read_to_string(self._dir.0.join("stderr.log")).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{err}", self.stdout.join("\n"))
    }

    /// What the doc calls `$URL` (the first Envoy).
    fn url(&self) -> &str {
        &self.envoys[0]
    }

    /// Like Ctrl-C: SIGINT to tollgate-up (only), which must stop everything it started.
    fn interrupt(&mut self) {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill -INT {}", self.child.id());
        self.wait_for_exit();
    }

    /// Close its stdin (the way a script stops it) and wait for it to exit.
    fn wait_for_exit(&mut self) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Nothing it printed still listens.
    fn assert_all_stopped(&self) {
        let mut urls = self.envoys.clone();
        urls.push(self.mock.clone());
        urls.extend(self.store.clone());
        for url in urls {
            let addr = url.strip_prefix("http://").unwrap();
            assert!(std::net::TcpStream::connect(addr).is_err(), "{url} still listens after tollgate-up stopped");
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if !self.wait_for_exit() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- tollgate-up ----\n{}\n---- end ----", self.output());
        }
    }
}

fn post(url: &str, xff: &str) -> Response {
    // curl -X POST URL -H 'X-Forwarded-For: ...' -d '{}'
    Request::post(url, "{}").header("x-forwarded-for", xff).send().unwrap()
}

fn get_with(url: &str, header: &str, value: &str) -> Response {
    Request::get(url).header(header, value).send().unwrap()
}

fn assert_429(r: &Response, rule: &str, kind: &str, message: &str) {
    assert_eq!(r.status, 429, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "rate_limit_exceeded", "message": message, "rule": rule, "type": kind}})
    );
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
}

fn statuses(responses: &[Response]) -> String {
    responses.iter().map(|r| r.status.to_string()).collect::<Vec<_>>().join(" ")
}

const TEN_AND_429: &str = "200 200 200 200 200 200 200 200 200 200 429";

// ---------------------------------------------------------------------------------------------

#[test]
fn tutorial_1_slowapi_per_ip() {
    let mut up = Up::start(&format!("{UP}--listen-port 10000 examples/slowapi-per-ip.json"));
    doc_has(&[
        "URL=http://127.0.0.1:10000\nfor i in $(seq 1 11); do\n  curl -s -o /dev/null -w '%{http_code} ' -X POST $URL/v1/batches -H 'X-Forwarded-For: 203.0.113.7' -d '{}'\ndone; echo\ncurl -si -X POST $URL/v1/batches -H 'X-Forwarded-For: 203.0.113.7' -d '{}'\n",
        TEN_AND_429,
        "ratelimit-policy: \"create-batch-per-ip\";q=10;w=60\n",
        "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit exceeded: 10 per 1m\",\"rule\":\"create-batch-per-ip\",\"type\":\"requests\"}}",
        "curl -s -o /dev/null -w '%{http_code}\\n' -X POST $URL/v1/batches -H 'X-Forwarded-For: 198.51.100.23' -d '{}'\ncurl -s -o /dev/null -w '%{http_code}\\n' -X POST $URL/v1/batches -H 'X-Forwarded-For: 6.6.6.6, 203.0.113.7' -d '{}'\ncurl -s -o /dev/null -w '%{http_code}\\n' -X POST $URL/v1/files -H 'X-Forwarded-For: 203.0.113.7' -d '{}'\n",
        "200\n429\n200\n",
    ]);
    let batches = format!("{}/v1/batches", up.url());
    // A sliding window's counts are exact within one minute of the UTC clock.
    away_from_window_edge(Duration::from_secs(60), Duration::from_secs(10));
    let burst: Vec<Response> = (0..11).map(|_| post(&batches, "203.0.113.7")).collect();
    assert_eq!(statuses(&burst), TEN_AND_429);
    let r = post(&batches, "203.0.113.7");
    assert_429(&r, "create-batch-per-ip", "requests", "Rate limit exceeded: 10 per 1m");
    assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"create-batch-per-ip\";q=10;w=60"));
    let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset), "reset {reset}");
    assert_eq!(r.header("ratelimit"), Some(format!("\"create-batch-per-ip\";r=0;t={reset}").as_str()));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 66, "Retry-After {retry}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(post(&batches, "198.51.100.23").status, 200, "another client address");
    assert_eq!(post(&batches, "6.6.6.6, 203.0.113.7").status, 429, "a spoofed address on the left");
    assert_eq!(post(&format!("{}/v1/files", up.url()), "203.0.113.7").status, 200, "files have their own 20");
    // "Stop it with Ctrl-C": everything it started goes away.
    up.interrupt();
    up.assert_all_stopped();
}

#[test]
fn tutorial_2_openai_gateway_rpm_and_tpm() {
    let mut up = Up::start(&format!("{UP}--listen-port 10000 examples/openai-gateway.json"));
    let chat = |max_tokens: u32| {
        format!(r#"{{"model":"gpt-4o","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"Hello"}}]}}"#)
    };
    doc_has(&[
        "for i in $(seq 1 11); do\n  curl -s -o /dev/null -w '%{http_code} ' $URL/v1/models -H 'Authorization: Bearer sk-free-1'\ndone; echo\ncurl -si $URL/v1/models -H 'Authorization: Bearer sk-free-1'\n",
        "ratelimit-policy: \"per-key-rpm\";q=10;w=60\nratelimit: \"per-key-rpm\";r=0;t=60\nx-ratelimit-limit-requests: 10\nx-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 1m0s\nretry-after: 6\n",
        "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit exceeded: 10 per 1m\",\"rule\":\"per-key-rpm\",\"type\":\"requests\"}}",
        "for i in $(seq 1 11); do\n  curl -s -o /dev/null -w '%{http_code} ' $URL/v1/models -H 'Authorization: Bearer sk-pro-1'\ndone; echo\ncurl -s -o /dev/null -D - $URL/v1/models -H 'Authorization: Bearer sk-pro-1' | grep -i requests\n",
        "200 200 200 200 200 200 200 200 200 200 200\nx-ratelimit-limit-requests: 60\nx-ratelimit-remaining-requests: 48\n",
        "for i in 1 2 3 4; do\n  curl -s -o /dev/null -D - $URL/v1/chat/completions -H 'Authorization: Bearer sk-free-3' \\\n    -H 'Content-Type: application/json' \\\n    -d '{\"model\":\"gpt-4o\",\"max_tokens\":300,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}' \\\n    | grep -iE '^HTTP|remaining-tokens'\ndone\n",
        "HTTP/1.1 200 OK\nx-ratelimit-remaining-tokens: 700\nHTTP/1.1 200 OK\nx-ratelimit-remaining-tokens: 398\nHTTP/1.1 200 OK\nx-ratelimit-remaining-tokens: 96\nHTTP/1.1 429 Too Many Requests\nx-ratelimit-remaining-tokens: 94\n",
        "curl -s $URL/v1/chat/completions -H 'Authorization: Bearer sk-free-3' -H 'Content-Type: application/json' \\\n  -d '{\"model\":\"gpt-4o\",\"max_tokens\":300,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'; echo\ncurl -s -o /dev/null -w '%{http_code}\\n' $URL/v1/chat/completions -H 'Authorization: Bearer sk-free-3' \\\n  -H 'Content-Type: application/json' \\\n  -d '{\"model\":\"gpt-4o\",\"max_tokens\":50,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n",
        "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit exceeded: 1000 per 1m\",\"rule\":\"per-key-tpm\",\"type\":\"tokens\"}}\n200\n",
        "curl -s $URL/v1/models; echo\n",
        r#"{"error":{"code":"missing_key","message":"This request lacks the key rule \"per-key-rpm\" needs","rule":"per-key-rpm","type":"requests"}}"#,
    ]);
    let models = format!("{}/v1/models", up.url());
    let completions = format!("{}/v1/chat/completions", up.url());
    let bearer = |key: &str| format!("Bearer {key}");

    // Requests per minute: a free key.
    let burst: Vec<Response> = (0..11).map(|_| get_with(&models, "authorization", &bearer("sk-free-1"))).collect();
    assert_eq!(statuses(&burst), TEN_AND_429);
    let r = get_with(&models, "authorization", &bearer("sk-free-1"));
    assert_429(&r, "per-key-rpm", "requests", "Rate limit exceeded: 10 per 1m");
    assert_eq!(r.header("ratelimit-policy"), Some("\"per-key-rpm\";q=10;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"per-key-rpm\";r=0;t=60"));
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("10"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-requests"), Some("1m0s"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "one request comes back every 6 s: Retry-After {retry}");

    // The pro key: 60 per minute (one back per second, hence 48 or 49 left).
    let burst: Vec<Response> = (0..11).map(|_| get_with(&models, "authorization", &bearer("sk-pro-1"))).collect();
    assert_eq!(statuses(&burst), "200 200 200 200 200 200 200 200 200 200 200");
    let r = get_with(&models, "authorization", &bearer("sk-pro-1"));
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("60"));
    let left: u64 = r.header("x-ratelimit-remaining-requests").unwrap().parse().unwrap();
    assert!((48..=49).contains(&left), "remaining-requests {left}");

    // Tokens per minute: 300 reserved, 302 used (2 prompt + 300 completion) per request.
    let send_chat = |max_tokens| {
        Request::post(&completions, &chat(max_tokens)).header("authorization", &bearer("sk-free-3")).send().unwrap()
    };
    let tokens: Vec<Response> = (0..4).map(|_| send_chat(300)).collect();
    assert_eq!(statuses(&tokens), "200 200 200 429");
    let remaining: Vec<u64> = tokens
        .iter()
        .map(|r| r.header("x-ratelimit-remaining-tokens").expect("x-ratelimit-remaining-tokens").parse().unwrap())
        .collect();
    assert_eq!(remaining[0], 700, "{remaining:?}");
    assert!((398..=400).contains(&remaining[1]), "{remaining:?}");
    assert!((96..=100).contains(&remaining[2]), "{remaining:?}");
    assert!((94..=99).contains(&remaining[3]), "{remaining:?}");
    assert_eq!(tokens[0].header("x-mock-usage"), Some("2,300"), "the mock's usage: prompt, completion");
    assert_eq!(tokens[0].header("x-ratelimit-limit-tokens"), Some("1000"));
    assert_429(&send_chat(300), "per-key-tpm", "tokens", "Rate limit exceeded: 1000 per 1m");
    assert_eq!(send_chat(50).status, 200, "a smaller reservation still fits");

    // No key: 403.
    let r = Request::get(&models).send().unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        r#"{"error":{"code":"missing_key","message":"This request lacks the key rule \"per-key-rpm\" needs","rule":"per-key-rpm","type":"requests"}}"#
    );
    assert!(up.wait_for_exit(), "tollgate-up exits when its stdin closes");
    up.assert_all_stopped();
}

#[test]
fn tutorial_3_fleet_shares_limits_through_the_store() {
    let mut up = Up::start(&format!("{UP}--store --proxies 2 --listen-port 10000 examples/fleet-global.json"));
    doc_has(&[
        "for i in $(seq 1 20); do\n  for port in 10000 10001; do\n    curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:$port/v1/models -H 'x-api-key: sk-team-a'\n  done\ndone | sort | uniq -c\n",
        "     20 200\n     20 429\n",
        "export TOLLGATE_STORE_URL=http://127.0.0.1:41407 TOLLGATE_ADMIN_TOKEN=dev-admin-token TOLLGATE_ADMIN=alice\ntarget/debug/tollgatectl keys status sk-team-a\n",
        "key 66d46f751cf76332\nRULE           ALGORITHM  LIMIT  WINDOW  BURST  USED  REMAINING  RESETS IN\nfleet-per-key  gcra       20     1h      20     20    0 ",
        "target/debug/tollgatectl overrides add --kind grant --target sk-team-a --unlimited --ttl 10m --reason \"launch day\"\nsleep 1\nfor port in 10000 10001; do\n  curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:$port/v1/models -H 'x-api-key: sk-team-a'\ndone\ntarget/debug/tollgatectl keys status sk-team-a\n",
        "grant 66d46f751cf76332 unlimited, expires ",
        "(alice: launch day)",
    ]);
    assert_eq!(up.envoys.len(), 2, "{}", up.output());
    let store = up.store.clone().expect("tollgate-up printed the store");
    assert!(up.stdout.iter().any(|l| l.contains("(proxy token dev-proxy-token, admin token dev-admin-token)")));
    let send = |envoy: &str, key: &str| get_with(&format!("{envoy}/v1/models"), "x-api-key", key).status;

    // 40 requests alternating between the proxies: at most 20 admitted over the fleet.
    let mut admitted = 0;
    for _ in 0..20 {
        for envoy in &up.envoys {
            match send(envoy, "sk-team-a") {
                200 => admitted += 1,
                429 => {}
                other => panic!("status {other}"),
            }
        }
    }
    assert!(admitted <= 20, "the fleet admitted {admitted} of a global limit of 20");
    // Batched sync may strand at most half the capacity in an idle proxy.
    assert!(admitted >= 10, "admitted only {admitted}");
    eprintln!("tutorial 3: the two proxies admitted {admitted} of 20");

    // tollgatectl, configured by the environment as in the doc.
    let ctl = |args: &[&str]| {
        let out = Command::new(workspace_bin("tollgatectl"))
            .args(args)
            .env("TOLLGATE_STORE_URL", &store)
            .env("TOLLGATE_ADMIN_TOKEN", "dev-admin-token")
            .env("TOLLGATE_ADMIN", "alice")
            .output()
            .expect("run tollgatectl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "tollgatectl {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let status = ctl(&["keys", "status", "sk-team-a"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "key 66d46f751cf76332", "{status}");
    assert_eq!(lines[1], "RULE           ALGORITHM  LIMIT  WINDOW  BURST  USED  REMAINING  RESETS IN", "{status}");
    let cols: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(cols[..5], ["fleet-per-key", "gcra", "20", "1h", "20"], "{status}");
    let used: u64 = cols[5].parse().unwrap();
    assert!(used >= admitted && used <= 20, "used {used} (admitted {admitted}): {status}");
    if admitted == 20 {
        assert_eq!(cols[5..7], ["20", "0"], "{status}");
    }

    let added = ctl(&[
        "overrides",
        "add",
        "--kind",
        "grant",
        "--target",
        "sk-team-a",
        "--unlimited",
        "--ttl",
        "10m",
        "--reason",
        "launch day",
    ]);
    assert!(
        added.starts_with("added ov-") && added.contains(": grant 66d46f751cf76332 unlimited, expires "),
        "{added}"
    );
    std::thread::sleep(Duration::from_secs(1));
    for envoy in &up.envoys {
        assert_eq!(send(envoy, "sk-team-a"), 200, "{envoy} applies the grant within poll_interval");
    }
    let status = ctl(&["keys", "status", "sk-team-a"]);
    let id = added.trim().strip_prefix("added ").unwrap().split(':').next().unwrap();
    let last = status.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("override {id} grant unlimited until ")) && last.ends_with("(alice: launch day)"),
        "{status}"
    );
    assert_eq!(send(&up.envoys[1], "sk-team-b"), 200, "another key has its own 20");
    assert!(up.wait_for_exit(), "tollgate-up exits when its stdin closes");
    up.assert_all_stopped();
}

// ---------------------------------------------------------------------------------------------

/// The example files the doc names (in links and commands).
fn documented_examples() -> Vec<String> {
    let doc = doc();
    let mut found: Vec<String> = doc
        .match_indices("examples/")
        .filter_map(|(i, _)| {
            let rest = &doc[i..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "/-_.".contains(c)))?;
            rest[..end].strip_suffix(".json").map(|_| rest[..end].to_string())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_files_the_tutorials_name_exist_and_configs_shown_are_the_files() {
    let doc = doc();
    // Relative links, from docs/.
    for (i, _) in doc.match_indices("](") {
        let target = &doc[i + 2..i + 2 + doc[i + 2..].find(')').unwrap()];
        if target.starts_with('#') || target.starts_with("http") {
            continue;
        }
        let path = repo_root().join("docs").join(target.split('#').next().unwrap());
        assert!(path.exists(), "{DOC} links to {target}, which does not exist");
    }
    // Repository paths in the commands and the text.
    for prefix in ["examples/", "envoy/", "tests/"] {
        for (i, _) in doc.match_indices(prefix) {
            if doc[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '/' || c == '.') {
                continue;
            }
            let rest = &doc[i..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "/-_.".contains(c))).unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches('.');
            assert!(repo_root().join(path).exists(), "{DOC} names {path}, which does not exist");
        }
    }
    let examples = documented_examples();
    assert_eq!(
        examples,
        ["examples/fleet-global.json", "examples/openai-gateway.json", "examples/slowapi-per-ip.json"],
        "the three tutorials' configurations"
    );
    // Each configuration shown is its file, exactly.
    for e in &examples {
        let intro = format!("[{e}](../{e}):\n\n```json\n");
        let start = doc.find(&intro).unwrap_or_else(|| panic!("{DOC} shows no configuration for {e}")) + intro.len();
        let shown: Value = serde_json::from_str(&doc[start..start + doc[start..].find("```").unwrap()])
            .unwrap_or_else(|err| panic!("the configuration shown for {e} is not JSON: {err}"));
        let file: Value = serde_json::from_str(&read(e)).unwrap();
        assert_eq!(shown, file, "{DOC} shows another configuration than {e}");
    }
    // And every tollgate-up command line of the doc is one the tutorial tests run.
    let commands: Vec<&str> = doc.lines().filter(|l| l.starts_with(UP)).collect();
    assert_eq!(
        commands,
        [
            "cargo run -q -p tollgate-e2e --bin tollgate-up -- --listen-port 10000 examples/slowapi-per-ip.json",
            "cargo run -q -p tollgate-e2e --bin tollgate-up -- --listen-port 10000 examples/openai-gateway.json",
            "cargo run -q -p tollgate-e2e --bin tollgate-up -- --store --proxies 2 --listen-port 10000 examples/fleet-global.json",
        ]
    );
}

#[test]
fn the_tutorial_configurations_pass_the_parser() {
    let examples = documented_examples();
    let out = Command::new(workspace_bin("tollgatectl"))
        .arg("validate")
        .args(&examples)
        .current_dir(repo_root())
        .output()
        .expect("run tollgatectl validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tollgatectl validate: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    for e in &examples {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("{e}: ok ("))), "{e}: {stdout}");
    }
}

#[test]
fn tollgate_up_refuses_a_global_config_without_store_and_a_token_mismatch() {
    for (args, says) in [
        (&["examples/fleet-global.json"][..], "add --store"),
        (&["--store", "--proxy-token", "other", "examples/fleet-global.json"][..], "differs from --proxy-token"),
        (&["--bogus"][..], "unknown option --bogus"),
    ] {
        let out = Command::new(workspace_bin("tollgate-up"))
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("run tollgate-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "tollgate-up {args:?}: {stderr}");
    }
}
