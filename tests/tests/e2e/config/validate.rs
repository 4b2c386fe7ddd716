//! `tollgatectl`: `validate` runs the filter's own parser natively and reports exactly what
//! Envoy logs for the same file. The store commands are tested in `admin::ctl`.
//!
//! Builds `tollgatectl` itself (`cargo build -p tollgate-store`); the Envoy comparison needs
//! `make build`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use tollgate_e2e::ctl::{run as ctl, stderr, stdout, tollgatectl};
use tollgate_e2e::files::{files_with_ext, rel};
use tollgate_e2e::{repo_root, Envoy, EnvoyOptions, MockLlm, TempDir};

fn json_files(dir: &str) -> Vec<PathBuf> {
    files_with_ext(&repo_root().join(dir), &["json"], false)
}

/// The field path the filter names for each invalid fixture ("" = not JSON).
const FIXTURE_PATHS: &[(&str, &str)] = &[
    ("bad-key-source.json", "rules[0].key[1]"),
    ("bad-path-regex.json", "rules[0].match.path_regex"),
    ("bad-rule-name.json", "rules[0].name"),
    ("bad-status.json", "response.status"),
    ("bad-window.json", "rules[0].window"),
    ("body-tier-source.json", "tier.source"),
    ("degrade-without-section.json", "rules[0].degrade"),
    ("duplicate-names.json", "rules[1].name"),
    ("empty-key.json", "rules[0].key"),
    ("global-without-store.json", "rules[1].scope"),
    ("missing-algorithm.json", "rules[0].algorithm"),
    ("not-json.json", ""),
    ("relative-exempt-path.json", "exempt_paths[1]"),
    ("small-slots.json", "slots.capacity"),
    ("string-limit.json", "rules[0].limit"),
    ("too-many-hops.json", "client_ip.trusted_hops"),
    ("unknown-algorithm.json", "rules[0].algorithm"),
    ("unknown-field.json", "rules[0].limitt"),
    ("unknown-header-format.json", "response.headers[1]"),
    ("window-overflow.json", "rules[0].window"),
    ("zero-limit.json", "rules[0].limit"),
    ("zero-window.json", "rules[0].window"),
];

#[test]
fn validate_accepts_every_example_and_lists_its_rules() {
    let examples = json_files("examples");
    assert!(examples.len() >= 6, "{examples:?}");
    for path in examples {
        let file = rel(&path);
        let out = ctl(&["validate", &file]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let names: Vec<&str> =
            config["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        let count = if names.len() == 1 { "1 rule".to_string() } else { format!("{} rules", names.len()) };
        assert_eq!(stdout(&out), format!("{file}: ok ({count}: {})\n", names.join(", ")));
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn validate_rejects_each_invalid_fixture_naming_the_field() {
    let fixtures = json_files("examples/invalid");
    let names: Vec<String> = fixtures.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let table: Vec<&str> = FIXTURE_PATHS.iter().map(|(f, _)| *f).collect();
    assert_eq!(names, table, "examples/invalid/ and FIXTURE_PATHS must list the same files");
    for (path, (_, field)) in fixtures.iter().zip(FIXTURE_PATHS) {
        let file = rel(path);
        let out = ctl(&["validate", &file]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stdout(&out));
        assert_eq!(stdout(&out), "", "{file}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{file}: one line: {err}");
        let expected = if field.is_empty() {
            format!("{file}: configuration is not valid JSON: ")
        } else {
            format!("{file}: {field}: ")
        };
        assert!(err.starts_with(&expected), "{file}: {err:?} does not start with {expected:?}");
    }
}

#[test]
fn validate_prints_what_envoy_logs_for_the_same_file() {
    // For each invalid fixture, the text after "invalid configuration: " in Envoy's log is
    // exactly what tollgatectl prints after "FILE: ". Three Envoys at a time.
    let fixtures = json_files("examples/invalid");
    let next = std::sync::atomic::AtomicUsize::new(0);
    let llm = MockLlm::start();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(path) = fixtures.get(i) else { break };
                let file = rel(path);
                let text = std::fs::read_to_string(path).unwrap();
                let out = ctl(&["validate", &file]);
                let ours = stderr(&out).trim_end().strip_prefix(&format!("{file}: ")).unwrap().to_string();
                let failed = Envoy::try_start(EnvoyOptions::standalone(&text, llm.port))
                    .err()
                    .unwrap_or_else(|| panic!("Envoy accepted {file}"));
                let logged = failed
                    .log
                    .lines()
                    .find_map(|l| l.split_once("invalid configuration: ").map(|(_, rest)| rest.to_string()))
                    .unwrap_or_else(|| {
                        panic!("{file}: no `invalid configuration:` line in Envoy's log:\n{}", failed.log)
                    });
                assert_eq!(logged, ours, "{file}");
            });
        }
    });
    assert!(next.into_inner() > fixtures.len(), "every fixture was checked");
}

#[test]
fn validate_reports_a_missing_file_clearly() {
    let out = ctl(&["validate", "examples/no-such-config.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).lines().next().unwrap(),
        "examples/no-such-config.json: cannot read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn validate_checks_every_file_given_and_fails_if_any_is_invalid() {
    let out =
        ctl(&["validate", "examples/demo.json", "examples/invalid/zero-limit.json", "examples/multi-window.json"]);
    assert_eq!(out.status.code(), Some(1));
    let ok = stdout(&out);
    assert!(ok.contains("examples/demo.json: ok (2 rules: per-key-rpm, per-key-tpm)"), "{ok}");
    assert!(ok.contains("examples/multi-window.json: ok (4 rules: "), "{ok}");
    assert_eq!(stderr(&out), "examples/invalid/zero-limit.json: rules[0].limit: must be positive\n");
}

#[test]
fn validate_reads_standard_input_and_marks_disabled_rules() {
    let mut child = Command::new(tollgatectl())
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let config = r#"{"enabled": false, "rules": [
        {"name": "a", "algorithm": "gcra", "limit": 1, "window": "1s"},
        {"name": "b", "enabled": false, "algorithm": "gcra", "limit": 1, "window": "1s"}]}"#;
    child.stdin.take().unwrap().write_all(config.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "-: ok (2 rules: a, b [disabled]; the filter is disabled (\"enabled\": false))\n");
}

#[test]
fn an_empty_file_is_the_empty_configuration() {
    let dir = TempDir::new("ctl");
    let empty = dir.0.join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let out = ctl(&["validate", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("{}: ok (0 rules)\n", empty.display()));
}

#[test]
fn help_lists_every_command_of_the_contract() {
    for flag in ["--help", "-h", "help"] {
        let out = ctl(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let help = stdout(&out);
        for command in [
            "tollgatectl validate CONFIG.json",
            "tollgatectl keys status KEY",
            "tollgatectl keys limits KEY",
            "tollgatectl keys reset KEY",
            "tollgatectl overrides add",
            "tollgatectl overrides list",
            "tollgatectl overrides remove ID",
            "tollgatectl audit",
            "tollgatectl stats",
        ] {
            assert!(help.contains(command), "{flag}: help lacks {command:?}:\n{help}");
        }
    }
}

#[test]
fn store_commands_need_an_admin_token() {
    // The store commands themselves are tested against a real store in `admin::ctl`.
    for args in [&["keys", "status", "sk-1"][..], &["overrides", "list"], &["audit"], &["stats"]] {
        let out = Command::new(tollgatectl()).args(args).env_clear().output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).starts_with("tollgatectl: no admin token"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn usage_errors_exit_2() {
    let none = ctl(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("Usage:"), "{}", stderr(&none));
    let unknown = ctl(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).starts_with("tollgatectl: unknown command \"frobnicate\""), "{}", stderr(&unknown));
    let no_file = ctl(&["validate"]);
    assert_eq!(no_file.status.code(), Some(2));
    assert!(stderr(&no_file).contains("missing CONFIG.json"), "{}", stderr(&no_file));
}
