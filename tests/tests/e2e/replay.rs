//! `tollgatectl replay`: recorded traffic through the filter's own core, in the logs' time.
//!
//! `known_outcome`: generated logs whose outcome is known by construction (a key at twice its
//! limit, one at half, a burst), in each format (Envoy JSON gzipped, Envoy's default text,
//! JSON Lines), the compare mode, shadow and throttle counts, malformed lines, the plot, the
//! README's example, usage errors.
//! `envoy`: a real Envoy with Tollgate writes both access logs (envoy/access-log.yaml, the
//! configuration the README shows); replaying them with the same configuration finds exactly
//! the requests Envoy denied.
//!
//! Builds tollgatectl itself; `envoy` needs `make build` and `make setup` (Envoy).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use tollgate_e2e::access_log::{envoy_json, envoy_text, jsonl, known, Entry};
use tollgate_e2e::ctl::run as ctl;
use tollgate_e2e::{fleet_hash, repo_root, TempDir};

/// 2025-12-01T00:00:00Z: a whole minute (fixed windows align to the epoch).
const START_MS: u64 = 1_764_547_200_000;

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Run a replay that must succeed; its JSON report.
fn replay_json(args: &[&str]) -> Value {
    let mut all = vec!["replay", "--format", "json"];
    all.extend_from_slice(args);
    let o = ctl(&all);
    let (out, err) = text(&o);
    assert!(o.status.success(), "tollgatectl {all:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn write(dir: &TempDir, name: &str, content: &str) -> PathBuf {
    let p = dir.0.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn lines(entries: &[Entry], format: fn(&Entry) -> String) -> String {
    entries.iter().map(|e| format(e) + "\n").collect()
}

fn gzip(path: &Path, content: &str) {
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::default());
    gz.write_all(content.as_bytes()).unwrap();
    gz.finish().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn rfc(ms: u64) -> String {
    tollgate_e2e::access_log::rfc3339(ms)
}

mod known_outcome {
    //! Logs whose outcome is known by construction.
    use super::*;

    /// 60 requests per minute per client address (X-Forwarded-For: every format logs it).
    fn per_client(limit: u64) -> String {
        json!({"client_ip": {"trusted_hops": 1},
               "rules": [{"name": "per-client", "key": ["ip"], "algorithm": "fixed_window",
                          "limit": limit, "window": "1m"}]})
        .to_string()
    }

    /// sk-double (10.0.0.2) sends 120 a minute for 3 minutes: 60 denied each minute, from the
    /// 61st request at :30; sk-half (10.0.0.3) 30 a minute, none denied; sk-burst (10.0.0.4)
    /// 100 at once at 1:30.5, 40 denied.
    fn assert_known(v: &Value, what: &str) {
        assert_eq!(v["input"]["unreadable"], 0, "{what}: {}", v["input"]);
        assert_eq!(v["new"]["requests"], 550, "{what}");
        assert_eq!(v["new"]["outcomes"], json!({"allowed": 330, "denied 429": 220}), "{what}");
        let rule = &v["new"]["rules"][0];
        assert_eq!((rule["allowed"].clone(), rule["denied"].clone()), (json!(330), json!(220)), "{what}: {rule}");
        assert_eq!(
            rule["top_denied_keys"],
            json!([{"key": fleet_hash("10.0.0.2"), "denied": 180}, {"key": fleet_hash("10.0.0.4"), "denied": 40}]),
            "{what}"
        );
        assert_eq!(rule["first_denial"], rfc(START_MS + 30_000), "{what}");
        assert_eq!(rule["last_denial"], rfc(START_MS + 179_500), "{what}");
        assert_eq!(v["new"]["first"], rfc(START_MS), "{what}");
        // Every decision at 80 % used or more is in some low period.
        let lows = rule["low_periods"].as_array().unwrap();
        assert!(!lows.is_empty(), "{what}: {rule}");
    }

    #[test]
    fn twice_the_limit_half_the_limit_and_a_burst_in_every_format() {
        let dir = TempDir::new("replay-known");
        let entries = known(START_MS, 3, 60, 100);
        let config = write(&dir, "config.json", &per_client(60));
        let json_gz = dir.0.join("envoy-json.log.gz");
        gzip(&json_gz, &lines(&entries, envoy_json));
        let text_log = write(&dir, "envoy-text.log", &lines(&entries, envoy_text));
        let jsonl_log = write(&dir, "requests.jsonl", &lines(&entries, jsonl));
        for (log, format, what) in [
            (&json_gz, "json", "Envoy JSON, gzip"),
            (&text_log, "envoy_text", "Envoy default text"),
            (&jsonl_log, "json", "JSON Lines"),
        ] {
            let v = replay_json(&["--config", s(&config), s(log)]);
            assert_known(&v, what);
            assert_eq!(v["input"]["formats"][format], 550, "{what}");
        }
        // The same traffic split across two files (any order on the command line) is merged
        // in time order: the same outcome.
        let (a, b): (Vec<Entry>, Vec<Entry>) = entries.iter().cloned().partition(|e| e.api_key == "sk-double");
        let part_a = write(&dir, "a.log", &lines(&a, envoy_json));
        let part_b = write(&dir, "b.log", &lines(&b, envoy_text));
        assert_known(&replay_json(&["--config", s(&config), s(&part_b), s(&part_a)]), "two files");
    }

    #[test]
    fn api_keys_come_from_the_logged_headers_hashed_unless_show_keys() {
        let dir = TempDir::new("replay-keys");
        let log = write(&dir, "envoy.log", &lines(&known(START_MS, 3, 60, 100), envoy_json));
        let config = write(
            &dir,
            "config.json",
            &json!({"rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "fixed_window",
                               "limit": 60, "window": "1m"}]})
            .to_string(),
        );
        let v = replay_json(&["--config", s(&config), s(&log)]);
        let top = &v["new"]["rules"][0]["top_denied_keys"];
        assert_eq!(
            top,
            &json!([{"key": fleet_hash("sk-double"), "denied": 180}, {"key": fleet_hash("sk-burst"), "denied": 40}])
        );
        let o = ctl(&["replay", "--config", s(&config), s(&log)]);
        let (out, _) = text(&o);
        assert!(!out.contains("sk-double"), "raw keys only with --show-keys:\n{out}");
        let shown = replay_json(&["--show-keys", "--config", s(&config), s(&log)]);
        assert_eq!(shown["new"]["rules"][0]["top_denied_keys"][0], json!({"key": "sk-double", "denied": 180}));
    }

    #[test]
    fn compare_lists_the_requests_whose_outcome_changes() {
        let dir = TempDir::new("replay-compare");
        let log = write(&dir, "envoy.log", &lines(&known(START_MS, 3, 60, 100), envoy_json));
        let old = write(&dir, "old.json", &per_client(60));
        let new = write(&dir, "new.json", &per_client(100));
        let v = replay_json(&["--config", s(&new), "--compare", s(&old), s(&log)]);
        // 100 a minute: sk-double gets 40 more each minute, sk-burst all 100.
        assert_eq!(v["new"]["outcomes"], json!({"allowed": 490, "denied 429": 60}));
        assert_eq!(v["old"]["outcomes"], json!({"allowed": 330, "denied 429": 220}));
        let c = &v["changes"];
        assert_eq!(c["changed"], 160);
        assert_eq!(c["transitions"], json!([{"from": "denied 429", "to": "allowed", "requests": 160}]));
        assert_eq!(
            c["by_rule"],
            json!([{"from": "denied 429", "to": "allowed", "rule": "per-client", "requests": 160}])
        );
        let by_key = c["by_key"].as_array().unwrap();
        assert_eq!(by_key[0]["key"], fleet_hash("10.0.0.2"));
        assert_eq!(by_key[0]["requests"], 120);
        assert_eq!(by_key[1]["key"], fleet_hash("10.0.0.4"));
        assert_eq!(by_key[1]["requests"], 40);
        assert_eq!(c["examples"][0]["time"], rfc(START_MS + 30_000), "the first change: the 61st request");
        // Reversed, the same requests change the other way.
        let back = replay_json(&["--config", s(&old), "--compare", s(&new), s(&log)]);
        assert_eq!(back["changes"]["transitions"], json!([{"from": "allowed", "to": "denied 429", "requests": 160}]));
        // The text report says it in words.
        let (out, _) = text(&ctl(&["replay", "--config", s(&new), "--compare", s(&old), s(&log)]));
        assert!(out.contains("160 requests change outcome"), "{out}");
    }

    #[test]
    fn shadow_rules_count_what_they_would_deny_and_throttle_is_reported() {
        let dir = TempDir::new("replay-strategies");
        let log = write(&dir, "envoy.log", &lines(&known(START_MS, 3, 60, 100), envoy_json));
        let shadow = write(
            &dir,
            "shadow.json",
            &json!({"client_ip": {"trusted_hops": 1}, "rules": [{"name": "try-60", "key": ["ip"],
                    "algorithm": "fixed_window", "limit": 60, "window": "1m", "strategy": "shadow"}]})
            .to_string(),
        );
        let v = replay_json(&["--config", s(&shadow), s(&log)]);
        assert_eq!(v["new"]["outcomes"], json!({"allowed": 550}), "a shadow rule never denies");
        let rule = &v["new"]["rules"][0];
        assert_eq!((rule["shadow_denied"].clone(), rule["denied"].clone()), (json!(220), json!(0)));
        assert_eq!(rule["top_denied_keys"][0], json!({"key": fleet_hash("10.0.0.2"), "denied": 180}));
        let throttle = write(
            &dir,
            "throttle.json",
            &json!({"client_ip": {"trusted_hops": 1}, "rules": [{"name": "smooth", "key": ["ip"],
                    "algorithm": "token_bucket", "limit": 60, "window": "1m", "burst": 10,
                    "strategy": "throttle", "max_wait": "5s"}]})
            .to_string(),
        );
        let v = replay_json(&["--config", s(&throttle), s(&log)]);
        let rule = &v["new"]["rules"][0];
        let throttled = rule["throttled"].as_u64().unwrap();
        assert!(throttled > 0, "{rule}");
        assert_eq!(v["new"]["outcomes"]["throttled"], throttled);
        assert_eq!(
            rule["allowed"].as_u64().unwrap() + throttled + rule["denied"].as_u64().unwrap(),
            550,
            "every request is allowed, throttled or denied: {rule}"
        );
    }

    #[test]
    fn malformed_lines_are_counted_and_shown_never_fatal() {
        let dir = TempDir::new("replay-malformed");
        let mut content = lines(&known(START_MS, 3, 60, 100), envoy_json).into_bytes();
        content.extend_from_slice(b"this is not a log line\n");
        content.extend_from_slice(b"{\"start_time\": \"2025-12-01T00:00:01Z\", \"method\": \n");
        content.extend_from_slice(b"[yesterday] \"GET / HTTP/1.1\" 200 - 0 0 1 - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
        content.extend_from_slice(
            b"{\"start_time\": \"2025-12-01T00:00:02Z\", \"method\": \"GET\", \"path\": \"/\xff\"}\n",
        );
        content.extend_from_slice(b"\n");
        let log = dir.0.join("mixed.log");
        std::fs::write(&log, &content).unwrap();
        let config = write(&dir, "config.json", &per_client(60));
        let v = replay_json(&["--config", s(&config), s(&log)]);
        assert_eq!(v["new"]["requests"], 550, "every good line is replayed");
        assert_eq!(v["new"]["outcomes"], json!({"allowed": 330, "denied 429": 220}));
        assert_eq!(v["input"]["unreadable"], 4);
        assert_eq!(v["input"]["blank"], 1);
        let examples = v["input"]["unreadable_examples"].as_array().unwrap();
        let reasons: Vec<(u64, &str)> =
            examples.iter().map(|e| (e["line"].as_u64().unwrap(), e["reason"].as_str().unwrap())).collect();
        assert_eq!(reasons[0], (551, "neither a JSON object nor Envoy's default format"));
        assert!(reasons[1].1.starts_with("invalid JSON"), "{reasons:?}");
        assert!(reasons[2].1.contains("START_TIME \"yesterday\""), "{reasons:?}");
        assert_eq!(reasons[3], (554, "not UTF-8 text"));
        let (out, _) = text(&ctl(&["replay", "--config", s(&config), s(&log)]));
        assert!(out.contains("4 unreadable lines (not replayed)"), "{out}");
        assert!(out.contains("mixed.log:551: neither a JSON object"), "{out}");
    }

    #[test]
    fn plot_draws_allowed_and_denied_per_rule() {
        let dir = TempDir::new("replay-plot");
        let log = write(&dir, "envoy.log", &lines(&known(START_MS, 3, 60, 100), envoy_json));
        let old = write(&dir, "old.json", &per_client(60));
        let new = write(&dir, "new.json", &per_client(100));
        let svg = dir.0.join("out.svg");
        replay_json(&["--config", s(&new), "--compare", s(&old), "--plot", s(&svg), s(&log)]);
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{text}");
        assert!(text.trim_end().ends_with("</svg>"));
        assert!(text.contains(">per-client <tspan"), "the rule's panel");
        assert_eq!(text.matches("<polyline").count(), 3, "allowed, denied, and the old denials dashed");
        assert!(text.contains("stroke-dasharray"));
        assert!(!text.contains("<script") && !text.contains("href="), "self-contained");
    }

    #[test]
    fn the_readme_example_runs_on_the_committed_sample() {
        // examples/replay/access.log is the known traffic at 10 a minute, in Envoy's JSON.
        let sample = lines(&known(START_MS, 3, 10, 20), envoy_json);
        assert_eq!(tollgate_e2e::read("examples/replay/access.log"), sample, "regenerate examples/replay/access.log");
        let readme = tollgate_e2e::read("README.md");
        let cmd = "tollgatectl replay --config examples/replay/new.json --compare examples/replay/old.json examples/replay/access.log";
        assert!(readme.contains(cmd), "the README shows: {cmd}");
        let args: Vec<&str> = cmd.split(' ').skip(1).collect();
        let o = ctl(&args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(
            out.contains("20 requests change outcome from examples/replay/old.json to examples/replay/new.json"),
            "{out}"
        );
        assert!(out.contains("every line was read"), "{out}");
    }

    #[test]
    fn usage_and_input_errors_are_one_line() {
        let dir = TempDir::new("replay-errors");
        let log = write(&dir, "a.log", "");
        let bad =
            write(&dir, "bad.json", r#"{"rules":[{"name":"r","algorithm":"fixed_window","limit":0,"window":"1m"}]}"#);
        let good = write(&dir, "good.json", "{}");
        for (args, code, message) in [
            (vec!["replay", s(&log)], 2, "replay needs --config NEW.json"),
            (vec!["replay", "--config", s(&good)], 2, "at least one LOG"),
            (vec!["replay", "--config", s(&good), "--format", "xml", s(&log)], 2, "--format \"xml\""),
            (vec!["replay", "--config", s(&bad), s(&log)], 1, "rules[0].limit"),
            (vec!["replay", "--config", s(&good), "/nonexistent/a.log"], 1, "cannot open /nonexistent/a.log"),
        ] {
            let o = ctl(&args);
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
            assert!(err.contains(message), "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        }
        // An empty log is a report of nothing, not an error.
        let v = replay_json(&["--config", s(&good), s(&log)]);
        assert_eq!(v["new"]["requests"], 0);
    }
}

mod envoy {
    //! A real Envoy writes the logs; the replay agrees with what it did.
    use super::*;
    use std::time::{Duration, Instant};
    use tollgate_e2e::http::Request;
    use tollgate_e2e::{Envoy, EnvoyOptions, MockLlm};

    fn wait_for_lines(path: &Path, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= n {
                return text;
            }
            assert!(Instant::now() < deadline, "{}: {} of {n} lines after 60 s", path.display(), text.lines().count());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn envoy_access_logs_replay_to_the_decisions_envoy_made() {
        let dir = TempDir::new("replay-envoy");
        let json_log = dir.0.join("access.json.log");
        let text_log = dir.0.join("access.text.log");
        // A token bucket of 5 per hour: no refill during the test, so timing cannot matter.
        let config = json!({"rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "token_bucket",
                                       "limit": 5, "window": "1h"}]})
        .to_string();
        let llm = MockLlm::start();
        let mut opts = EnvoyOptions::standalone(&config, llm.port);
        opts.template = repo_root().join("envoy/access-log.yaml");
        opts.vars.push(("ACCESS_LOG_JSON".into(), json_log.display().to_string()));
        opts.vars.push(("ACCESS_LOG_TEXT".into(), text_log.display().to_string()));
        let envoy = Envoy::start(opts);
        let mut denied_by_envoy = 0;
        let mut sent = 0;
        for (key, n) in [("sk-alpha", 8), ("sk-beta", 3), ("sk-gamma", 6)] {
            for _ in 0..n {
                let r = Request::get(&envoy.url("/v1/models?x=1"))
                    .header("x-api-key", key)
                    .header("x-forwarded-for", "203.0.113.9")
                    .send()
                    .unwrap();
                sent += 1;
                if r.status == 429 {
                    denied_by_envoy += 1;
                }
            }
        }
        assert_eq!(denied_by_envoy, 4, "alpha 3, gamma 1");
        // Envoy writes access logs out every 10 s (--file-flush-interval-msec): wait for them.
        let json_text = wait_for_lines(&json_log, sent);
        let text_text = wait_for_lines(&text_log, sent);
        drop(envoy);
        // The logs are what the README says: JSON with the key, and the default format.
        let first: Value = serde_json::from_str(json_text.lines().next().unwrap()).unwrap();
        assert_eq!(first["headers"]["x-api-key"], "sk-alpha", "nested headers: {first}");
        assert_eq!(first["path"], "/v1/models?x=1");
        assert!(text_text.starts_with('['), "{text_text}");

        let config_path = write(&dir, "config.json", &config);
        let v = replay_json(&["--config", s(&config_path), s(&json_log)]);
        assert_eq!(v["input"]["unreadable"], 0, "{}", v["input"]);
        assert_eq!(v["new"]["requests"], sent);
        assert_eq!(v["new"]["outcomes"]["denied 429"], denied_by_envoy, "{}", v["new"]);
        let logged_429 = json_text.lines().filter(|l| l.contains("\"response_code\":429")).count();
        assert_eq!(logged_429, 4);
        assert_eq!(
            v["new"]["rules"][0]["top_denied_keys"],
            json!([{"key": fleet_hash("sk-alpha"), "denied": 3}, {"key": fleet_hash("sk-gamma"), "denied": 1}])
        );
        // The default text format reads too; it has no API key, so every request shares the
        // rule's missing-key counter (missing_key: shared) and 5 of them pass.
        let v = replay_json(&["--config", s(&config_path), s(&text_log)]);
        assert_eq!(v["input"]["unreadable"], 0, "{}", v["input"]);
        assert_eq!(v["input"]["formats"]["envoy_text"], sent);
        assert_eq!(v["new"]["outcomes"], json!({"allowed": 5, "denied 429": sent - 5}));
        assert_eq!(v["new"]["rules"][0]["top_denied_keys"][0]["key"], "(key missing)");

        // The README shows this access-log configuration.
        let yaml = tollgate_e2e::read("envoy/access-log.yaml");
        let begin = yaml.find("# BEGIN replay access log").unwrap();
        let end = yaml.find("# END replay access log").unwrap();
        let block: Vec<&str> = yaml[begin..end].lines().skip(1).map(str::trim).collect();
        let readme = tollgate_e2e::read("README.md");
        for line in block.iter().filter(|l| !l.is_empty() && !l.contains("${")) {
            assert!(readme.contains(line), "README lacks the access-log line {line:?}");
        }
    }
}
