//! `GET /ui/api/overview`: what the console's first page shows, in one call.
//!
//! - `stats`: `GET /v1/stats?top=10` (fleet-wide, from Redis: totals by rule and by proxy,
//!   top denied key hashes, IPs, endpoints). The page turns two polls of these totals into
//!   decisions per second. Null, with `stats_error`, when Redis cannot answer.
//! - `overrides`: the active overrides (`GET /v1/overrides`), for the emergency banner.
//! - `health`: this store answers; Redis answers PING (and how fast), within 500 ms.
//! - `store`: this replica's own metrics (as in `/metrics`): Redis calls, errors, timeouts and
//!   mean latency, and its answers to proxies by endpoint: `ok`, `unavailable` (503: each one
//!   made the proxy apply its `store.failure_mode`) and `refused` (4xx).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use super::session::Session;
use super::state::Console;
use crate::backend::StoreError;
use crate::http::now_ms;
use crate::metrics::Metrics;
use tollgate_core::time::rfc3339;

/// How long the overview waits for Redis to answer PING.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// The proxy API's endpoints, whose failures make proxies use their failure mode.
const PROXY_ENDPOINTS: [&str; 4] = ["/v1/check", "/v1/lease", "/v1/adjust", "/v1/sync"];

pub async fn overview(_: Session, State(c): State<Console>) -> Json<Value> {
    let started = Instant::now();
    let ping = tokio::time::timeout(PING_TIMEOUT, c.app.backend.ping()).await.unwrap_or(Err(StoreError::Timeout));
    let ping_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (stats, stats_error) = match c.admin_get("/v1/stats?top=10").await {
        Ok((status, v)) if status.is_success() => (v, Value::Null),
        Ok((_, v)) => (Value::Null, v["error"]["message"].clone()),
        Err(e) => (Value::Null, e.message.into()),
    };
    let overrides = match c.admin_get("/v1/overrides").await {
        Ok((status, v)) if status.is_success() => v["overrides"].clone(),
        _ => Value::Null,
    };
    let now = now_ms();
    Json(json!({
            "now_ms": now,
            "now": rfc3339::format_ms(now),
            "health": {
                "store": "ok",
                "uptime_s": c.app.started.elapsed().as_secs(),
                "version": env!("CARGO_PKG_VERSION"),
                "redis": match &ping {
                    Ok(()) => json!({"ok": true, "ping_ms": (ping_ms * 100.0).round() / 100.0}),
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                },
            },
            "stats": stats,
            "stats_error": stats_error,
            "overrides": overrides,
            "store": store_metrics(&c.app.metrics),
    }))
}

fn store_metrics(m: &Metrics) -> Value {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let mut proxy_calls = Map::new();
    for endpoint in PROXY_ENDPOINTS {
        proxy_calls.insert(endpoint.to_string(), json!({"ok": 0, "unavailable": 0, "refused": 0}));
    }
    for (endpoint, status, n) in m.requests() {
        let Some(entry) = proxy_calls.get_mut(&endpoint) else { continue };
        let class = match status {
            200..=299 | 304 => "ok",
            503 => "unavailable",
            _ => "refused",
        };
        entry[class] = (entry[class].as_u64().unwrap_or(0).saturating_add(n)).into();
    }
    let (calls, sum_ns) = m.redis_latency_totals();
    let mean_ms = if calls == 0 { 0.0 } else { (sum_ns as f64 / calls as f64 / 1e4).round() / 100.0 };
    json!({
        "redis_calls": calls,
        "redis_mean_ms": mean_ms,
        "redis_errors": get(&m.redis_errors),
        "redis_timeouts": get(&m.redis_timeouts),
        "checks_allowed": get(&m.checks_allowed),
        "checks_denied": get(&m.checks_denied),
        "lease_units_granted": get(&m.lease_units_granted),
        "proxy_calls": proxy_calls,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proxy_calls_are_classified_by_status() {
        let m = Metrics::default();
        m.request("/v1/check", 200);
        m.request("/v1/check", 503);
        m.request("/v1/check", 503);
        m.request("/v1/sync", 304);
        m.request("/v1/lease", 401);
        m.request("/v1/stats", 503);
        let v = store_metrics(&m);
        assert_eq!(v["proxy_calls"]["/v1/check"], json!({"ok": 1, "unavailable": 2, "refused": 0}));
        assert_eq!(v["proxy_calls"]["/v1/sync"]["ok"], 1);
        assert_eq!(v["proxy_calls"]["/v1/lease"]["refused"], 1);
        assert!(v["proxy_calls"].get("/v1/stats").is_none(), "admin calls are not proxy calls");
        assert_eq!(v["redis_mean_ms"], 0.0);
    }
}
