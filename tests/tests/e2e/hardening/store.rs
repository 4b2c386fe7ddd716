//! Hardening, tollgate-store: schemathesis against the running store's own `/openapi.json`
//! (no 5xx, no response that breaks the schema, auth enforced), Redis made slow
//! (`DEBUG SLEEP`) and killed under concurrent traffic (503 within the Redis timeout, nothing
//! hangs, recovery), and secrets: no raw API key in Redis, no raw key or token in Envoy's log
//! or the store's stderr.
//!
//! schemathesis comes from PyPI into the repo's `.venv` (installed on first use; a failed
//! install fails the test with the pip command, never a silent skip).

use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::{Store, ADMIN_TOKEN, PROXY_TOKEN};
use tollgate_e2e::{repo_root, Envoy, EnvoyOptions, MockLlm, TempDir};

/// `.venv/bin/st`, installing schemathesis into `.venv` when it is missing.
fn schemathesis() -> PathBuf {
    static ST: OnceLock<PathBuf> = OnceLock::new();
    ST.get_or_init(|| {
        let venv = repo_root().join(".venv");
        let st = venv.join("bin/st");
        if st.exists() {
            return st;
        }
        let python = venv.join("bin/python");
        assert!(python.exists(), "{} not found: run `make setup` (it creates .venv)", python.display());
        let out = Command::new(&python).args(["-m", "pip", "install", "-q", "schemathesis"]).output().unwrap();
        assert!(
            out.status.success() && st.exists(),
            "schemathesis could not be installed; run `.venv/bin/python -m pip install schemathesis`:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        st
    })
    .clone()
}

/// The served document's paths whose operations take the proxy token (`proxyToken`), as a
/// path regex, and how many operations that is; every other operation takes the admin token
/// (or none).
fn proxy_ops(store: &Store) -> (String, usize) {
    let doc = store.get("/openapi.json").json();
    let mut paths = Vec::new();
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let proxy = item
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, op)| {
                op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("proxyToken").is_some()))
            })
            .count();
        if proxy > 0 {
            paths.push(path.clone());
            ops += proxy;
        }
    }
    assert!(ops >= 3, "the proxy API (/v1/check, /v1/lease, /v1/adjust) is missing from /openapi.json");
    (format!("^({})$", paths.join("|")), ops)
}

/// Run `st run` against the store's served schema, with `hooks` (the Python source of
/// schemathesis hooks; "" for none): (success, output).
fn st_run(store: &Store, token: &str, filter: &[&str], checks: &[&str], hooks: &str) -> (bool, String) {
    let scratch = TempDir::new("schemathesis");
    let hooks_file = if hooks.is_empty() {
        String::new()
    } else {
        let file = scratch.0.join("tollgate_hooks.py");
        std::fs::write(&file, hooks).unwrap();
        file.display().to_string()
    };
    let out = Command::new(schemathesis())
        .current_dir(&scratch.0)
        .arg("run")
        .arg(store.url("/openapi.json"))
        .args(checks)
        // The work is bounded by --max-examples; --max-time only guards against a hang (a time
        // limit reached leaves operations untested, which the tests count as a failure, so it
        // must not depend on how busy the machine is).
        .args(["--max-examples", "10", "--workers", "1", "--request-timeout", "5", "--max-time", "300"])
        .args(["--seed", "20261122", "--no-color"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(filter)
        .env("SCHEMATHESIS_HOOKS", &hooks_file)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Keep a failure message readable: schemathesis can print whole tracebacks.
    let tail: String =
        text.lines().rev().take(120).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    (out.status.success(), tail)
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_schema_violation() {
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    // Every check of schemathesis, except the two about what the schema lets in
    // (negative_data_rejection, positive_data_acceptance), which the test below runs.
    let checks = ["--checks", "all", "--exclude-checks", "negative_data_rejection,positive_data_acceptance"];
    let (proxy, n) = proxy_ops(&store);
    let (ok, out) = st_run(&store, PROXY_TOKEN, &["--include-path-regex", &proxy], &checks, "");
    assert!(ok, "schemathesis on the proxy API:\n{out}");
    assert!(out.contains(&format!("Tested: {n}")), "the {n} proxy operations were tested:\n{out}");
    let (ok, out) = st_run(&store, ADMIN_TOKEN, &["--exclude-path-regex", &proxy], &checks, "");
    assert!(ok, "schemathesis on the rest of the API (admin token):\n{out}");
    let stderr = store.stderr();
    assert!(!stderr.contains("panicked"), "the store panicked:\n{stderr}");
    assert!(!stderr.contains(PROXY_TOKEN) && !stderr.contains(ADMIN_TOKEN), "a token in the store's stderr:\n{stderr}");
}

/// The rules of the admin API that OpenAPI 3.0 cannot state, each dropped by `filter_failure`
/// only for a failure whose request breaks that rule and whose answer is the store's own error
/// for it (the test below checks each rule directly):
/// - `{key}` with `?hash=1` must be a key hash: a rule across two parameters;
/// - a raw key (`{key}`, audit `key`, override `target`) is at most 4096 bytes of UTF-8, but
///   `maxLength` counts characters;
/// - rule names, the keys of `limits` in `PUT /v1/keys/{key}/limits`: 3.0 has no `propertyNames`;
/// - `expires_at` in the future and at most 366 days ahead: relative to the store's clock;
/// - an `allow_ip` CIDR without host bits set (`10.0.0.1/8` is refused): only a list of every
///   network could state it;
/// - audit `key` and `key_hash` not both: a rule across two parameters;
/// - an RFC 3339 time on 1969-12-31, 1970-01-01 or 9999-12-31, whose offset can move it out of
///   (or into) the store's 1970..=9999 (the pattern states 1970..=9999 as written).
const TIGHTNESS_HOOKS: &str = r##"
import re

import schemathesis

HEX16 = re.compile(r"[0-9A-Fa-f]{16}")
RULE = re.compile(r"[A-Za-z0-9._-]{1,64}")
RULE_ERROR = ": must be 1 to 64 characters among letters, digits, '-', '_' and '.'"
EDGE_DAYS = ("1969-12-31", "1970-01-01", "9999-12-31")


def message(response):
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return ""


def excluded(failure, case, response):
    path = case.operation.path
    query = case.query if isinstance(case.query, dict) else {}
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    body = case.body if isinstance(case.body, dict) else {}
    said = message(response)
    times = [query.get("since"), query.get("until"), body.get("expires_at")]
    if any(isinstance(t, str) and t[:10] in EDGE_DAYS for t in times):
        if failure.code == "ST201" and response.status_code < 300:
            return True
        if failure.code == "ST202" and re.match(r'(since|until): must be|expires_at: "', said):
            return True
    if failure.code != "ST202" or response.status_code != 400:
        return False
    if path.startswith("/v1/keys/") and said.startswith("key: with hash=1, must be 16 hexadecimal digits"):
        if query.get("hash") in ("1", "true", "yes", "") and not HEX16.fullmatch(str(params.get("key"))):
            return True
    raw = {"key": params.get("key", query.get("key")), "target": body.get("target")}
    for field, value in raw.items():
        if said == field + ": must be 1 to 4096 bytes" and isinstance(value, str):
            if len(value) <= 4096 < len(value.encode("utf-8", "surrogatepass")):
                return True
    if path == "/v1/keys/{key}/limits" and said.startswith("limits.") and said.endswith(RULE_ERROR):
        name = said[len("limits."):-len(RULE_ERROR)]
        if isinstance(body.get("limits"), dict) and name in body["limits"] and not RULE.fullmatch(name):
            return True
    if path == "/v1/overrides":
        if said in ("expires_at: is in the past", "expires_at: must be at most 366 days ahead"):
            return True
        if body.get("kind") == "allow_ip" and said.startswith("target: ") and "has host bits set" in said:
            return True
    if path == "/v1/audit" and said == "key_hash: give either key or key_hash, not both":
        return bool(query.get("key") and query.get("key_hash"))
    return False


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    return not excluded(failure, case, response)
"##;

/// The schema lets in exactly what the store accepts, on every operation: schemathesis's two
/// tightness checks (`negative_data_rejection`, `positive_data_acceptance`), on the proxy API
/// (`/v1/check`, `/v1/lease`, `/v1/adjust`, `/v1/sync`, proxy token), then on the admin API and
/// the rest (admin token) with the narrow exclusions of [`TIGHTNESS_HOOKS`]. Regression test for
/// what they found (docs/hardening.md, bug 6):
/// - proxy API, ST202, a schema-valid request rejected: `window_ms` had no `maximum`, but the
///   store answers 400 above 18446744073709 (the window in nanoseconds must fit in a u64); the
///   schema now states that maximum, and the other numbers their real u64/i64 bounds;
/// - proxy API, ST201, a schema-violating request accepted: `X-Tollgate-Now-Ns` was an int64
///   the store ignores (whatever its value) without `--test-clock`, and an extra header next to
///   it on `GET /v1/sync` read as a violation; the schema now declares it as the free string it
///   is in that mode (its `--test-clock` format is in its description);
/// - admin API, ST201: `?hash=` and `?all=` take `1|true|yes|0|false|no` or an empty value,
///   declared `"0"|"1"` (the schema now lists them); audit `action` was declared an enum but
///   any value was accepted (the store now answers 400 `action: … must be one of …`);
/// - admin API, ST201: an empty `?top=`, `?limit=` (or filter) is the default (now
///   `allowEmptyValue`), and null counts as absent in bodies (now `nullable`);
/// - admin API, ST202: `POST /v1/keys/{key}/reset`'s `admin`/`reason` had no pattern (blank
///   ones are 400); the schema did not state the rules between fields that OpenAPI 3.0 can
///   state (PUT limits: a tier or a non-empty `limits`; overrides: `ttl` or `expires_at`, the
///   target each kind takes, `unlimited: true` or a multiplier for `grant`), nor `ttl`'s bounds
///   or the formats of `key_hash`, `since`, `until`, `expires_at` and an `allow_ip` target; it
///   does now (patterns built from the store's parsers).
#[test]
fn schemathesis_the_schema_lets_in_exactly_what_the_store_accepts() {
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    let checks = ["--checks", "negative_data_rejection,positive_data_acceptance"];
    let (proxy, n) = proxy_ops(&store);
    let (ok, out) = st_run(&store, PROXY_TOKEN, &["--include-path-regex", &proxy], &checks, "");
    assert!(ok, "schemathesis on the proxy API:\n{out}");
    assert!(out.contains(&format!("Tested: {n}")), "the {n} proxy operations were tested:\n{out}");
    let doc = store.get("/openapi.json").json();
    let admin_ops = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|op| op["security"] == json!([{"adminToken": []}]))
        .count();
    let (ok, out) = st_run(&store, ADMIN_TOKEN, &["--exclude-path-regex", &proxy], &checks, TIGHTNESS_HOOKS);
    assert!(ok, "schemathesis on the admin API (admin token):\n{out}");
    let tested = out.lines().find_map(|l| l.trim().strip_prefix("Tested: ")?.parse::<usize>().ok());
    assert!(tested >= Some(admin_ops), "the {admin_ops} admin operations (and the open ones) were tested:\n{out}");
    assert!(!store.stderr().contains("panicked"), "{}", store.stderr());
    // The proxy API's findings, without depending on what schemathesis happens to generate:
    // the schema's window_ms maximum is the store's, and the test clock header is free text.
    let max = doc["components"]["schemas"]["Counter"]["properties"]["window_ms"]["maximum"].as_u64();
    assert_eq!(max, Some(u64::MAX / 1_000_000), "window_ms maximum in /openapi.json");
    let clock = &doc["components"]["parameters"]["TestClock"]["schema"];
    assert_eq!(clock, &json!({"type": "string"}), "X-Tollgate-Now-Ns schema in /openapi.json");
    let check = |window_ms: u64, now_ns: &str| {
        let mut body = check_body("00ff00ff00ff00ff");
        body["checks"][0]["window_ms"] = window_ms.into();
        Request::post(&store.url("/v1/check"), &body.to_string())
            .header("authorization", &format!("Bearer {PROXY_TOKEN}"))
            .header("x-tollgate-now-ns", now_ns)
            .send()
            .unwrap()
    };
    let r = check(u64::MAX / 1_000_000, "not a number");
    assert_eq!(r.status, 200, "the longest window, and the test clock header ignored: {}", r.text());
    let r = check(u64::MAX / 1_000_000 + 1, "9223372036854775808");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("checks[0].window_ms: must be at most 18446744073709"), "{}", r.text());
    // The admin API's: the flags' values, and audit actions, as the schema lists them.
    let flag = &doc["components"]["parameters"]["Hashed"]["schema"]["enum"];
    assert_eq!(flag, &json!(["1", "0", "true", "false", "yes", "no", ""]), "?hash= values in /openapi.json");
    let h = "00FF00FF00FF00FF";
    for query in ["hash=1", "hash=true", "hash=yes", "hash=", "hash"] {
        let r = admin(&store, "GET", &format!("/v1/keys/{h}/status?{query}"), None);
        assert_eq!((r.status, r.json()["key"].as_str()), (200, Some("00ff00ff00ff00ff")), "?{query}");
    }
    for query in ["hash=0", "hash=false", "hash=no"] {
        let r = admin(&store, "GET", &format!("/v1/keys/{h}/status?{query}"), None);
        assert_ne!(r.json()["key"], "00ff00ff00ff00ff", "?{query}: the segment is a raw key");
    }
    rejected(&store, "GET", "/v1/keys/k/status?hash=2", None, "hash: must be 1 or 0");
    rejected(&store, "GET", "/v1/overrides?all=TRUE", None, "all: must be 1 or 0");
    let audit = |query: &str| admin(&store, "GET", &format!("/v1/audit?{query}"), None);
    assert_eq!(audit("action=key.reset").status, 200);
    assert_eq!(audit("action=&key_hash=&since=&limit=5").status, 200, "empty values are no filter");
    rejected(&store, "GET", "/v1/audit?action=key.delete", None, "action: \"key.delete\": must be one of limits.set,");
    // Each rule the hooks exclude, as the store applies it.
    rejected(&store, "GET", "/v1/keys/sk-1/limits?hash=1", None, "key: with hash=1, must be 16 hexadecimal digits");
    let e_acute = "%C3%A9"; // 2 bytes in UTF-8
    assert_eq!(admin(&store, "GET", &format!("/v1/keys/{}/status", e_acute.repeat(2048)), None).status, 200);
    rejected(&store, "GET", &format!("/v1/keys/{}/status", e_acute.repeat(2049)), None, "key: must be 1 to 4096 bytes");
    rejected(&store, "GET", &format!("/v1/audit?key={}", e_acute.repeat(2049)), None, "key: must be 1 to 4096 bytes");
    let who = |mut v: serde_json::Value| {
        v["admin"] = "alice".into();
        v["reason"] = "hardening".into();
        Some(v)
    };
    let body = who(json!({"limits": {"a b": {"limit": 1}}}));
    rejected(&store, "PUT", "/v1/keys/sk-1/limits", body, "limits.a b: must be 1 to 64 characters among");
    let r = admin(&store, "POST", "/v1/overrides", who(json!({"kind": "emergency", "ttl": "1d"})));
    assert_eq!(r.status, 201, "{}", r.text());
    let tomorrow = r.json()["expires_at"].as_str().unwrap().to_string(); // 2025-01-31T12:00:00.000Z
    let (date, time) = (&tomorrow[..10], &tomorrow[11..19]);
    for at in [
        tomorrow.clone(),
        format!("{date} {time}.123456z"),
        format!("{date}t{time}-01:00"),
        format!("{date}T{time}+05:30"),
    ] {
        let r = admin(&store, "POST", "/v1/overrides", who(json!({"kind": "emergency", "expires_at": at})));
        assert_eq!(r.status, 201, "expires_at {at}: {}", r.text());
    }
    let at = |at: &str| who(json!({"kind": "emergency", "expires_at": at}));
    rejected(&store, "POST", "/v1/overrides", at("2001-01-01T00:00:00Z"), "expires_at: is in the past");
    rejected(&store, "POST", "/v1/overrides", at("9999-01-01T00:00:00Z"), "expires_at: must be at most 366 days ahead");
    let ip = |target: &str| who(json!({"kind": "allow_ip", "target": target, "ttl": "1m"}));
    assert_eq!(admin(&store, "POST", "/v1/overrides", ip(" 10.0.0.0/8\n")).status, 201);
    rejected(&store, "POST", "/v1/overrides", ip("10.0.0.1/8"), "target: \"10.0.0.1/8\" has host bits set");
    let both = format!("/v1/audit?key=sk-1&key_hash={h}");
    rejected(&store, "GET", &both, None, "key_hash: give either key or key_hash, not both");
    assert_eq!(audit("since=1969-12-31T23:30:00-01:00").status, 200, "1970-01-01T00:30:00Z");
    rejected(&store, "GET", "/v1/audit?since=1970-01-01T00:30:00%2B01:00", None, "since: must be an RFC 3339 time");
}

/// An admin API call (admin token).
fn admin(store: &Store, method: &str, path: &str, body: Option<serde_json::Value>) -> Response {
    let mut r = Request::post(&store.url(path), &body.map(|b| b.to_string()).unwrap_or_default())
        .header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    r.method = method.into();
    r.send().unwrap()
}

/// An admin API call answered 400 with a message starting with `want`.
fn rejected(store: &Store, method: &str, path: &str, body: Option<serde_json::Value>, want: &str) {
    let r = admin(store, method, path, body);
    assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.starts_with(want), "{method} {path}: {message:?} does not start with {want:?}");
}

/// The served `/openapi.json` describes the admin API too (it did not when these tests were
/// written; fixed by 99bfbac), so the schemathesis run above tests it with the admin token.
#[test]
fn the_served_openapi_document_describes_the_admin_api() {
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    let doc = store.get("/openapi.json").json();
    for path in ["/v1/stats", "/v1/overrides", "/v1/audit", "/v1/keys/{key}/status"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from /openapi.json");
    }
}

fn check_body(key_hash: &str) -> serde_json::Value {
    json!({"checks": [{"rule": "r", "key": key_hash, "algorithm": "gcra", "limit": 100, "window_ms": 60000, "cost": 1}]})
}

/// Send `n` requests at once (proxy and admin): every one answered within `within`, with one
/// of `allowed` statuses. Returns the statuses.
fn burst(store: &Store, n: usize, within: Duration, allowed: &[u16]) -> Vec<u16> {
    let results: Vec<(u16, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    let t = Instant::now();
                    let r: std::io::Result<Response> = if i % 4 == 3 {
                        Request::get(&store.url("/v1/stats"))
                            .header("authorization", &format!("Bearer {ADMIN_TOKEN}"))
                            .send()
                    } else {
                        Request::post(&store.url("/v1/check"), &check_body(&format!("{:016x}", i % 5)).to_string())
                            .header("authorization", &format!("Bearer {PROXY_TOKEN}"))
                            .send()
                    };
                    (r.map(|r| r.status).unwrap_or(0), t.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, took) in &results {
        assert!(allowed.contains(status), "status {status} not in {allowed:?}: {results:?}");
        assert!(*took < within, "a request took {took:?} (limit {within:?}): {results:?}");
    }
    results.into_iter().map(|(s, _)| s).collect()
}

#[test]
fn slow_and_killed_redis_answers_503_quickly_and_nothing_hangs() {
    // DEBUG is off by default since Redis 7: this server allows it (DEBUG SLEEP makes it slow).
    let mut redis = Redis::start_with(TempDir::new("redis-debug"), vec!["--enable-debug-command".into(), "yes".into()]);
    let store = Store::start(&redis.url(), &["--redis-timeout-ms", "200"]);
    assert!(burst(&store, 12, Duration::from_secs(10), &[200]).iter().all(|s| *s == 200));
    // Redis busy for 6 s (DEBUG SLEEP blocks it): every request gets its answer (503) within
    // the 200 ms Redis timeout plus ample slack for a busy machine (3 s), not after 6 s.
    let port = redis.port;
    let sleeper = std::thread::spawn(move || tollgate_e2e::redis::command(port, &["DEBUG", "SLEEP", "6"]));
    std::thread::sleep(Duration::from_millis(100));
    let statuses = burst(&store, 16, Duration::from_secs(3), &[503]);
    assert_eq!(statuses.len(), 16);
    let slept = sleeper.join().unwrap().unwrap();
    assert_eq!(slept, tollgate_e2e::redis::Resp::Simple("OK".into()), "DEBUG SLEEP refused");
    // Back to normal without a restart of the store.
    let deadline = Instant::now() + Duration::from_secs(10);
    while burst(&store, 4, Duration::from_secs(10), &[200, 503]).iter().any(|s| *s != 200) {
        assert!(Instant::now() < deadline, "the store did not recover after DEBUG SLEEP");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Redis killed while requests are in flight, then a burst against a dead Redis.
    std::thread::scope(|s| {
        s.spawn(|| burst(&store, 16, Duration::from_secs(3), &[200, 503]));
        std::thread::sleep(Duration::from_millis(5));
        redis.stop();
    });
    let statuses = burst(&store, 16, Duration::from_secs(3), &[503]);
    assert_eq!(statuses.len(), 16);
    let t = Instant::now();
    assert_eq!(store.get("/healthz").status, 503);
    assert!(t.elapsed() < Duration::from_secs(3), "healthz took {:?}", t.elapsed());
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while burst(&store, 4, Duration::from_secs(10), &[200, 503]).iter().any(|s| *s != 200) {
        assert!(Instant::now() < deadline, "the store did not recover after Redis restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!store.stderr().contains("panicked"), "{}", store.stderr());
}

#[test]
fn no_raw_key_or_token_in_redis_or_the_logs() {
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    let llm = MockLlm::start();
    let config = json!({
        "store": {"cluster": "tollgate_store", "authority": "tollgate-store", "token": PROXY_TOKEN,
                  "timeout": "250ms", "failure_mode": "closed", "poll_interval": "100ms"},
        "debug": true,
        "rules": [
            {"name": "strict", "key": ["api_key"], "scope": "global", "sync": "strict", "algorithm": "gcra", "limit": 3, "window": "1h"},
            {"name": "batched", "key": ["header:x-user"], "scope": "global", "algorithm": "fixed_window", "limit": 50, "window": "1h"},
            {"name": "local", "key": ["api_key", "ip"], "algorithm": "token_bucket", "limit": 100, "window": "1m"}]});
    let mut opts = EnvoyOptions::standalone(&config.to_string(), llm.port);
    opts.template = repo_root().join("envoy/with-store.yaml");
    opts.vars.push(("STORE_PORT".into(), store.port.to_string()));
    let envoy = Envoy::start(opts);
    let secret_keys = ["sk-secret-alpha-7f3a9c", "sk-secret-bravo-51be02"];
    let secret_user = "user-secret-charlie-88d1";
    let mut statuses = Vec::new();
    for key in secret_keys {
        for _ in 0..4 {
            let r = Request::get(&envoy.url("/v1/x?api_key=sk-secret-query-0e9d"))
                .header("authorization", &format!("Bearer {key}"))
                .header("x-user", secret_user)
                .send()
                .unwrap();
            statuses.push(r.status);
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 200, 200, 200, 429], "the global rule counted");
    // The admin plane hashes keys on arrival: per-key limits and an allow override.
    let admin_key = "sk-secret-delta-c41d77";
    let r = admin(
        &store,
        "PUT",
        &format!("/v1/keys/{admin_key}/limits"),
        Some(json!({"tier": "pro", "admin": "alice", "reason": "test"})),
    );
    assert!(r.status < 300, "PUT limits: {} {}", r.status, r.text());
    let r = admin(
        &store,
        "POST",
        "/v1/overrides",
        Some(json!({"kind": "allow_key", "target": secret_keys[1], "ttl": "10m", "admin": "alice", "reason": "t"})),
    );
    assert!(r.status < 300, "POST overrides: {} {}", r.status, r.text());
    // The allow override reaches the proxy (so the key went through the whole path).
    tollgate_e2e::eventually("the allow override reached the proxy", 10, || {
        let r = Request::get(&envoy.url("/v1/x")).header("x-api-key", secret_keys[1]).send().unwrap();
        (r.status == 200).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));

    let raw: Vec<&str> = secret_keys.iter().copied().chain([secret_user, admin_key, "sk-secret-query-0e9d"]).collect();
    // Redis: keys and values.
    let keys = redis.keys();
    assert!(!keys.is_empty(), "the store wrote nothing to Redis");
    let mut dump = String::new();
    for k in &keys {
        dump.push_str(k);
        dump.push('\n');
        let kind = redis.cmd(&["TYPE", k]).as_text().unwrap_or_default();
        let value = match kind.as_str() {
            "string" => redis.cmd(&["GET", k]).as_text().unwrap_or_default(),
            "hash" => format!("{:?}", redis.cmd(&["HGETALL", k])),
            "list" => format!("{:?}", redis.cmd(&["LRANGE", k, "0", "-1"])),
            "zset" => format!("{:?}", redis.cmd(&["ZRANGE", k, "0", "-1", "WITHSCORES"])),
            "set" => format!("{:?}", redis.cmd(&["SMEMBERS", k])),
            "stream" => format!("{:?}", redis.cmd(&["XRANGE", k, "-", "+"])),
            other => format!("<{other}>"),
        };
        dump.push_str(&value);
        dump.push('\n');
    }
    for secret in &raw {
        assert!(!dump.contains(secret), "raw key {secret:?} found in Redis:\n{dump}");
    }
    // Logs: Envoy (with debug on) and the store.
    let logs = [("Envoy log", envoy.log()), ("store stderr", store.stderr())];
    for (what, text) in &logs {
        for secret in raw.iter().chain([&PROXY_TOKEN, &ADMIN_TOKEN]) {
            assert!(!text.contains(secret), "{secret:?} found in the {what}:\n{text}");
        }
    }
    assert!(!envoy.log().to_lowercase().contains("panic"), "{}", envoy.log());
    assert!(!store.stderr().contains("panicked"), "{}", store.stderr());
    // Metrics too.
    let metrics = format!("{}{}", envoy.prometheus(), store.get("/metrics").text());
    for secret in &raw {
        assert!(!metrics.contains(secret), "raw key {secret:?} in metrics");
    }
}
