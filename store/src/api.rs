//! The proxy API (Bearer proxy token): `POST /v1/check`, `POST /v1/lease`, `POST /v1/adjust`,
//! and `GET /v1/sync`. Bodies and answers are the core's wire types (`tollgate_core::global::wire`, the
//! same the filter writes and reads); this module validates what they carry (every error names
//! the field) and answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tollgate_core::engine::algorithm::{Algorithm, Quota};
use tollgate_core::global::wire::{self, AdjustRequest, CheckRequest, LeaseRequest};

use crate::app::App;
use crate::counters::Counter;
use crate::error::ApiError;
use crate::http::{JsonBody, Now, Proxy};
use crate::input::{check_name, is_key_hash, Body, Place, Want};
use crate::key_limits::KeyLimits;
use crate::metrics::Metrics;
use crate::overrides::Override;
use crate::stats::Origin;
use crate::sync;

/// Most items in one call (checks, leases or adjustments).
pub const MAX_ITEMS: usize = 256;

/// Longest `window_ms` (about 584 years): the window in nanoseconds must fit in a `u64`.
/// store/openapi.json states the same bound.
pub const MAX_WINDOW_MS: u64 = u64::MAX / 1_000_000;

/// Longest `endpoint` of a check item.
pub const MAX_ENDPOINT_CHARS: usize = 256;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/lease", post(lease))
        .route("/v1/adjust", post(adjust))
        .route("/v1/sync", get(sync))
}

async fn check(
    State(app): State<Arc<App>>,
    proxy: Proxy,
    Now(now): Now,
    JsonBody(body): JsonBody<CheckRequest>,
) -> Result<Json<wire::CheckResponse>, ApiError> {
    let (checks, origins): (Vec<_>, Vec<_>) =
        checks(body)?.into_iter().map(|c| ((c.counter, c.cost), c.origin)).unzip();
    let outcome = app.counters().check(&checks, now).await?;
    let allowed = outcome.denied_by.is_none();
    Metrics::add(if allowed { &app.metrics.checks_allowed } else { &app.metrics.checks_denied }, 1);
    let proxy = proxy.peer.map(|p| p.to_string());
    app.stats.record_check(&checks, &origins, &outcome.results, allowed, proxy.as_deref());
    let results = outcome.results.iter().map(wire::Decision::from_decision).collect();
    Ok(Json(wire::CheckResponse { allowed, denied_by: outcome.denied_by, results }))
}

async fn lease(
    State(app): State<Arc<App>>,
    proxy: Proxy,
    Now(now): Now,
    JsonBody(body): JsonBody<LeaseRequest>,
) -> Result<Json<wire::LeaseResponse>, ApiError> {
    let proxy = proxy.peer.map(|p| p.to_string());
    let counters = app.counters();
    let mut grants = Vec::new();
    for l in leases(body)? {
        let o = counters.lease(&l.counter, l.want, l.returned, now).await?;
        Metrics::add(&app.metrics.lease_units_granted, o.granted);
        app.stats.record_lease(&l.counter.rule, l.want, o.granted, proxy.as_deref());
        Metrics::add(&app.metrics.lease_units_returned, l.returned);
        grants.push(wire::LeaseGrant::new(o.granted, &o.decision));
    }
    Ok(Json(wire::LeaseResponse { leases: grants }))
}

async fn adjust(
    State(app): State<Arc<App>>,
    _: Proxy,
    Now(now): Now,
    JsonBody(body): JsonBody<AdjustRequest>,
) -> Result<Json<wire::OkResponse>, ApiError> {
    let counters = app.counters();
    for (counter, delta) in adjustments(body)? {
        counters.adjust(&counter, delta, now).await?;
        Metrics::add(&app.metrics.adjustments, 1);
    }
    Ok(Json(wire::OkResponse { ok: true }))
}

/// `GET /v1/sync`: the document, or 304 while `If-None-Match` names its version.
async fn sync(State(app): State<Arc<App>>, _: Proxy, now: Now, headers: HeaderMap) -> Result<Response, ApiError> {
    let version = app.admin.version(&app.backend).await?;
    if sync::not_modified(&headers, version) {
        return Ok((StatusCode::NOT_MODIFIED, sync_headers(version)).into_response());
    }
    let (version, overrides, limits) = app.admin.snapshot(&app.backend).await?;
    let overrides: Vec<Override> = overrides.iter().filter_map(|(_, v)| Override::from_json(v)).collect();
    let limits: Vec<(String, KeyLimits)> =
        limits.into_iter().filter_map(|(k, v)| Some((k, KeyLimits::from_json(&v)?))).collect();
    let doc = sync::document(version, &overrides, &limits, now.ms());
    Ok((sync_headers(version), Json(doc)).into_response())
}

fn sync_headers(version: u64) -> [(header::HeaderName, HeaderValue); 2] {
    let etag = HeaderValue::from_str(&sync::etag(version)).unwrap_or(HeaderValue::from_static("\"0\""));
    [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))]
}

/// A check, validated: the counter and its cost, and where the request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub counter: Counter,
    pub cost: u64,
    pub origin: Origin,
}

/// A lease, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub counter: Counter,
    pub want: u64,
    pub returned: u64,
}

/// What the proxy API's bodies must hold where serde refuses them.
fn proxy_want(at: &[Place<'_>]) -> Option<Want> {
    match at {
        [] => Some(Want::Said("must be a JSON object".into())),
        [_] => Some(Want::Array),
        [_, Place::Index(_)] => Some(Want::Object),
        [_, Place::Index(_), Place::Field(field)] => match *field {
            "rule" | "key" | "algorithm" | "ip" | "endpoint" => Some(Want::String),
            "limit" | "window_ms" | "burst" => Some(Want::Positive),
            "cost" | "want" | "return" => Some(Want::Count),
            "delta" => Some(Want::Integer),
            _ => None,
        },
        _ => None,
    }
}

impl Body for CheckRequest {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        proxy_want(at)
    }
}

impl Body for LeaseRequest {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        proxy_want(at)
    }
}

impl Body for AdjustRequest {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        proxy_want(at)
    }
}

/// 1 to `MAX_ITEMS` items.
fn count<T>(field: &str, items: &[T]) -> Result<(), ApiError> {
    match items.len() {
        0 => Err(ApiError::invalid(field, "must not be empty")),
        n if n > MAX_ITEMS => Err(ApiError::invalid(field, format!("at most {MAX_ITEMS} items per call, got {n}"))),
        _ => Ok(()),
    }
}

pub fn checks(body: CheckRequest) -> Result<Vec<Check>, ApiError> {
    count("checks", &body.checks)?;
    body.checks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("checks[{i}]");
            let counter = counter(&at, Named::from(&c))?;
            let ip = match c.ip {
                None => None,
                Some(t) => Some(
                    t.parse::<std::net::IpAddr>()
                        .map_err(|_| ApiError::invalid(&format!("{at}.ip"), "must be an IPv4 or IPv6 address"))?
                        .to_string(),
                ),
            };
            if let Some(e) = &c.endpoint {
                if e.is_empty() || e.chars().count() > MAX_ENDPOINT_CHARS || e.chars().any(char::is_control) {
                    return Err(ApiError::invalid(
                        &format!("{at}.endpoint"),
                        format!("must be 1 to {MAX_ENDPOINT_CHARS} characters without control characters"),
                    ));
                }
            }
            Ok(Check { counter, cost: c.cost.unwrap_or(1), origin: Origin { ip, endpoint: c.endpoint } })
        })
        .collect()
}

pub fn leases(body: LeaseRequest) -> Result<Vec<Lease>, ApiError> {
    count("leases", &body.leases)?;
    body.leases
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let counter = counter(&format!("leases[{i}]"), Named::from(l))?;
            Ok(Lease { counter, want: l.want.unwrap_or(0), returned: l.give_back.unwrap_or(0) })
        })
        .collect()
}

pub fn adjustments(body: AdjustRequest) -> Result<Vec<(Counter, i64)>, ApiError> {
    count("adjustments", &body.adjustments)?;
    body.adjustments
        .iter()
        .enumerate()
        .map(|(i, a)| Ok((counter(&format!("adjustments[{i}]"), Named::from(a))?, a.delta)))
        .collect()
}

/// The fields every item names its counter with.
struct Named<'a> {
    rule: &'a str,
    key: &'a str,
    algorithm: &'a str,
    limit: u64,
    window_ms: u64,
    burst: Option<u64>,
}

impl<'a> From<&'a wire::CheckItem> for Named<'a> {
    fn from(c: &'a wire::CheckItem) -> Named<'a> {
        let (limit, window_ms, burst) = (c.limit, c.window_ms, c.burst);
        Named { rule: &c.rule, key: &c.key, algorithm: &c.algorithm, limit, window_ms, burst }
    }
}

impl<'a> From<&'a wire::LeaseItem> for Named<'a> {
    fn from(c: &'a wire::LeaseItem) -> Named<'a> {
        let (limit, window_ms, burst) = (c.limit, c.window_ms, c.burst);
        Named { rule: &c.rule, key: &c.key, algorithm: &c.algorithm, limit, window_ms, burst }
    }
}

impl<'a> From<&'a wire::AdjustItem> for Named<'a> {
    fn from(c: &'a wire::AdjustItem) -> Named<'a> {
        let (limit, window_ms, burst) = (c.limit, c.window_ms, c.burst);
        Named { rule: &c.rule, key: &c.key, algorithm: &c.algorithm, limit, window_ms, burst }
    }
}

/// The counter an item at `at` names: rule, key, algorithm, limit, window_ms, burst.
fn counter(at: &str, n: Named<'_>) -> Result<Counter, ApiError> {
    let field = |name: &str| format!("{at}.{name}");
    check_name(&field("rule"), n.rule)?;
    if !is_key_hash(n.key) {
        return Err(ApiError::invalid(&field("key"), "must be 16 hexadecimal digits (the key hash)"));
    }
    let algorithm = Algorithm::from_name(n.algorithm).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        ApiError::invalid(&field("algorithm"), format!("{:?}: must be one of {}", n.algorithm, names.join(", ")))
    })?;
    let positive = |name: &str, v: u64| match v {
        0 => Err(ApiError::invalid(&field(name), "must be positive")),
        v => Ok(v),
    };
    let limit = positive("limit", n.limit)?;
    let window_ms = positive("window_ms", n.window_ms)?;
    // Fails exactly above MAX_WINDOW_MS.
    let window_ns = window_ms.checked_mul(1_000_000).ok_or_else(|| {
        ApiError::invalid(
            &field("window_ms"),
            format!("must be at most {MAX_WINDOW_MS} (about 584 years: the window in nanoseconds must fit in 64 bits)"),
        )
    })?;
    let burst = n.burst.map(|b| positive("burst", b)).transpose()?.unwrap_or(limit);
    Ok(Counter {
        rule: n.rule.to_string(),
        key: n.key.to_ascii_lowercase(),
        algorithm,
        quota: Quota { limit, window_ns, burst },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::input::decode;
    use serde_json::{json, Value};

    fn parse_checks(body: &[u8]) -> Result<Vec<Check>, ApiError> {
        checks(decode(body)?)
    }

    fn err(body: &str) -> String {
        parse_checks(body.as_bytes()).unwrap_err().message
    }

    const OK: &str =
        r#"{"rule":"per-key-rpm","key":"00ff00ff00ff00ff","algorithm":"token_bucket","limit":60,"window_ms":60000}"#;

    #[test]
    fn parses_defaults() {
        let c = parse_checks(format!(r#"{{"checks":[{OK}]}}"#).as_bytes()).unwrap();
        assert_eq!(c[0].cost, 1);
        let nulls = OK.replace('}', r#","burst":null,"cost":null,"ip":null,"endpoint":null}"#);
        let n = parse_checks(format!(r#"{{"checks":[{nulls}]}}"#).as_bytes()).unwrap();
        assert_eq!(n, c, "null is absent");
        assert_eq!(c[0].counter.quota, Quota { limit: 60, window_ns: 60_000_000_000, burst: 60 });
        assert_eq!(c[0].counter.redis_key(), "tollgate:{00ff00ff00ff00ff}:per-key-rpm");
        assert_eq!(c[0].origin, Origin::default());
    }

    #[test]
    fn origin_fields_are_validated_and_canonical() {
        let with = |k: &str, v: Value| {
            let mut o: Value = serde_json::from_str(OK).unwrap();
            o[k] = v;
            parse_checks(json!({"checks": [o]}).to_string().as_bytes())
        };
        let c = with("ip", json!("2001:DB8::1")).unwrap();
        assert_eq!(c[0].origin.ip.as_deref(), Some("2001:db8::1"));
        let c = with("endpoint", json!("/v1/chat/completions")).unwrap();
        assert_eq!(c[0].origin.endpoint.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(
            with("ip", json!("10.0.0.300")).unwrap_err().message,
            "checks[0].ip: must be an IPv4 or IPv6 address"
        );
        assert!(with("endpoint", json!("")).unwrap_err().message.starts_with("checks[0].endpoint: must be 1 to 256"));
        assert!(with("endpoint", json!("x".repeat(257))).is_err());
        assert_eq!(with("ip", json!(5)).unwrap_err().message, "checks[0].ip: must be a string");
    }

    #[test]
    fn errors_name_the_field() {
        let with = |k: &str, v: &str| {
            let mut o: Value = serde_json::from_str(OK).unwrap();
            o[k] = serde_json::from_str(v).unwrap();
            err(&json!({"checks": [o]}).to_string())
        };
        assert_eq!(with("window_ms", "0"), "checks[0].window_ms: must be positive");
        assert_eq!(with("window_ms", "-5"), "checks[0].window_ms: must be positive");
        assert!(with("window_ms", "18446744073710").starts_with("checks[0].window_ms: must be at most 18446744073709 "));
        let mut longest: Value = serde_json::from_str(OK).unwrap();
        longest["window_ms"] = MAX_WINDOW_MS.into();
        let c = parse_checks(json!({"checks": [longest]}).to_string().as_bytes()).unwrap();
        assert_eq!(c[0].counter.quota.window_ns, 18_446_744_073_709_000_000);
        assert_eq!(with("limit", "1.5"), "checks[0].limit: must be a positive integer");
        assert_eq!(with("limit", "\"10\""), "checks[0].limit: must be a positive integer");
        assert_eq!(with("burst", "-2.5"), "checks[0].burst: must be positive");
        assert_eq!(with("key", "\"sk-raw\""), "checks[0].key: must be 16 hexadecimal digits (the key hash)");
        assert!(with("algorithm", "\"lru\"").starts_with("checks[0].algorithm: \"lru\": must be one of token_bucket"));
        assert_eq!(with("cost", "-1"), "checks[0].cost: must be a non-negative integer");
        assert!(with("rule", "\"a b\"").starts_with("checks[0].rule: must be 1 to 64"));
        assert_eq!(with("rule", "null"), "checks[0].rule: is required");
        assert_eq!(err("{}"), "checks: is required");
        assert_eq!(err(r#"{"checks":null}"#), "checks: is required");
        assert_eq!(err(r#"{"checks":5}"#), "checks: must be an array");
        assert_eq!(err(r#"{"checks":[]}"#), "checks: must not be empty");
        assert_eq!(err(r#"{"checks":[1]}"#), "checks[0]: must be an object");
        assert_eq!(err(r#"{"checks":[["r","00ff00ff00ff00ff","gcra",1,1]]}"#), "checks[0]: must be an object");
        assert_eq!(err("[]"), "body: must be a JSON object");
        assert!(err("{").starts_with("body: invalid JSON"));
        assert_eq!(err(r#"{"checks":[{"key":"00ff00ff00ff00ff"}]}"#), "checks[0].rule: is required");
        let many: Vec<Value> = (0..257).map(|_| serde_json::from_str(OK).unwrap()).collect();
        assert_eq!(err(&json!({ "checks": many }).to_string()), "checks: at most 256 items per call, got 257");
        let adjust = |item: &str| adjustments(decode(format!(r#"{{"adjustments":[{item}]}}"#).as_bytes())?);
        let e = adjust(r#"{"rule":"r","key":"00ff00ff00ff00ff","algorithm":"gcra","limit":1,"window_ms":1}"#);
        assert_eq!(e.unwrap_err().message, "adjustments[0].delta: is required");
        let e =
            adjust(r#"{"rule":"r","key":"00ff00ff00ff00ff","algorithm":"gcra","limit":1,"window_ms":1,"delta":1.5}"#);
        assert_eq!(e.unwrap_err().message, "adjustments[0].delta: must be an integer");
        let lease = |item: &str| leases(decode(format!(r#"{{"leases":[{item}]}}"#).as_bytes())?);
        let l = lease(r#"{"rule":"r","key":"00FF00FF00FF00FF","algorithm":"gcra","limit":1,"window_ms":1,"return":2}"#);
        let l = l.unwrap();
        assert_eq!((l[0].want, l[0].returned, l[0].counter.key.as_str()), (0, 2, "00ff00ff00ff00ff"));
        let e = lease(r#"{"rule":"r","key":"00ff00ff00ff00ff","algorithm":"gcra","limit":1,"window_ms":1,"want":-1}"#);
        assert_eq!(e.unwrap_err().message, "leases[0].want: must be a non-negative integer");
    }
}
