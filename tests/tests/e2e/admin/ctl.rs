//! The admin plane through `tollgatectl` (the real binary) and the proxies' `GET /v1/sync`:
//! overrides added, listed and removed with the CLI expire to the second in both; the sync
//! endpoint answers 304 while nothing changed; errors are one line with the right exit code.
//! Builds tollgatectl itself; needs `cargo build -p tollgate-store` and redis-server (`make setup`).

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_e2e::ctl::{run_env as ctl_env, stderr, stdout};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::now_ms;
use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::{Store, ADMIN_TOKEN, PROXY_TOKEN};

/// Run tollgatectl against `store` (URL and token from the environment, as operators would).
fn ctl(store: &Store, args: &[&str]) -> Output {
    ctl_env(
        args,
        &[("TOLLGATE_STORE_URL", &store.url("")), ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN), ("TOLLGATE_ADMIN", "ops")],
    )
}

/// Run and require exit 0; the stdout.
fn ok(store: &Store, args: &[&str]) -> String {
    let o = ctl(store, args);
    assert_eq!(o.status.code(), Some(0), "tollgatectl {args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn ok_json(store: &Store, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(store, &a)).unwrap()
}

fn sync(s: &Store, etag: Option<&str>) -> Response {
    let mut req = Request::get(&s.url("/v1/sync")).header("authorization", &format!("Bearer {PROXY_TOKEN}"));
    if let Some(t) = etag {
        req = req.header("if-none-match", t);
    }
    req.send().unwrap()
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

fn listed_ids(s: &Store, all: bool) -> Vec<String> {
    let args: &[&str] = if all { &["overrides", "list", "--all"] } else { &["overrides", "list"] };
    ok_json(s, args)["overrides"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn overrides_added_with_tollgatectl_expire_to_the_second_in_sync_and_list() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let t = Instant::now();
    let short = ok_json(
        &s,
        &["overrides", "add", "--kind", "allow_key", "--target", "sk-vip", "--ttl", "2s", "--reason", "demo"],
    );
    let added_ms = now_ms();
    let id = short["id"].as_str().unwrap().to_string();
    let key = short["target"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 16, "keys are hashed on arrival: {short}");
    let until = short["until_ms"].as_u64().unwrap();
    assert!(until > added_ms + 1_500 && until <= added_ms + 2_000, "{short}");
    assert!(short["expires_at"].as_str().unwrap().ends_with('Z'));
    // Every other kind, through the CLI too (an RFC 3339 expiry as well).
    let add = |a: &[&str]| {
        let mut args = vec!["overrides", "add", "--reason", "launch"];
        args.extend_from_slice(a);
        ok_json(&s, &args)
    };
    let ip = add(&["--kind", "allow_ip", "--target", "10.0.0.0/8", "--ttl", "1h"]);
    let at = ip["expires_at"].as_str().unwrap().to_string();
    let long: Vec<String> = [
        ip,
        add(&["--kind", "emergency", "--ttl", "1h"]),
        add(&["--kind", "grant", "--target", "sk-vip", "--multiplier", "2.5", "--ttl", "1h"]),
        add(&["--kind", "grant", "--target", "sk-big", "--unlimited", "--expires-at", &at]),
    ]
    .iter()
    .map(|o| o["id"].as_str().unwrap().to_string())
    .collect();

    // t + 1 s: active in the list and in the sync document, with its absolute expiry.
    sleep_until(t + Duration::from_millis(1_000));
    assert!(listed_ids(&s, false).contains(&id));
    let table = ok(&s, &["overrides", "list"]);
    assert!(table.starts_with("ID  ") && table.contains(&id) && table.contains("allow_key"), "{table}");
    let doc = sync(&s, None).json();
    assert_eq!(doc["allow_keys"], json!([{"key": key, "until_ms": until}]));
    assert_eq!(doc["allow_ips"], json!([{"cidr": "10.0.0.0/8", "until_ms": doc["allow_ips"][0]["until_ms"]}]));
    assert!(doc["emergency"]["until_ms"].as_u64().unwrap() > now_ms() + 3_000_000);
    let grants = doc["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2, "{doc}");
    assert!(grants.iter().any(|g| g["key"] == key && g["multiplier"] == 2.5 && g["unlimited"] == false), "{doc}");
    assert!(grants.iter().any(|g| g["unlimited"] == true && g["multiplier"].is_null()), "{doc}");

    // t + 3 s: gone from both (still listed with --all, as expired). No poll was needed to
    // know that: until_ms said so.
    sleep_until(t + Duration::from_millis(3_000));
    assert!(now_ms() >= until);
    assert!(!listed_ids(&s, false).contains(&id));
    assert_eq!(sync(&s, None).json()["allow_keys"], json!([]));
    let all = ok_json(&s, &["overrides", "list", "--all"]);
    let expired = all["overrides"].as_array().unwrap().iter().find(|o| o["id"] == id.as_str()).unwrap().clone();
    assert_eq!(expired["active"], false);

    // Remove through the CLI: gone from the list and the sync document.
    let out = ok(&s, &["overrides", "remove", &long[0], "--reason", "office closed", "--admin", "alice"]);
    assert_eq!(out.trim(), format!("removed {}", long[0]));
    assert!(!listed_ids(&s, true).contains(&long[0]));
    assert_eq!(sync(&s, None).json()["allow_ips"], json!([]));
    // Removing it again: one line, exit 1.
    let o = ctl(&s, &["overrides", "remove", &long[0], "--reason", "again"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("tollgatectl: no override {} (HTTP 404)\n", long[0]));
    // The audit log, through the CLI, has each action with who and why.
    let audit = ok_json(&s, &["audit"]);
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(
        (entries[0]["action"].clone(), entries[0]["admin"].clone(), entries[0]["reason"].clone()),
        (json!("override.remove"), json!("alice"), json!("office closed"))
    );
    assert!(entries[1..].iter().all(|e| e["action"] == "override.add" && e["admin"] == "ops"));
    let by_key = ok_json(&s, &["audit", "--key", "sk-vip"]);
    assert_eq!(by_key["entries"].as_array().unwrap().len(), 2);
    let table = ok(&s, &["audit", "--admin", "alice"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("override.remove") && table.contains("office closed"), "{table}");
}

#[test]
fn sync_is_304_until_an_admin_write_changes_something() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let first = sync(&s, None);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("etag"), Some("\"0\""));
    assert_eq!(
        first.json(),
        json!({"version": 0, "emergency": null, "allow_keys": [], "allow_ips": [], "grants": [], "key_limits": []})
    );
    let r = sync(&s, Some("\"0\""));
    assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, Some("\"0\"")));
    // A write: the old version gets 200 and the new document.
    let out = ok(
        &s,
        &[
            "keys",
            "limits",
            "sk-sync",
            "--tier",
            "pro",
            "--limit",
            "per-key-rpm=600",
            "--burst",
            "per-key-rpm=50",
            "--reason",
            "deal",
        ],
    );
    assert!(out.contains("tier pro") && out.contains("per-key-rpm=600 (burst 50)"), "{out}");
    let r = sync(&s, Some("\"0\""));
    assert_eq!(r.status, 200);
    let doc = r.json();
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", doc["version"]));
    assert!(doc["version"].as_u64().unwrap() > 0);
    assert_eq!(doc["key_limits"][0]["tier"], "pro");
    assert_eq!(doc["key_limits"][0]["limits"], json!({"per-key-rpm": {"limit": 600, "burst": 50}}));
    // Unchanged: 304, also as a weak tag or within a list.
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"1\", {etag}")] {
        assert_eq!(sync(&s, Some(&tag)).status, 304, "{tag}");
    }
    // A key reset does not change what proxies apply: still 304.
    ok(&s, &["keys", "reset", "sk-sync", "--reason", "support"]);
    assert_eq!(sync(&s, Some(&etag)).status, 304);
    // Every override and limits change bumps the version.
    let mut last = etag;
    for args in [
        &["overrides", "add", "--kind", "emergency", "--ttl", "1m", "--reason", "x"][..],
        &["keys", "limits", "sk-sync", "--remove", "--reason", "y"],
    ] {
        ok(&s, args);
        let r = sync(&s, Some(&last));
        assert_eq!(r.status, 200, "{args:?}");
        let tag = r.header("etag").unwrap().to_string();
        assert!(tag.trim_matches('"').parse::<u64>().unwrap() > last.trim_matches('"').parse::<u64>().unwrap());
        last = tag;
    }
    let r = sync(&s, Some(&last));
    assert_eq!((r.status, r.body.len()), (304, 0), "304 has no body");
}

#[test]
fn keys_commands_show_status_limits_and_reset() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let h = ok_json(&s, &["keys", "status", "sk-cli"])["key"].as_str().unwrap().to_string();
    let c = json!({"rule": "per-key-rpm", "key": h, "algorithm": "token_bucket", "limit": 60, "window_ms": 60_000, "burst": 10, "cost": 4});
    assert_eq!(s.post("/v1/check", &json!({"checks": [c]})).status, 200);
    let table = ok(&s, &["keys", "status", "sk-cli"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], format!("key {h}"));
    assert!(lines[1].starts_with("RULE") && lines[1].contains("REMAINING"), "{table}");
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&row[..7], ["per-key-rpm", "token_bucket", "60", "1m", "10", "4", "6"], "{table}");
    // The same by hash (as top violators are listed).
    assert_eq!(ok_json(&s, &["keys", "status", &h, "--hash"])["rules"][0]["used"], 4);
    assert!(ok(&s, &["keys", "limits", "sk-cli"]).contains("no per-key limits"));
    ok(&s, &["keys", "limits", "sk-cli", "--tier", "enterprise", "--reason", "upgrade"]);
    let shown = ok(&s, &["keys", "limits", "sk-cli"]);
    assert!(shown.contains("tier enterprise") && shown.contains("set by ops"), "{shown}");
    assert_eq!(ok_json(&s, &["keys", "limits", "sk-cli"])["tier"], "enterprise");
    let out = ok(&s, &["keys", "reset", "sk-cli", "--reason", "ticket 9"]);
    assert_eq!(out.trim(), format!("key {h}: reset 1 counter(s): per-key-rpm"));
    assert!(ok(&s, &["keys", "status", "sk-cli"]).contains("no counters at the store"));
    let out = ok(&s, &["keys", "limits", "sk-cli", "--remove", "--reason", "done"]);
    assert_eq!(out.trim(), format!("removed the per-key limits of key {h}"));
    let stats = ok(&s, &["stats"]);
    assert!(stats.contains("per-key-rpm") && stats.contains("TOP KEYS"), "{stats}");
    assert_eq!(ok_json(&s, &["stats", "--top", "5"])["rules"][0]["allowed"], 1);
}

#[test]
fn errors_are_one_line_with_exit_1_and_usage_errors_exit_2() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let url = s.url("");
    // Flags win over the environment; a wrong token is refused.
    let o = ctl_env(&["stats", "--store", &url, "--token", "wrong"], &[("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "tollgatectl: the store refused the admin token: invalid admin token\n");
    let o = ctl_env(&["stats", "--store", &url, "--token", ADMIN_TOKEN], &[("TOLLGATE_ADMIN_TOKEN", "wrong")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The store refuses an invalid request: its message, exit 1.
    let o =
        ctl(&s, &["overrides", "add", "--kind", "allow_ip", "--target", "10.0.0.1/8", "--ttl", "1h", "--reason", "x"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "tollgatectl: target: \"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8) (HTTP 400)\n"
    );
    // An unreachable store.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = ctl_env(
        &["stats"],
        &[("TOLLGATE_STORE_URL", &format!("http://127.0.0.1:{dead}")), ("TOLLGATE_ADMIN_TOKEN", "t")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(&format!("tollgatectl: cannot reach the store at http://127.0.0.1:{dead}: ")),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
    // Usage errors: exit 2, one line, nothing sent.
    for (args, want) in [
        (&["keys", "status"][..], "missing KEY"),
        (&["keys", "frob", "k"], "keys frob: expected status, limits or reset"),
        (&["keys", "reset", "k"], "--reason TEXT is required"),
        (&["keys", "limits", "k", "--limit", "rpm"], "--limit \"rpm\": expected RULE=N"),
        (&["keys", "limits", "k", "--tier", "pro", "--remove", "--reason", "r"], "--remove cannot be combined"),
        (&["overrides", "add", "--ttl", "1m", "--reason", "r"], "--kind is required"),
        (&["overrides", "add", "--kind", "emergency", "--reason", "r"], "--ttl DURATION (e.g. 10m) or --expires-at"),
        (
            &["overrides", "add", "--kind", "grant", "--multiplier", "lots", "--ttl", "1m", "--reason", "r"],
            "--multiplier \"lots\"",
        ),
        (&["overrides", "remove"], "missing ID"),
        (&["overrides", "list", "--colour"], "unknown option --colour"),
        (&["stats", "--top"], "--top needs a value"),
    ] {
        let o = ctl(&s, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.starts_with(&format!("tollgatectl: {want}")), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let o = ctl_env(&["stats"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("tollgatectl: no admin token: pass --token T or set TOLLGATE_ADMIN_TOKEN"));
    let o = ctl_env(&["stats", "--store", "https://store:8443", "--token", "t"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("only http:// URLs are supported"), "{}", stderr(&o));
    // --help anywhere prints the usage with every command.
    let o = ctl_env(&["overrides", "add", "--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    for command in
        ["tollgatectl keys status KEY", "tollgatectl overrides add", "tollgatectl audit", "tollgatectl stats", "--json"]
    {
        assert!(stdout(&o).contains(command), "{command}");
    }
    // Nothing above changed anything.
    assert!(ok_json(&s, &["audit"])["entries"].as_array().unwrap().is_empty());
}
