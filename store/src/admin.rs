//! The admin API (Bearer admin token): `GET /v1/keys/{key}/status`,
//! `GET|PUT|DELETE /v1/keys/{key}/limits`, `POST /v1/keys/{key}/reset`, `GET /v1/stats`,
//! `GET|POST /v1/overrides`, `DELETE /v1/overrides/{id}`, `GET /v1/audit`.
//!
//! `{key}` is the raw API key (hashed on arrival with `KeyHash::fleet`, never stored), or a key
//! hash with `?hash=1`. Every write needs `admin` and `reason` and is appended to the audit log;
//! changes of limits and overrides bump the version proxies poll. See docs/admin.md.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::admin_store::{Audit, AuditRecord, KeyCounter, LIMITS_KEY, OVERRIDES_KEY};
use crate::app::App;
use crate::counters::{decode_quota, ns_to_ms_ceil};
use crate::error::ApiError;
use crate::http::{Admin, JsonBody, Key, Now, OverrideId};
use crate::input::{fleet_hash, is_key_hash, Query, Who};
use crate::key_limits::{self, KeyLimits, PutLimits};
use crate::overrides::{self, NewOverride, Override, KEEP_EXPIRED_MS};
use crate::stats;
use crate::sync::MAX_SYNC_ENTRIES;
use tollgate_core::time::rfc3339;

/// Most audit entries per call.
pub const MAX_AUDIT_LIMIT: usize = 1000;

/// Audit entries read from Redis per round trip while filtering.
const AUDIT_PAGE: usize = 500;

/// Most members per top list in `GET /v1/stats`.
pub const MAX_TOP: usize = stats::TOP_KEEP;

/// The actions of the audit log: every `Audit { action, .. }` written here is one of them, and
/// `GET /v1/audit?action=` takes nothing else.
pub const AUDIT_ACTIONS: [&str; 5] = ["limits.set", "limits.delete", "key.reset", "override.add", "override.remove"];

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/keys/{key}/status", get(key_status))
        .route("/v1/keys/{key}/limits", get(get_limits).put(put_limits).delete(delete_limits))
        .route("/v1/keys/{key}/reset", post(reset_key))
        .route("/v1/stats", get(get_stats))
        .route("/v1/overrides", get(list_overrides).post(add_override))
        .route("/v1/overrides/{id}", delete(remove_override))
        .route("/v1/audit", get(audit))
}

type Answer = Result<Json<Value>, ApiError>;

/// A key's per-key limits, or None.
async fn key_limits_of(app: &App, key: &str) -> Result<Option<KeyLimits>, ApiError> {
    let stored = app.admin.get(&app.backend, LIMITS_KEY, key).await?;
    Ok(stored.as_deref().and_then(KeyLimits::from_json))
}

async fn all_overrides(app: &App) -> Result<Vec<Override>, ApiError> {
    let all = app.admin.all(&app.backend, OVERRIDES_KEY).await?;
    let mut out: Vec<Override> = all.iter().filter_map(|(_, v)| Override::from_json(v)).collect();
    out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    Ok(out)
}

/// One rule of a key's status: the stored quota and a peek (cost 0) at the counter's state.
fn rule_status((rule, quota, state): &KeyCounter, now: Now) -> Value {
    let Some((algorithm, q)) = decode_quota(quota) else {
        return json!({"rule": rule, "error": "unreadable quota in the rule index"});
    };
    let (peek, _) = algorithm.check(crate::counters::state_under(state, quota), now.0, 0, &q);
    let capacity = algorithm.capacity(&q);
    let reset_ms = ns_to_ms_ceil(peek.reset_after_ns);
    json!({
        "rule": rule,
        "algorithm": algorithm.name(),
        "limit": q.limit,
        "window_ms": q.window_ns / 1_000_000,
        "burst": q.burst,
        "capacity": capacity,
        "used": capacity.saturating_sub(peek.remaining),
        "remaining": peek.remaining,
        "reset_after_ms": reset_ms,
        "reset_at": rfc3339::format_ms(now.ms().saturating_add(reset_ms)),
        "stored": !state.is_empty(),
    })
}

async fn key_status(State(app): State<Arc<App>>, _: Admin, Key(key): Key, now: Now) -> Answer {
    let counters = app.admin.key_counters(&app.backend, &key).await?;
    let rules: Vec<Value> = counters.iter().map(|c| rule_status(c, now)).collect();
    let limits = key_limits_of(&app, &key).await?.map(|l| l.to_json(&key));
    let overrides: Vec<Value> = all_overrides(&app)
        .await?
        .iter()
        .filter(|o| o.active(now.ms()) && (o.kind == overrides::Kind::Emergency || o.target.as_ref() == Some(&key)))
        .map(|o| o.to_json_at(now.ms()))
        .collect();
    Ok(Json(json!({"key": key, "rules": rules, "limits": limits, "overrides": overrides})))
}

async fn get_limits(State(app): State<Arc<App>>, _: Admin, Key(key): Key) -> Answer {
    Ok(Json(match key_limits_of(&app, &key).await? {
        Some(l) => l.to_json(&key),
        None => json!({"key": key, "tier": null, "limits": {}, "updated_at": null}),
    }))
}

/// 409 when the sync document is full and `adding` a new entry.
async fn ensure_room(app: &App) -> Result<(), ApiError> {
    let n = app.admin.entries(&app.backend).await?;
    if n >= MAX_SYNC_ENTRIES as u64 {
        return Err(ApiError {
            status: 409,
            code: "too_many_entries",
            message: format!(
                "at most {MAX_SYNC_ENTRIES} per-key limits and overrides together (proxies load them all): remove some first"
            ),
        });
    }
    Ok(())
}

async fn put_limits(
    State(app): State<Arc<App>>,
    _: Admin,
    Key(key): Key,
    now: Now,
    JsonBody(body): JsonBody<PutLimits>,
) -> Answer {
    let (limits, who) = key_limits::parse_put(body, now.ms())?;
    if app.admin.get(&app.backend, LIMITS_KEY, &key).await?.is_none() {
        ensure_room(&app).await?;
    }
    let stored = limits.to_json(&key);
    let audit = Audit { action: "limits.set", who: &who, key: Some(&key), override_id: None };
    let written = app.admin.write(&app.backend, LIMITS_KEY, &key, Some(&stored.to_string()), now.ms(), &audit).await?;
    let mut out = stored;
    out["version"] = written.map(|w| w.version).unwrap_or(0).into();
    Ok(Json(out))
}

async fn delete_limits(State(app): State<Arc<App>>, _: Admin, Key(key): Key, now: Now, who: Who) -> Answer {
    let audit = Audit { action: "limits.delete", who: &who, key: Some(&key), override_id: None };
    let written = app.admin.write(&app.backend, LIMITS_KEY, &key, None, now.ms(), &audit).await?;
    Ok(Json(match written {
        Some(w) => json!({"key": key, "deleted": true, "version": w.version}),
        None => json!({"key": key, "deleted": false}),
    }))
}

async fn reset_key(State(app): State<Arc<App>>, _: Admin, Key(key): Key, now: Now, who: Who) -> Answer {
    let counters = app.admin.key_counters(&app.backend, &key).await?;
    let rules: Vec<&str> = counters.iter().map(|(rule, _, _)| rule.as_str()).collect();
    app.admin.delete_counters(&app.backend, &key, &rules).await?;
    let before: Vec<Value> = counters.iter().map(|c| rule_status(c, now)).collect();
    let audit = Audit { action: "key.reset", who: &who, key: Some(&key), override_id: None };
    let before = json!({"rules": before}).to_string();
    app.admin.audit(&app.backend, &audit, &before, "").await?;
    Ok(Json(json!({"key": key, "reset": rules})))
}

async fn get_stats(State(app): State<Arc<App>>, _: Admin, q: Query, now: Now) -> Answer {
    let top = q.number("top", 10, MAX_TOP)?;
    // This replica's latest numbers first; other replicas flush every second.
    app.stats.flush(&app.backend, now.ms()).await?;
    Ok(Json(stats::read(&app.backend, top).await?))
}

async fn list_overrides(State(app): State<Arc<App>>, _: Admin, q: Query, now: Now) -> Answer {
    let all = q.flag("all")?;
    let list: Vec<Value> = all_overrides(&app)
        .await?
        .iter()
        .filter(|o| all || o.active(now.ms()))
        .map(|o| o.to_json_at(now.ms()))
        .collect();
    Ok(Json(json!({ "overrides": list })))
}

/// A fresh override id: `ov-` and 16 random hex digits.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("ov-{:016x}", h.finish())
}

async fn add_override(
    State(app): State<Arc<App>>,
    _: Admin,
    now: Now,
    JsonBody(body): JsonBody<NewOverride>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now_ms = now.ms();
    let (mut ov, who) = overrides::parse_new(body, now_ms)?;
    // Housekeeping: overrides expired for more than a day are forgotten.
    let stale: Vec<String> = all_overrides(&app)
        .await?
        .into_iter()
        .filter(|o| o.until_ms.saturating_add(KEEP_EXPIRED_MS) <= now_ms)
        .map(|o| o.id)
        .collect();
    app.admin.drop_overrides(&app.backend, &stale).await?;
    ensure_room(&app).await?;
    ov.id = new_id();
    let key = ov.target.as_deref().filter(|_| ov.kind.targets_key());
    let audit = Audit { action: "override.add", who: &who, key, override_id: Some(&ov.id) };
    let written = app.admin.write(&app.backend, OVERRIDES_KEY, &ov.id, Some(&ov.to_stored()), now_ms, &audit).await?;
    let mut out = ov.to_json_at(now_ms);
    out["version"] = written.map(|w| w.version).unwrap_or(0).into();
    Ok((StatusCode::CREATED, Json(out)))
}

async fn remove_override(
    State(app): State<Arc<App>>,
    _: Admin,
    OverrideId(id): OverrideId,
    now: Now,
    who: Who,
) -> Answer {
    let not_found = || ApiError::not_found(format!("no override {id}"));
    let existing = app.admin.get(&app.backend, OVERRIDES_KEY, &id).await?;
    let existing = existing.as_deref().and_then(Override::from_json).ok_or_else(not_found)?;
    let key = existing.target.as_deref().filter(|_| existing.kind.targets_key());
    let audit = Audit { action: "override.remove", who: &who, key, override_id: Some(&id) };
    let written = app.admin.write(&app.backend, OVERRIDES_KEY, &id, None, now.ms(), &audit).await?;
    let written = written.ok_or_else(not_found)?;
    Ok(Json(json!({"id": id, "deleted": true, "version": written.version})))
}

/// An audit entry as answered.
fn audit_json((id, fields): &AuditRecord) -> Value {
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let as_json = |name: &str| match get(name) {
        None | Some("") => Value::Null,
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
    };
    let at_ms = id.split('-').next().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    json!({
        "id": id,
        "at": rfc3339::format_ms(at_ms),
        "at_ms": at_ms,
        "admin": get("admin"),
        "action": get("action"),
        "key": get("key"),
        "override": get("override"),
        "reason": get("reason"),
        "version": get("version").and_then(|v| v.parse::<u64>().ok()),
        "before": as_json("before"),
        "after": as_json("after"),
    })
}

async fn audit(State(app): State<Arc<App>>, _: Admin, q: Query, now: Now) -> Answer {
    let now_ms = now.ms();
    let key = match (q.get("key"), q.get("key_hash")) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("key_hash", "give either key or key_hash, not both")),
        (Some(raw), None) => Some(fleet_hash("key", raw)?),
        (None, Some(h)) if is_key_hash(h) => Some(h.to_ascii_lowercase()),
        (None, Some(_)) => return Err(ApiError::invalid("key_hash", "must be 16 hexadecimal digits")),
        (None, None) => None,
    };
    let time = |name: &str| -> Result<Option<u64>, ApiError> {
        q.get(name)
            .map(|t| {
                rfc3339::parse_time_or_ago(t, now_ms).ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        "must be an RFC 3339 time (2025-01-31T12:00:00Z), ms since the epoch, or a duration ago (15m)",
                    )
                })
            })
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    let limit = q.number("limit", 100, MAX_AUDIT_LIMIT)?;
    let (admin_name, action) = (q.get("admin"), q.get("action"));
    if let Some(a) = action.filter(|a| !AUDIT_ACTIONS.contains(a)) {
        return Err(ApiError::invalid("action", format!("{a:?}: must be one of {}", AUDIT_ACTIONS.join(", "))));
    }
    let matches = |(_, fields): &AuditRecord| {
        let has = |name: &str, want: Option<&str>| want.is_none_or(|w| fields.iter().any(|(k, v)| k == name && v == w));
        has("key", key.as_deref()) && has("admin", admin_name) && has("action", action)
    };
    let mut end = until.map(|u| u.to_string()).unwrap_or_else(|| "+".into());
    let start = since.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let mut entries = Vec::new();
    // The log is capped, so this scans at most its length (a few pages more at worst).
    for _ in 0..(crate::admin_store::AUDIT_MAXLEN as usize / AUDIT_PAGE + 4) {
        let page = app.admin.audit_page(&app.backend, &end, &start, AUDIT_PAGE).await?;
        let full = page.len() == AUDIT_PAGE;
        if let Some((last, _)) = page.last() {
            end = format!("({last}");
        }
        entries.extend(page.iter().filter(|e| matches(e)).take(limit - entries.len()).map(audit_json));
        if !full || entries.len() >= limit {
            break;
        }
    }
    Ok(Json(json!({ "entries": entries })))
}
