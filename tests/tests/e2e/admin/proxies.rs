//! The admin plane as proxies apply it: grants, emergency access and per-key limits made
//! through tollgatectl reach a running Envoy within two poll intervals (waited for with ample
//! slack: the machine may be busy), without a reload, and expire on time; the audit log names
//! who did what and why.

use serde_json::json;
use std::time::{Duration, Instant};
use tollgate_e2e::ctl::{stderr, stdout, tollgatectl};
use tollgate_e2e::redis::Redis;
use tollgate_e2e::store::{Store, ADMIN_TOKEN, PROXY_TOKEN};
use tollgate_e2e::{eventually, repo_root, Envoy, EnvoyOptions, MockLlm};

const POLL: Duration = Duration::from_millis(200);

fn ctl(store: &Store, args: &[&str]) -> String {
    let out = std::process::Command::new(tollgatectl())
        .args(args)
        .args(["--store", &store.url(""), "--token", ADMIN_TOKEN, "--admin", "alice"])
        .output()
        .expect("run tollgatectl");
    assert!(out.status.success(), "tollgatectl {args:?}: {}", stderr(&out));
    stdout(&out)
}

struct Setup {
    envoy: Envoy,
    store: Store,
    _redis: Redis,
    _llm: MockLlm,
}

fn setup() -> Setup {
    let redis = Redis::start();
    let store = Store::start(&redis.url(), &[]);
    let llm = MockLlm::start();
    let config = json!({
        "store": {"cluster": "tollgate_store", "authority": "tollgate-store", "token": PROXY_TOKEN,
                  "timeout": "250ms", "poll_interval": "200ms"},
        "rules": [{"name": "per-key", "key": ["api_key"], "algorithm": "fixed_window", "limit": 2, "window": "1h"}]
    });
    let mut opts = EnvoyOptions::standalone(&config.to_string(), llm.port);
    opts.template = repo_root().join("envoy/with-store.yaml");
    opts.vars.push(("STORE_PORT".into(), store.port.to_string()));
    Setup { envoy: Envoy::start(opts), store, _redis: redis, _llm: llm }
}

fn status(envoy: &Envoy, key: &str) -> u16 {
    envoy.status_with_key("/", key)
}

/// Every worker polls on its own every `POLL`: two intervals after a change, all have it. The
/// test waits up to 25 intervals (a busy machine delays ticks) for 4 answers in a row.
fn within_two_polls(envoy: &Envoy, key: &str, want: u16) {
    let limit = 25 * POLL.as_millis() as u64 / 1000;
    eventually(&format!("{key} answering {want} (4 times in a row) after the change"), limit, || {
        (0..4).all(|_| status(envoy, key) == want).then_some(())
    });
}

fn exhaust(envoy: &Envoy, key: &str) {
    while status(envoy, key) == 200 {}
    assert_eq!(status(envoy, key), 429);
}

#[test]
fn a_grant_lets_a_limited_key_through_until_it_expires() {
    let s = setup();
    exhaust(&s.envoy, "sk-limited");
    let ttl = Duration::from_secs(6);
    ctl(
        &s.store,
        &[
            "overrides",
            "add",
            "--kind",
            "grant",
            "--target",
            "sk-limited",
            "--unlimited",
            "--ttl",
            "6s",
            "--reason",
            "incident 42",
        ],
    );
    // The grant expires at most `ttl` after the command returned.
    let expires_by = Instant::now() + ttl;
    within_two_polls(&s.envoy, "sk-limited", 200);
    for _ in 0..5 {
        assert_eq!(status(&s.envoy, "sk-limited"), 200, "unlimited while the grant lasts");
    }
    // Expiry is applied from the absolute time the proxy received: no poll needed.
    std::thread::sleep(expires_by.saturating_duration_since(Instant::now()) + Duration::from_millis(100));
    assert_eq!(status(&s.envoy, "sk-limited"), 429, "limited again when the grant expired");
    let audit = ctl(&s.store, &["audit", "--json"]);
    assert!(audit.contains("alice") && audit.contains("incident 42"), "audit names the admin and reason: {audit}");
    assert!(!audit.contains("sk-limited"), "no raw key in the audit log");
}

#[test]
fn emergency_access_lets_everyone_through_and_its_removal_restores_limits() {
    let s = setup();
    exhaust(&s.envoy, "sk-a");
    let added =
        ctl(&s.store, &["overrides", "add", "--kind", "emergency", "--ttl", "10m", "--reason", "outage", "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&added).unwrap()["id"].as_str().unwrap().to_string();
    within_two_polls(&s.envoy, "sk-a", 200);
    assert_eq!(status(&s.envoy, "sk-b"), 200);
    ctl(&s.store, &["overrides", "remove", &id, "--reason", "resolved"]);
    within_two_polls(&s.envoy, "sk-a", 429);
}

#[test]
fn per_key_limits_set_through_the_api_take_effect_without_touching_envoy() {
    let s = setup();
    exhaust(&s.envoy, "sk-vip");
    ctl(&s.store, &["keys", "limits", "sk-vip", "--limit", "per-key=5", "--reason", "customer upgrade"]);
    let limit = 25 * POLL.as_millis() as u64 / 1000;
    eventually("sk-vip admitted under its new limit", limit, || (status(&s.envoy, "sk-vip") == 200).then_some(()));
    // Both workers share the key's counter; one may still apply the old, exhausted quota for
    // a poll interval (a 429 that charges nothing). Count until 2 s have passed and the last 5
    // answers were 429.
    let first = Instant::now();
    let (mut admitted, mut denied_in_a_row) = (1, 0);
    while first.elapsed() < Duration::from_secs(2) || denied_in_a_row < 5 {
        if status(&s.envoy, "sk-vip") == 200 {
            admitted += 1;
            denied_in_a_row = 0;
            assert!(admitted <= 5, "more than the per-key limit");
        } else {
            denied_in_a_row += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new quota is a new counter (a counter is only meaningful under the quota it was
    // charged with): the key gets its 5 afresh.
    assert_eq!(admitted, 5, "5 under the new per-key limit");
    assert_eq!(status(&s.envoy, "sk-other"), 200, "other keys keep the configured limit");
}

#[test]
fn proxies_keep_the_last_good_copy_when_the_store_goes_away() {
    let mut s = setup();
    exhaust(&s.envoy, "sk-kept");
    ctl(
        &s.store,
        &["overrides", "add", "--kind", "allow_key", "--target", "sk-kept", "--ttl", "10m", "--reason", "partner"],
    );
    within_two_polls(&s.envoy, "sk-kept", 200);
    drop(std::mem::replace(&mut s.store, Store::start("redis://127.0.0.1:1", &[])));
    std::thread::sleep(3 * POLL);
    assert_eq!(status(&s.envoy, "sk-kept"), 200, "the allow-list survives the store's absence");
}
