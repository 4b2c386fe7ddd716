//! The admin commands: `keys status|limits|reset`, `overrides add|list|remove`, `audit`,
//! `stats`, against the tollgate-store admin API (docs/admin.md).
//!
//! The store and the token come from `--store URL` / `--token T`, else `TOLLGATE_STORE_URL` /
//! `TOLLGATE_ADMIN_TOKEN` (the URL defaults to the store's default address). Writes need
//! `--reason`; the admin name is `--admin`, else `TOLLGATE_ADMIN`, else `USER`. Output is a
//! table, or the store's JSON with `--json`. Errors are one line: exit 1 for a failure (store
//! unreachable, request refused), 2 for a usage error.

use serde_json::{json, Value};

use crate::cli::{usage, Args, Fail};
use crate::http::{self, encode, query, Target};
use crate::table;

/// The store's default address (`tollgate-store --listen` default).
pub const DEFAULT_STORE_URL: &str = "http://127.0.0.1:8080";

/// A connection to the store's admin API.
struct Store {
    target: Target,
    token: String,
    json: bool,
}

impl Store {
    fn new(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Store, Fail> {
        let url = args.value("store").map(str::to_string).or_else(|| env("TOLLGATE_STORE_URL"));
        let url = url.filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_STORE_URL.to_string());
        let target = Target::parse(&url).map_err(|e| usage(format!("--store {e}")))?;
        let token = args.value("token").map(str::to_string).or_else(|| env("TOLLGATE_ADMIN_TOKEN"));
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| usage("no admin token: pass --token T or set TOLLGATE_ADMIN_TOKEN"))?;
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(usage("the admin token must be one word"));
        }
        Ok(Store { target, token, json: args.flag("json") })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Fail> {
        let body = body.map(Value::to_string);
        let r = http::send(&self.target, method, path, &self.token, body.as_deref()).map_err(Fail::Error)?;
        let v: Value =
            if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap_or(Value::Null) };
        if (200..300).contains(&r.status) {
            return Ok(v);
        }
        let message = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).trim().chars().take(200).collect());
        Err(Fail::Error(match r.status {
            401 => format!("the store refused the admin token: {message}"),
            s => format!("{message} (HTTP {s})"),
        }))
    }

    /// Print `v` as JSON, or as `human(v)`.
    fn show(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", human(v));
        }
    }
}

/// `admin` and `reason` of a write.
fn who(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), Fail> {
    let admin = args
        .value("admin")
        .map(str::to_string)
        .or_else(|| env("TOLLGATE_ADMIN"))
        .or_else(|| env("USER"))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| usage("--admin NAME is required (or set TOLLGATE_ADMIN)"))?;
    let reason = args.value("reason").ok_or_else(|| usage("--reason TEXT is required for every change"))?;
    Ok((admin, reason.to_string()))
}

/// `?admin=…&reason=…` (or `&…` after an existing query) for a DELETE.
fn who_query(path: &str, admin: String, reason: String) -> String {
    let q = query(&[("admin", Some(admin)), ("reason", Some(reason))]);
    if path.contains('?') {
        q.replacen('?', "&", 1)
    } else {
        q
    }
}

/// Run a store command (`command` is `keys`, `overrides`, `audit` or `stats`).
pub fn run(command: &str, rest: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    let sub = rest.first().map(String::as_str);
    let tail = rest.get(1..).unwrap_or_default();
    match (command, sub) {
        ("keys", Some("status")) => keys_status(&Args::parse(tail, &[], &["hash"])?, env),
        ("keys", Some("limits")) => {
            keys_limits(&Args::parse(tail, &["tier", "limit", "burst"], &["hash", "remove"])?, env)
        }
        ("keys", Some("reset")) => keys_reset(&Args::parse(tail, &[], &["hash"])?, env),
        ("keys", other) => Err(usage(format!("keys {}: expected status, limits or reset", other.unwrap_or("")))),
        ("overrides", Some("add")) => overrides_add(
            &Args::parse(tail, &["kind", "target", "multiplier", "ttl", "expires-at"], &["unlimited"])?,
            env,
        ),
        ("overrides", Some("list")) => overrides_list(&Args::parse(tail, &[], &["all"])?, env),
        ("overrides", Some("remove")) => overrides_remove(&Args::parse(tail, &[], &[])?, env),
        ("overrides", other) => Err(usage(format!("overrides {}: expected add, list or remove", other.unwrap_or("")))),
        ("audit", _) => audit(&Args::parse(rest, &["key", "key-hash", "action", "since", "until", "limit"], &[])?, env),
        ("stats", _) => stats(&Args::parse(rest, &["top"], &[])?, env),
        (other, _) => Err(usage(format!("unknown command {other:?}"))),
    }
}

/// `/v1/keys/KEY/WHAT[?hash=1]`.
fn key_path(args: &Args, key: &str, what: &str) -> String {
    let hash = if args.flag("hash") { "?hash=1" } else { "" };
    format!("/v1/keys/{}/{what}{hash}", encode(key))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn window(ms: &Value) -> String {
    ms.as_u64().map(|m| tollgate_core::time::duration::Duration::from_millis(m).to_string()).unwrap_or_else(|| s(ms))
}

/// `tier pro; per-key-rpm=600 (burst 100)`, either part alone when the other is absent.
fn key_limits_text(l: &Value) -> String {
    let mut parts: Vec<String> = l["tier"].as_str().map(|t| format!("tier {t}")).into_iter().collect();
    if let Some(m) = l["limits"].as_object() {
        parts.extend(m.iter().map(|(r, x)| format!("{r}={} (burst {})", s(&x["limit"]), s(&x["burst"]))));
    }
    parts.join("; ")
}

fn override_effect(o: &Value) -> String {
    match (o["kind"].as_str(), o["unlimited"].as_bool()) {
        (Some("grant"), Some(true)) => "unlimited".into(),
        (Some("grant"), _) => format!("x{}", s(&o["multiplier"])),
        _ => "-".into(),
    }
}

fn keys_status(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    let [key] = args.positionals(["KEY"])?;
    let store = Store::new(args, env)?;
    let v = store.call("GET", &key_path(args, key, "status"), None)?;
    store.show(&v, |v| {
        let rows: Vec<Vec<String>> = v["rules"]
            .as_array()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| {
                        vec![
                            s(&r["rule"]),
                            s(&r["algorithm"]),
                            s(&r["limit"]),
                            window(&r["window_ms"]),
                            s(&r["burst"]),
                            s(&r["used"]),
                            s(&r["remaining"]),
                            r["reset_after_ms"].as_u64().map(table::duration_ms).unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut out = format!("key {}", s(&v["key"]));
        if rows.is_empty() {
            out.push_str("\nno counters at the store (no global rule has counted this key recently)");
        } else {
            out.push('\n');
            out.push_str(&table::render(
                &["RULE", "ALGORITHM", "LIMIT", "WINDOW", "BURST", "USED", "REMAINING", "RESETS IN"],
                &rows,
            ));
        }
        let l = &v["limits"];
        if l.is_object() {
            out.push_str(&format!("\nper-key limits: {}", key_limits_text(l)));
        }
        for o in v["overrides"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\noverride {} {} {} until {} ({}: {})",
                s(&o["id"]),
                s(&o["kind"]),
                override_effect(o),
                s(&o["expires_at"]),
                s(&o["admin"]),
                s(&o["reason"])
            ));
        }
        out
    });
    Ok(())
}

fn keys_limits(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    let [key] = args.positionals(["KEY"])?;
    let setting =
        args.value("tier").is_some() || args.all("limit").next().is_some() || args.all("burst").next().is_some();
    if setting && args.flag("remove") {
        return Err(usage("--remove cannot be combined with --tier, --limit or --burst"));
    }
    let path = key_path(args, key, "limits");
    if args.flag("remove") {
        let (admin, reason) = who(args, env)?;
        let store = Store::new(args, env)?;
        let path = format!("{path}{}", who_query(&path, admin, reason));
        let v = store.call("DELETE", &path, None)?;
        store.show(&v, |v| match v["deleted"].as_bool() {
            Some(true) => format!("removed the per-key limits of key {}", s(&v["key"])),
            _ => format!("key {} had no per-key limits", s(&v["key"])),
        });
        return Ok(());
    }
    if !setting {
        let store = Store::new(args, env)?;
        let v = store.call("GET", &path, None)?;
        store.show(&v, |v| {
            if v["updated_at"].is_null() {
                return format!("key {}: no per-key limits", s(&v["key"]));
            }
            let mut out = format!("key {}: tier {}", s(&v["key"]), s(&v["tier"]));
            let rows: Vec<Vec<String>> = v["limits"]
                .as_object()
                .map(|m| m.iter().map(|(r, l)| vec![r.clone(), s(&l["limit"]), s(&l["burst"])]).collect())
                .unwrap_or_default();
            if !rows.is_empty() {
                out.push('\n');
                out.push_str(&table::render(&["RULE", "LIMIT", "BURST"], &rows));
            }
            out.push_str(&format!("\nset by {} at {}: {}", s(&v["admin"]), s(&v["updated_at"]), s(&v["reason"])));
            out
        });
        return Ok(());
    }
    let mut limits = serde_json::Map::new();
    for (flag, field) in [("limit", "limit"), ("burst", "burst")] {
        for spec in args.all(flag) {
            let (rule, n) = spec
                .split_once('=')
                .and_then(|(r, n)| Some((r, n.parse::<u64>().ok()?)))
                .ok_or_else(|| usage(format!("--{flag} {spec:?}: expected RULE=N, e.g. per-key-rpm=600")))?;
            let entry = limits.entry(rule.to_string()).or_insert_with(|| json!({}));
            entry[field] = n.into();
        }
    }
    let (admin, reason) = who(args, env)?;
    let mut body = json!({"admin": admin, "reason": reason});
    if let Some(t) = args.value("tier") {
        body["tier"] = t.into();
    }
    if !limits.is_empty() {
        body["limits"] = Value::Object(limits);
    }
    let store = Store::new(args, env)?;
    let v = store.call("PUT", &path, Some(&body))?;
    store.show(&v, |v| format!("key {}: per-key limits set: {}", s(&v["key"]), key_limits_text(v)));
    Ok(())
}

fn keys_reset(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    let [key] = args.positionals(["KEY"])?;
    let (admin, reason) = who(args, env)?;
    let store = Store::new(args, env)?;
    let v = store.call("POST", &key_path(args, key, "reset"), Some(&json!({"admin": admin, "reason": reason})))?;
    store.show(&v, |v| {
        let rules: Vec<String> = v["reset"].as_array().into_iter().flatten().map(s).collect();
        if rules.is_empty() {
            format!("key {}: no counters to reset", s(&v["key"]))
        } else {
            format!("key {}: reset {} counter(s): {}", s(&v["key"]), rules.len(), rules.join(", "))
        }
    });
    Ok(())
}

fn overrides_add(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    args.positionals([])?;
    let kind =
        args.value("kind").ok_or_else(|| usage("--kind is required: allow_key, allow_ip, emergency or grant"))?;
    let (admin, reason) = who(args, env)?;
    let mut body = json!({"kind": kind, "admin": admin, "reason": reason});
    if let Some(t) = args.value("target") {
        body["target"] = t.into();
    }
    if args.flag("unlimited") {
        body["unlimited"] = true.into();
    }
    if let Some(m) = args.value("multiplier") {
        let m: f64 = m.parse().map_err(|_| usage(format!("--multiplier {m:?}: expected a number, e.g. 2 or 1.5")))?;
        body["multiplier"] = m.into();
    }
    match (args.value("ttl"), args.value("expires-at")) {
        (None, None) => return Err(usage("--ttl DURATION (e.g. 10m) or --expires-at RFC3339 is required")),
        (ttl, at) => {
            if let Some(t) = ttl {
                body["ttl"] = t.into();
            }
            if let Some(a) = at {
                body["expires_at"] = a.into();
            }
        }
    }
    let store = Store::new(args, env)?;
    let v = store.call("POST", "/v1/overrides", Some(&body))?;
    store.show(&v, |v| {
        let target = if v["target"].is_null() { String::new() } else { format!(" {}", s(&v["target"])) };
        let effect = if v["kind"] == "grant" { format!(" {}", override_effect(v)) } else { String::new() };
        format!("added {}: {}{target}{effect}, expires {}", s(&v["id"]), s(&v["kind"]), s(&v["expires_at"]))
    });
    Ok(())
}

fn overrides_list(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    args.positionals([])?;
    let all = args.flag("all");
    let store = Store::new(args, env)?;
    let v = store.call("GET", &format!("/v1/overrides{}", if all { "?all=1" } else { "" }), None)?;
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    store.show(&v, |v| {
        let list = v["overrides"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return if all { "no overrides".into() } else { "no active overrides".into() };
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|o| {
                let left = match (o["active"].as_bool(), o["until_ms"].as_u64()) {
                    (Some(true), Some(u)) => table::duration_ms(u.saturating_sub(now_ms)),
                    _ => "expired".into(),
                };
                vec![
                    s(&o["id"]),
                    s(&o["kind"]),
                    s(&o["target"]),
                    override_effect(o),
                    s(&o["expires_at"]),
                    left,
                    s(&o["admin"]),
                    s(&o["reason"]),
                ]
            })
            .collect();
        table::render(&["ID", "KIND", "TARGET", "GRANT", "EXPIRES", "LEFT", "ADMIN", "REASON"], &rows)
    });
    Ok(())
}

fn overrides_remove(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    let [id] = args.positionals(["ID"])?;
    let (admin, reason) = who(args, env)?;
    let store = Store::new(args, env)?;
    let v = store.call(
        "DELETE",
        &format!("/v1/overrides/{}", encode(id)),
        Some(&json!({"admin": admin, "reason": reason})),
    )?;
    store.show(&v, |v| format!("removed {}", s(&v["id"])));
    Ok(())
}

fn audit(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    args.positionals([])?;
    if args.value("reason").is_some() {
        return Err(usage("audit takes no --reason"));
    }
    let store = Store::new(args, env)?;
    let get = |name: &str| args.value(name).map(str::to_string);
    let q = query(&[
        ("key", get("key")),
        ("key_hash", get("key-hash")),
        ("admin", get("admin")),
        ("action", get("action")),
        ("since", get("since")),
        ("until", get("until")),
        ("limit", get("limit")),
    ]);
    let v = store.call("GET", &format!("/v1/audit{q}"), None)?;
    store.show(&v, |v| {
        let list = v["entries"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return "no audit entries".into();
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|e| {
                vec![s(&e["at"]), s(&e["admin"]), s(&e["action"]), s(&e["key"]), s(&e["override"]), s(&e["reason"])]
            })
            .collect();
        table::render(&["TIME", "ADMIN", "ACTION", "KEY", "OVERRIDE", "REASON"], &rows)
    });
    Ok(())
}

fn stats(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Fail> {
    args.positionals([])?;
    let store = Store::new(args, env)?;
    let v =
        store.call("GET", &format!("/v1/stats{}", query(&[("top", args.value("top").map(str::to_string))])), None)?;
    store.show(&v, |v| {
        let row = |name: String, t: &Value| {
            vec![
                name,
                s(&t["allowed"]),
                s(&t["denied"]),
                format!("{:.1}%", t["hit_rate"].as_f64().unwrap_or(0.0) * 100.0),
                s(&t["leases_granted"]),
                s(&t["leases_denied"]),
                s(&t["lease_units_granted"]),
            ]
        };
        let mut rows: Vec<Vec<String>> =
            v["rules"].as_array().into_iter().flatten().map(|r| row(s(&r["rule"]), r)).collect();
        rows.push(row("(all rules)".into(), &v["totals"]));
        let mut out = format!("since {}\n", s(&v["since"]));
        out.push_str(&table::render(
            &["RULE", "ALLOWED", "DENIED", "HIT RATE", "LEASES", "LEASES DENIED", "UNITS LEASED"],
            &rows,
        ));
        for (list, title, field) in [
            ("top_keys", "TOP KEYS (hash)", "key"),
            ("top_ips", "TOP IPS", "ip"),
            ("top_endpoints", "TOP ENDPOINTS", "endpoint"),
        ] {
            let rows: Vec<Vec<String>> =
                v[list].as_array().into_iter().flatten().map(|e| vec![s(&e[field]), s(&e["denied"])]).collect();
            out.push_str("\n\n");
            out.push_str(&if rows.is_empty() {
                format!("{title}: none")
            } else {
                table::render(&[title, "DENIED"], &rows)
            });
        }
        let proxies: Vec<Vec<String>> = v["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut r = row(s(&p["proxy"]), p);
                r.remove(3);
                r
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&if proxies.is_empty() {
            "PROXIES: none".to_string()
        } else {
            table::render(&["PROXY", "ALLOWED", "DENIED", "LEASES", "LEASES DENIED", "UNITS LEASED"], &proxies)
        });
        out
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_queries() {
        assert_eq!(Target::parse("http://127.0.0.1:8080/").unwrap().authority, "127.0.0.1:8080");
        assert_eq!(Target::parse("store.internal").unwrap().authority, "store.internal:80");
        assert_eq!(Target::parse("http://h:1/base/").unwrap().prefix, "/base");
        assert!(Target::parse("https://h:1").unwrap_err().contains("only http://"));
        assert_eq!(encode("sk-a/b c"), "sk-a%2Fb%20c");
        assert_eq!(query(&[("a", Some("1 2".into())), ("b", None)]), "?a=1%202");
        assert_eq!(query(&[("b", None)]), "");
    }
}
