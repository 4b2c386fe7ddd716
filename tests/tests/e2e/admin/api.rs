//! tollgate-store's admin API against a real Redis, over real HTTP: authentication, validation,
//! key status of fleet-hashed keys, per-key limits, reset, the audit log, bounded statistics,
//! and no raw key anywhere in Redis.
//! Needs `cargo build -p tollgate-store` and redis-server (`make setup`).

use std::time::Duration;

use serde_json::{json, Value};
use tollgate_e2e::http::{Request, Response};
use tollgate_e2e::redis::{Redis, Resp};
use tollgate_e2e::store::{Store, ADMIN_TOKEN, PROXY_TOKEN};
use tollgate_e2e::{fleet_hash, now_ms};

/// Percent-encode a path segment or query value.
fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn send(s: &Store, method: &str, path: &str, auth: Option<&str>, body: Option<&Value>) -> Response {
    let mut req = Request { method: method.into(), url: s.url(path), ..Default::default() };
    if let Some(b) = body {
        req.body = b.to_string().into_bytes();
        req = req.header("content-type", "application/json");
    }
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// An admin call that must succeed with `status`; its JSON.
fn admin(s: &Store, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
    let r = send(s, method, path, Some(&format!("Bearer {ADMIN_TOKEN}")), body.as_ref());
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

fn check(s: &Store, checks: Value) -> Value {
    let r = s.post("/v1/check", &json!({ "checks": checks }));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn counter(rule: &str, key: &str, algorithm: &str, limit: u64, window_ms: u64, cost: u64) -> Value {
    json!({"rule": rule, "key": key, "algorithm": algorithm, "limit": limit, "window_ms": window_ms, "cost": cost})
}

fn audit(s: &Store, query: &str) -> Vec<Value> {
    admin(s, "GET", &format!("/v1/audit{query}"), None, 200)["entries"].as_array().unwrap().clone()
}

/// Every admin endpoint with a valid body.
fn admin_calls(key: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let who = json!({"admin": "mallory", "reason": "r"});
    vec![
        ("GET", format!("/v1/keys/{key}/status"), None),
        ("GET", format!("/v1/keys/{key}/limits"), None),
        ("PUT", format!("/v1/keys/{key}/limits"), Some(json!({"tier": "pro", "admin": "mallory", "reason": "r"}))),
        ("DELETE", format!("/v1/keys/{key}/limits?admin=mallory&reason=r"), None),
        ("POST", format!("/v1/keys/{key}/reset"), Some(who)),
        ("GET", "/v1/stats".into(), None),
        ("GET", "/v1/overrides".into(), None),
        (
            "POST",
            "/v1/overrides".into(),
            Some(json!({"kind": "emergency", "ttl": "1h", "admin": "mallory", "reason": "r"})),
        ),
        ("DELETE", "/v1/overrides/ov-0000000000000000?admin=mallory&reason=r".into(), None),
        ("GET", "/v1/audit".into(), None),
    ]
}

#[test]
fn admin_calls_without_the_admin_token_are_401_and_change_nothing() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let key = "sk-auth-test";
    check(&s, json!([counter("rpm", &fleet_hash(key), "fixed_window", 10, 86_400_000, 4)]));
    let before = redis.keys();
    for (method, path, body) in admin_calls(key) {
        for auth in [
            None,
            Some("Bearer nope".to_string()),
            Some(format!("Bearer {PROXY_TOKEN}")),
            Some(ADMIN_TOKEN.to_string()),
            Some(format!("Basic {ADMIN_TOKEN}")),
            Some(format!("Bearer {ADMIN_TOKEN}x")),
        ] {
            let r = send(&s, method, &path, auth.as_deref(), body.as_ref());
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    // The proxy sync endpoint does not take the admin token either.
    let r = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {ADMIN_TOKEN}")), None);
    assert_eq!(r.status, 401);
    // Nothing changed: same keys, the counter untouched, no audit entry, version 0.
    let mut after = redis.keys();
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(after, before);
    assert!(audit(&s, "").is_empty());
    let status = admin(&s, "GET", &format!("/v1/keys/{key}/status"), None, 200);
    assert_eq!(status["rules"][0]["used"], 4, "{status}");
    let sync = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {PROXY_TOKEN}")), None).json();
    assert_eq!(sync["version"], 0);
    assert!(admin(&s, "GET", "/v1/overrides?all=1", None, 200)["overrides"].as_array().unwrap().is_empty());
}

#[test]
fn invalid_admin_requests_are_400_naming_the_field() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let who = |mut v: Value| {
        v["admin"] = "alice".into();
        v["reason"] = "test".into();
        v
    };
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("PUT", "/v1/keys/k/limits".into(), Some(who(json!({}))), "tier: give a tier, limits, or both"),
        ("PUT", "/v1/keys/k/limits".into(), Some(who(json!({"tier": "a b"}))), "tier: must be 1 to 64"),
        (
            "PUT",
            "/v1/keys/k/limits".into(),
            Some(who(json!({"limits": {"r": {"limit": 0}}}))),
            "limits.r.limit: must be positive",
        ),
        ("PUT", "/v1/keys/k/limits".into(), Some(json!({"tier": "pro", "admin": "a"})), "reason: is required"),
        ("PUT", "/v1/keys/k/limits".into(), Some(json!({"tier": "pro", "reason": "r"})), "admin: is required"),
        ("PUT", "/v1/keys/k/limits".into(), None, "body: invalid JSON"),
        ("DELETE", "/v1/keys/k/limits?admin=a".into(), None, "reason: is required"),
        ("POST", "/v1/keys/k/reset".into(), Some(json!({"admin": "a"})), "reason: is required"),
        ("GET", "/v1/keys/k/status?hash=1".into(), None, "key: with hash=1, must be 16 hexadecimal digits"),
        ("GET", "/v1/keys/k/status?hash=maybe".into(), None, "hash: must be 1 or 0"),
        ("POST", "/v1/overrides".into(), Some(who(json!({"ttl": "1m"}))), "kind: is required"),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "block", "ttl": "1m"}))),
            "kind: \"block\": must be one of",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "allow_key", "ttl": "1m"}))),
            "target: is required for kind allow_key",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "allow_ip", "target": "10.0.0.1/8", "ttl": "1m"}))),
            "target: \"10.0.0.1/8\" has host bits set",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "allow_ip", "target": "2001:db8::/200", "ttl": "1m"}))),
            "target: \"2001:db8::/200\": the prefix length must be 0 to 128",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "grant", "target": "sk", "ttl": "1m"}))),
            "multiplier: kind grant needs unlimited: true or a multiplier",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "grant", "target": "sk", "multiplier": -2, "ttl": "1m"}))),
            "multiplier: must be a number above 0",
        ),
        ("POST", "/v1/overrides".into(), Some(who(json!({"kind": "emergency"}))), "ttl: one of ttl"),
        ("POST", "/v1/overrides".into(), Some(who(json!({"kind": "emergency", "ttl": "soon"}))), "ttl: \"soon\""),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "emergency", "expires_at": "2001-01-01T00:00:00Z"}))),
            "expires_at: is in the past",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(who(json!({"kind": "emergency", "expires_at": "next tuesday"}))),
            "expires_at: \"next tuesday\": must be an RFC 3339 time",
        ),
        (
            "POST",
            "/v1/overrides".into(),
            Some(json!({"kind": "emergency", "ttl": "1m", "admin": "a"})),
            "reason: is required",
        ),
        ("DELETE", "/v1/overrides/bad%20id?admin=a&reason=r".into(), None, "id: must be an override id"),
        ("DELETE", "/v1/overrides/ov-1".into(), None, "admin: is required"),
        ("GET", "/v1/audit?since=yesterday".into(), None, "since: must be an RFC 3339 time"),
        ("GET", "/v1/audit?limit=0".into(), None, "limit: must be a whole number from 1 to 1000"),
        ("GET", "/v1/audit?key_hash=xyz".into(), None, "key_hash: must be 16 hexadecimal digits"),
        ("GET", "/v1/stats?top=101".into(), None, "top: must be a whole number from 1 to 100"),
        ("GET", "/v1/overrides?all=2".into(), None, "all: must be 1 or 0"),
    ];
    for (method, path, body, want) in cases {
        let mut r = send(&s, method, &path, Some(&format!("Bearer {ADMIN_TOKEN}")), body.as_ref());
        if body.is_none() && method == "PUT" {
            r = {
                let mut req =
                    Request { method: "PUT".into(), url: s.url(&path), body: b"{".to_vec(), ..Default::default() };
                req = req.header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
                req.send().unwrap()
            };
        }
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        let e = r.json();
        assert_eq!(e["error"]["code"], "invalid_request", "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(want), "{method} {path}: {message:?} does not start with {want:?}");
    }
    // Unknown override: 404. Nothing was written by any of it.
    let r = send(&s, "DELETE", "/v1/overrides/ov-1?admin=a&reason=r", Some(&format!("Bearer {ADMIN_TOKEN}")), None);
    assert_eq!((r.status, r.json()["error"]["code"].clone()), (404, json!("not_found")));
    assert!(audit(&s, "").is_empty());
    assert!(redis.keys().is_empty(), "{:?}", redis.keys());
    // Proxies' optional stats fields are validated too.
    let mut c = counter("r", &fleet_hash("k"), "gcra", 5, 1000, 1);
    c["ip"] = "10.0.0.256".into();
    let r = s.post("/v1/check", &json!({ "checks": [c] }));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "checks[0].ip: must be an IPv4 or IPv6 address");
}

#[test]
fn key_status_shows_the_usage_of_fleet_hashed_keys_and_reset_clears_it() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let raw = "sk-live-status/with+odd chars";
    let h = fleet_hash(raw);
    let path = |what: &str| format!("/v1/keys/{}/{what}", enc(raw));
    // No counter yet.
    let v = admin(&s, "GET", &path("status"), None, 200);
    assert_eq!(v, json!({"key": h, "rules": [], "limits": null, "overrides": []}));
    // Proxies charge two global rules of this key (hashed as they do).
    for _ in 0..3 {
        check(
            &s,
            json!([
                counter("per-key-rpm", &h, "token_bucket", 60, 60_000, 1),
                counter("per-key-tpd", &h, "fixed_window", 100_000, 86_400_000, 250)
            ]),
        );
    }
    let v = admin(&s, "GET", &path("status"), None, 200);
    assert_eq!(v["key"], h);
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{v}");
    let rpm = &rules[0];
    assert_eq!(
        (
            rpm["rule"].clone(),
            rpm["algorithm"].clone(),
            rpm["limit"].clone(),
            rpm["window_ms"].clone(),
            rpm["burst"].clone()
        ),
        (json!("per-key-rpm"), json!("token_bucket"), json!(60), json!(60_000), json!(60))
    );
    assert_eq!((rpm["used"].clone(), rpm["remaining"].clone()), (json!(3), json!(57)), "{rpm}");
    let reset_ms = rpm["reset_after_ms"].as_u64().unwrap();
    assert!((2_900..=3_000).contains(&reset_ms), "{rpm}");
    assert!(rpm["reset_at"].as_str().unwrap().ends_with('Z'));
    let tpd = &rules[1];
    assert_eq!((tpd["used"].clone(), tpd["remaining"].clone()), (json!(750), json!(99_250)), "{tpd}");
    // The same through the key hash.
    let by_hash = admin(&s, "GET", &format!("/v1/keys/{h}/status?hash=1"), None, 200);
    assert_eq!(by_hash["rules"][1]["used"], 750);
    // The index of the key's rules lives at least as long as its counters.
    let index = format!("tollgate:{{{h}}}:#rules");
    let tpd_key = format!("tollgate:{{{h}}}:per-key-tpd");
    assert!(redis.cmd(&["PTTL", &index]).as_int() >= redis.cmd(&["PTTL", &tpd_key]).as_int() - 50);
    // Per-key limits and the overrides that apply show in the status.
    admin(&s, "PUT", &path("limits"), Some(json!({"tier": "pro", "admin": "alice", "reason": "upgrade"})), 200);
    let g = json!({"kind": "grant", "target": raw, "multiplier": 3, "ttl": "1h", "admin": "bob", "reason": "launch"});
    let grant = admin(&s, "POST", "/v1/overrides", Some(g), 201);
    let other = json!({"kind": "allow_key", "target": "sk-other", "ttl": "1h", "admin": "bob", "reason": "x"});
    admin(&s, "POST", "/v1/overrides", Some(other), 201);
    let v = admin(&s, "GET", &path("status"), None, 200);
    assert_eq!(v["limits"]["tier"], "pro");
    assert_eq!(v["overrides"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["overrides"][0]["id"], grant["id"]);
    assert_eq!(v["overrides"][0]["multiplier"], 3.0);
    // Reset: the counters are gone at the store, and the next check starts afresh.
    let r = admin(&s, "POST", &path("reset"), Some(json!({"admin": "carol", "reason": "ticket 7"})), 200);
    assert_eq!(r, json!({"key": h, "reset": ["per-key-rpm", "per-key-tpd"]}));
    assert!(redis.keys().iter().all(|k| !k.contains(&h)), "{:?}", redis.keys());
    assert_eq!(admin(&s, "GET", &path("status"), None, 200)["rules"], json!([]));
    let d = check(&s, json!([counter("per-key-tpd", &h, "fixed_window", 100_000, 86_400_000, 1)]));
    assert_eq!(d["results"][0]["remaining"], 99_999);
    // A reset of a key without counters is fine, and audited.
    let r = admin(
        &s,
        "POST",
        &format!("/v1/keys/{}/reset", enc("sk-never-seen")),
        Some(json!({"admin": "c", "reason": "r"})),
        200,
    );
    assert_eq!(r["reset"], json!([]));
    let entries = audit(&s, "?action=key.reset");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["before"]["rules"][1]["used"], 750, "{}", entries[1]);
}

#[test]
fn per_key_limits_are_set_read_and_removed_and_reach_the_sync_document() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let h = fleet_hash("sk-limits");
    let empty = admin(&s, "GET", "/v1/keys/sk-limits/limits", None, 200);
    assert_eq!(empty, json!({"key": h, "tier": null, "limits": {}, "updated_at": null}));
    let body = json!({"tier": "pro", "limits": {"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5000}},
                      "admin": "alice", "reason": "enterprise contract"});
    let set = admin(&s, "PUT", "/v1/keys/sk-limits/limits", Some(body), 200);
    assert!(set["version"].as_u64().unwrap() > 0);
    let got = admin(&s, "GET", "/v1/keys/sk-limits/limits", None, 200);
    assert_eq!(got["key"], h);
    assert_eq!(got["tier"], "pro");
    assert_eq!(
        got["limits"],
        json!({"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5000, "burst": 5000}})
    );
    assert_eq!((got["admin"].clone(), got["reason"].clone()), (json!("alice"), json!("enterprise contract")));
    let sync = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {PROXY_TOKEN}")), None).json();
    assert_eq!(
        sync["key_limits"],
        json!([{"key": h, "tier": "pro", "limits": {"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5000, "burst": 5000}}}])
    );
    // PUT replaces: only a tier now.
    admin(
        &s,
        "PUT",
        "/v1/keys/sk-limits/limits",
        Some(json!({"tier": "free", "admin": "bob", "reason": "downgrade"})),
        200,
    );
    assert_eq!(admin(&s, "GET", "/v1/keys/sk-limits/limits", None, 200)["limits"], json!({}));
    // DELETE with admin and reason in the query (or in a body).
    let del = admin(&s, "DELETE", "/v1/keys/sk-limits/limits?admin=carol&reason=churned", None, 200);
    assert_eq!((del["key"].clone(), del["deleted"].clone()), (json!(h), json!(true)));
    assert_eq!(admin(&s, "GET", "/v1/keys/sk-limits/limits", None, 200), empty);
    let again =
        admin(&s, "DELETE", "/v1/keys/sk-limits/limits", Some(json!({"admin": "carol", "reason": "again"})), 200);
    assert_eq!(again["deleted"], false);
    let sync = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {PROXY_TOKEN}")), None).json();
    assert_eq!(sync["key_limits"], json!([]));
    // The audit log has each change with before and after (a no-op delete is not a change).
    let entries = audit(&s, "?key=sk-limits");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["limits.delete", "limits.set", "limits.set"]);
    assert_eq!(entries[0]["before"]["tier"], "free");
    assert_eq!(entries[0]["after"], Value::Null);
    assert_eq!(entries[1]["before"]["tier"], "pro");
    assert_eq!(entries[1]["after"]["tier"], "free");
    assert_eq!(entries[2]["before"], Value::Null);
}

#[test]
fn the_audit_log_records_every_write_and_filters_by_key_admin_and_time() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let t0 = now_ms();
    admin(&s, "PUT", "/v1/keys/sk-a/limits", Some(json!({"tier": "pro", "admin": "alice", "reason": "r1"})), 200);
    let ov = json!({"kind": "allow_key", "target": "sk-a", "ttl": "10m", "admin": "bob", "reason": "r2"});
    let added = admin(&s, "POST", "/v1/overrides", Some(ov), 201);
    std::thread::sleep(Duration::from_millis(30));
    let t1 = now_ms();
    std::thread::sleep(Duration::from_millis(30));
    let ip = json!({"kind": "allow_ip", "target": "192.0.2.0/24", "ttl": "10m", "admin": "alice", "reason": "r3"});
    admin(&s, "POST", "/v1/overrides", Some(ip), 201);
    let id = added["id"].as_str().unwrap();
    admin(&s, "DELETE", &format!("/v1/overrides/{id}?admin=carol&reason=r4"), None, 200);
    admin(&s, "POST", "/v1/keys/sk-b/reset", Some(json!({"admin": "bob", "reason": "r5"})), 200);
    let t2 = now_ms();

    let all = audit(&s, "");
    let summary: Vec<(String, String, String)> = all
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["admin"].as_str().unwrap().into(),
                e["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("key.reset", "bob", "r5"),
        ("override.remove", "carol", "r4"),
        ("override.add", "alice", "r3"),
        ("override.add", "bob", "r2"),
        ("limits.set", "alice", "r1"),
    ];
    assert_eq!(summary, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    for e in &all {
        let at = e["at_ms"].as_u64().unwrap();
        assert!(at >= t0 && at <= t2, "{e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(all[1]["override"], id);
    assert_eq!(all[1]["before"]["id"], id);
    assert_eq!(all[1]["after"], Value::Null);
    assert_eq!(all[3]["after"]["kind"], "allow_key");
    assert!(all[3]["version"].as_u64().unwrap() > all[4]["version"].as_u64().unwrap());
    // By key (raw or hash): the limits and both actions on the key's override.
    let reasons =
        |q: &str| -> Vec<String> { audit(&s, q).iter().map(|e| e["reason"].as_str().unwrap().into()).collect() };
    assert_eq!(reasons("?key=sk-a"), ["r4", "r2", "r1"]);
    assert_eq!(reasons(&format!("?key_hash={}", fleet_hash("sk-a"))), ["r4", "r2", "r1"]);
    assert_eq!(audit(&s, "?key=sk-b")[0]["action"], "key.reset");
    // By admin, by action.
    assert_eq!(reasons("?admin=alice"), ["r3", "r1"]);
    assert_eq!(reasons("?action=override.add"), ["r3", "r2"]);
    // By time: RFC 3339 or ms since the epoch, inclusive; a duration means that long ago.
    assert_eq!(reasons(&format!("?since={t1}")), ["r5", "r4", "r3"]);
    assert_eq!(reasons(&format!("?until={t1}")), ["r2", "r1"]);
    let at_r3 = enc(all[2]["at"].as_str().unwrap());
    assert_eq!(reasons(&format!("?since={at_r3}&until={at_r3}&admin=alice")), ["r3"]);
    assert_eq!(audit(&s, "?since=1h").len(), 5);
    assert_eq!(audit(&s, "?until=1h").len(), 0);
    assert_eq!(audit(&s, "?since=1h&admin=bob&limit=1")[0]["reason"], "r5");
}

#[test]
fn stats_count_decisions_and_keep_the_top_lists_bounded() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    // 500 distinct violators (key, IP and endpoint), denied once each: cost 2 never fits a
    // capacity of 1. One heavy violator is denied 6 times.
    for batch in 0..2 {
        let checks: Vec<Value> = (0..250)
            .map(|i| {
                let n = batch * 250 + i;
                let mut c = counter("per-key-rpm", &format!("{:016x}", n + 1), "token_bucket", 1, 1000, 2);
                c["ip"] = format!("10.{}.{}.{}", n / 65536, n / 256 % 256, n % 256).into();
                c["endpoint"] = format!("/v1/items/{n}").into();
                c
            })
            .collect();
        assert_eq!(check(&s, json!(checks))["allowed"], false);
    }
    let heavy = fleet_hash("sk-abuser");
    for _ in 0..6 {
        let mut c = counter("per-key-rpm", &heavy, "token_bucket", 1, 1000, 2);
        c["ip"] = "2001:db8::bad".into();
        c["endpoint"] = "/v1/chat/completions".into();
        check(&s, json!([c]));
    }
    // Allowed traffic of another rule, and leases.
    for i in 0..4 {
        check(&s, json!([counter("per-ip", &format!("{:016x}", 9000 + i), "fixed_window", 10, 60_000, 1)]));
    }
    let lease = json!({"rule": "tpm", "key": heavy, "algorithm": "token_bucket", "limit": 100, "window_ms": 60_000});
    let mut l = lease.clone();
    l["want"] = 80.into();
    s.post("/v1/lease", &json!({"leases": [l.clone()]}));
    s.post("/v1/lease", &json!({"leases": [l]}));

    let v = admin(&s, "GET", "/v1/stats?top=100", None, 200);
    for list in ["top_keys", "top_ips", "top_endpoints"] {
        let l = v[list].as_array().unwrap();
        assert!(!l.is_empty() && l.len() <= 100, "{list}: {}", l.len());
    }
    assert_eq!(v["top_keys"][0], json!({"key": heavy, "denied": 6}));
    assert_eq!(v["top_ips"][0], json!({"ip": "2001:db8::bad", "denied": 6}));
    assert_eq!(v["top_endpoints"][0], json!({"endpoint": "/v1/chat/completions", "denied": 6}));
    let rules = v["rules"].as_array().unwrap();
    let rule = |name: &str| rules.iter().find(|r| r["rule"] == name).unwrap_or_else(|| panic!("{name}: {v}")).clone();
    assert_eq!((rule("per-key-rpm")["allowed"].clone(), rule("per-key-rpm")["denied"].clone()), (json!(0), json!(506)));
    assert_eq!(rule("per-key-rpm")["hit_rate"], 1.0);
    assert_eq!((rule("per-ip")["allowed"].clone(), rule("per-ip")["hit_rate"].clone()), (json!(4), json!(0.0)));
    let tpm = rule("tpm");
    assert_eq!(
        (tpm["leases_granted"].clone(), tpm["leases_denied"].clone(), tpm["lease_units_granted"].clone()),
        (json!(2), json!(0), json!(100)),
        "{tpm}"
    );
    assert_eq!(v["totals"]["denied"], 506);
    // By proxy (the address calls come from): calls, not checks: 4 allowed, 2 + 6 denied.
    let proxy = &v["proxies"][0];
    assert_eq!(v["proxies"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(proxy["proxy"], "127.0.0.1");
    assert_eq!((proxy["allowed"].clone(), proxy["denied"].clone()), (json!(4), json!(8)), "{proxy}");
    assert_eq!((proxy["leases_granted"].clone(), proxy["lease_units_granted"].clone()), (json!(2), json!(100)));
    assert!(v["since"].as_str().unwrap().ends_with('Z'));
    // Redis holds at most 100 members per list, every stats key has a TTL.
    for list in ["keys", "ips", "endpoints"] {
        let k = format!("tollgate:{{stats}}:top:{list}");
        assert!(redis.cmd(&["ZCARD", &k]).as_int() <= 100, "{k}");
        assert!(redis.cmd(&["PTTL", &k]).as_int() > 0, "{k}");
    }
    // top defaults to 10.
    assert_eq!(admin(&s, "GET", "/v1/stats", None, 200)["top_ips"].as_array().unwrap().len(), 10);
}

/// Every string Redis holds, whatever the type, with the key names.
fn redis_dump(redis: &Redis) -> String {
    fn flatten(r: &Resp, out: &mut String) {
        match r {
            Resp::Simple(s) | Resp::Error(s) => out.push_str(s),
            Resp::Int(n) => out.push_str(&n.to_string()),
            Resp::Bulk(Some(b)) => out.push_str(&String::from_utf8_lossy(b)),
            Resp::Bulk(None) | Resp::Array(None) => {}
            Resp::Array(Some(a)) => a.iter().for_each(|x| {
                flatten(x, out);
                out.push(' ');
            }),
        }
    }
    let mut out = String::new();
    for k in redis.keys() {
        out.push_str(&k);
        out.push('\n');
        let t = redis.cmd(&["TYPE", &k]).as_text().unwrap();
        let value = match t.as_str() {
            "string" => redis.cmd(&["GET", &k]),
            "hash" => redis.cmd(&["HGETALL", &k]),
            "zset" => redis.cmd(&["ZRANGE", &k, "0", "-1"]),
            "set" => redis.cmd(&["SMEMBERS", &k]),
            "list" => redis.cmd(&["LRANGE", &k, "0", "-1"]),
            "stream" => redis.cmd(&["XRANGE", &k, "-", "+"]),
            other => panic!("{k}: unexpected type {other}"),
        };
        flatten(&value, &mut out);
        out.push('\n');
    }
    out
}

#[test]
fn no_raw_key_reaches_redis() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let raw = "sk-live-RAWSECRET-0123456789";
    let h = fleet_hash(raw);
    let mut c = counter("per-key-rpm", &h, "token_bucket", 1, 60_000, 1);
    c["ip"] = "198.51.100.7".into();
    c["endpoint"] = "/v1/chat/completions".into();
    check(&s, json!([c.clone()]));
    check(&s, json!([c]));
    let p = |what: &str| format!("/v1/keys/{raw}/{what}");
    admin(&s, "GET", &p("status"), None, 200);
    admin(&s, "PUT", &p("limits"), Some(json!({"tier": "pro", "admin": "a", "reason": "r"})), 200);
    for kind in ["allow_key", "grant"] {
        let mut o = json!({"kind": kind, "target": raw, "ttl": "1h", "admin": "a", "reason": "r"});
        if kind == "grant" {
            o["unlimited"] = true.into();
        }
        admin(&s, "POST", "/v1/overrides", Some(o), 201);
    }
    admin(&s, "GET", &format!("/v1/audit?key={raw}"), None, 200);
    admin(&s, "GET", "/v1/stats", None, 200);
    admin(&s, "POST", &p("reset"), Some(json!({"admin": "a", "reason": "r"})), 200);
    check(&s, json!([counter("per-key-rpm", &h, "token_bucket", 1, 60_000, 1)]));
    let dump = redis_dump(&redis);
    assert!(dump.contains(&h), "the key hash is stored:\n{dump}");
    assert!(!dump.contains("RAWSECRET"), "a raw key is in Redis:\n{dump}");
    // And the answers never echo it either.
    let listed = admin(&s, "GET", "/v1/overrides", None, 200).to_string();
    assert!(!listed.contains("RAWSECRET") && listed.contains(&h));
}

#[test]
fn the_admin_plane_works_on_redis_cluster() {
    // Admin data, statistics and each key's counters use hash tags ({admin}, {stats},
    // {KEYHASH}): every multi-key script and command stays within one slot.
    let cluster = tollgate_e2e::redis::Cluster::start(3);
    let s = Store::start(&cluster.url(), &[]);
    let h = fleet_hash("sk-cluster");
    let mut c = counter("per-key-rpm", &h, "token_bucket", 1, 60_000, 1);
    c["ip"] = "192.0.2.1".into();
    check(&s, json!([c.clone()]));
    check(&s, json!([c]));
    let v = admin(&s, "GET", "/v1/keys/sk-cluster/status", None, 200);
    assert_eq!(v["rules"][0]["used"], 1, "{v}");
    admin(&s, "PUT", "/v1/keys/sk-cluster/limits", Some(json!({"tier": "pro", "admin": "a", "reason": "r"})), 200);
    let ov = json!({"kind": "allow_ip", "target": "192.0.2.0/24", "ttl": "1h", "admin": "a", "reason": "r"});
    let id = admin(&s, "POST", "/v1/overrides", Some(ov), 201)["id"].as_str().unwrap().to_string();
    let doc = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {PROXY_TOKEN}")), None).json();
    assert_eq!(
        (doc["key_limits"][0]["key"].clone(), doc["allow_ips"][0]["cidr"].clone()),
        (json!(h), json!("192.0.2.0/24"))
    );
    admin(&s, "DELETE", &format!("/v1/overrides/{id}?admin=a&reason=r"), None, 200);
    assert_eq!(
        admin(&s, "POST", "/v1/keys/sk-cluster/reset", Some(json!({"admin": "a", "reason": "r"})), 200)["reset"],
        json!(["per-key-rpm"])
    );
    assert_eq!(audit(&s, "?key=sk-cluster").len(), 2);
    assert_eq!(audit(&s, "").len(), 4);
    let stats = admin(&s, "GET", "/v1/stats", None, 200);
    assert_eq!(stats["top_ips"], json!([{"ip": "192.0.2.1", "denied": 1}]));
    assert!(cluster.keys().iter().all(|(_, k)| !k.contains("sk-cluster")));
}

#[test]
fn openapi_documents_the_admin_api_and_the_exact_sync_format() {
    let redis = Redis::start();
    let s = Store::start(&redis.url(), &[]);
    let doc = s.get("/openapi.json").json();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/v1/keys/{key}/status", "get"),
        ("/v1/keys/{key}/limits", "get"),
        ("/v1/keys/{key}/limits", "put"),
        ("/v1/keys/{key}/limits", "delete"),
        ("/v1/keys/{key}/reset", "post"),
        ("/v1/stats", "get"),
        ("/v1/overrides", "get"),
        ("/v1/overrides", "post"),
        ("/v1/overrides/{id}", "delete"),
        ("/v1/audit", "get"),
    ] {
        let op = &paths[path][method];
        assert_eq!(op["security"], json!([{"adminToken": []}]), "{method} {path}");
        for status in ["400", "401", "503"] {
            assert!(op["responses"][status].is_object(), "{method} {path}: no {status}");
        }
    }
    assert!(paths["/v1/overrides"]["post"]["responses"]["201"].is_object());
    let sync = &paths["/v1/sync"]["get"];
    assert_eq!(sync["security"], json!([{"proxyToken": []}]));
    assert!(sync["responses"]["304"].is_object());
    // The schema's fields are exactly the served document's, at every level.
    let schema = &doc["components"]["schemas"]["Sync"];
    let ov = json!({"kind": "grant", "target": "k", "multiplier": 2, "ttl": "1h", "admin": "a", "reason": "r"});
    admin(&s, "POST", "/v1/overrides", Some(ov), 201);
    for o in [
        json!({"kind": "allow_key", "target": "k", "ttl": "1h", "admin": "a", "reason": "r"}),
        json!({"kind": "allow_ip", "target": "::1", "ttl": "1h", "admin": "a", "reason": "r"}),
        json!({"kind": "emergency", "ttl": "1h", "admin": "a", "reason": "r"}),
    ] {
        admin(&s, "POST", "/v1/overrides", Some(o), 201);
    }
    admin(
        &s,
        "PUT",
        "/v1/keys/k/limits",
        Some(json!({"tier": "pro", "limits": {"r": {"limit": 1}}, "admin": "a", "reason": "r"})),
        200,
    );
    let served = send(&s, "GET", "/v1/sync", Some(&format!("Bearer {PROXY_TOKEN}")), None).json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let props = |v: &Value| keys(&v["properties"]);
    assert_eq!(keys(&served), props(schema));
    assert_eq!(keys(&served["emergency"]), props(&schema["properties"]["emergency"]));
    for list in ["allow_keys", "allow_ips", "grants", "key_limits"] {
        assert_eq!(keys(&served[list][0]), props(&schema["properties"][list]["items"]), "{list}");
    }
    let limit = &schema["properties"]["key_limits"]["items"]["properties"]["limits"]["additionalProperties"];
    assert_eq!(keys(&served["key_limits"][0]["limits"]["r"]), props(limit));
}
