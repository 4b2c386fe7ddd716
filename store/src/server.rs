//! HTTP: routes, authentication, body limits, status codes.
//!
//! Proxy API (Bearer proxy token): `POST /v1/check`, `POST /v1/lease`, `POST /v1/adjust`, and
//! `GET /v1/sync` (in `admin`). The admin API (Bearer admin token) lives in `admin`.
//! Open: `GET /healthz`, `GET /metrics`, `GET /openapi.json`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tollgate_core::algorithm::Nanos;

use crate::admin_store::AdminStore;
use crate::api::{self, ApiError};
use crate::backend::{Backend, StoreError};
use crate::counters::{Counters, KeyLocks};
use crate::metrics::Metrics;
use crate::stats::Stats;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Header that sets the time of a request when the store runs with `--test-clock`.
pub const TEST_CLOCK_HEADER: &str = "x-tollgate-now-ns";

/// The OpenAPI document, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// /healthz waits at most this long for Redis to answer PING.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

pub struct App {
    pub backend: Backend,
    pub metrics: Arc<Metrics>,
    pub proxy_token: String,
    pub admin_token: String,
    pub test_clock: bool,
    pub locks: KeyLocks,
    /// This replica's statistics not yet flushed to Redis.
    pub stats: Stats,
    pub admin: AdminStore,
    /// Whether the web console is served at `/ui` (`--no-ui` turns it off).
    pub ui: bool,
    /// When this replica started.
    pub started: std::time::Instant,
}

impl App {
    pub fn new(
        backend: Backend,
        metrics: Arc<Metrics>,
        proxy_token: String,
        admin_token: String,
        test_clock: bool,
    ) -> App {
        App {
            backend,
            metrics,
            proxy_token,
            admin_token,
            test_clock,
            locks: KeyLocks::default(),
            stats: Stats::default(),
            admin: AdminStore::default(),
            ui: true,
            started: std::time::Instant::now(),
        }
    }

    pub fn counters(&self) -> Counters<'_> {
        Counters { backend: &self.backend, metrics: &self.metrics, locks: &self.locks }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let console = if app.ui { crate::console::routes(app.clone()) } else { Router::new() };
    Router::new()
        .route("/v1/check", post(check))
        .route("/v1/lease", post(lease))
        .route("/v1/adjust", post(adjust))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::admin::routes())
        .merge(console)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

pub fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.status, &e.body());
    if e.status == 401 {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

pub(crate) fn unavailable(e: &StoreError) -> ApiError {
    ApiError { status: 503, code: "store_unavailable", message: e.to_string() }
}

/// The address a request came from (the calling proxy for the proxy API), when the server
/// was started with connection info (`lib::run` does); None otherwise. Never fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_canonical())))
    }
}

/// Constant-time comparison (in the length of the longer input).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// Require `Authorization: Bearer <token>`.
pub fn authorize(headers: &HeaderMap, token: &str, who: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| match (v.get(..7), v.get(7..)) {
            (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("bearer ") => Some(rest),
            _ => None,
        })
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError { status: 401, code: "unauthorized", message: format!("invalid {who} token") }),
        None => Err(ApiError {
            status: 401,
            code: "unauthorized",
            message: format!("missing Authorization: Bearer <{who} token>"),
        }),
    }
}

/// The request's time: the store's clock, or the test clock header when enabled.
pub(crate) fn now(app: &App, headers: &HeaderMap) -> Result<Nanos, ApiError> {
    if app.test_clock {
        if let Some(v) = headers.get(TEST_CLOCK_HEADER) {
            return v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("X-Tollgate-Now-Ns", "must be nanoseconds since the epoch"));
        }
    }
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0))
}

pub(crate) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError {
        status: 413,
        code: "payload_too_large",
        message: format!("request body larger than {MAX_BODY_BYTES} bytes"),
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| too_large())
}

/// Authenticate a proxy call, read its body and its time.
async fn proxy_call(app: &App, headers: &HeaderMap, body: Body) -> Result<(Bytes, Nanos), ApiError> {
    authorize(headers, &app.proxy_token, "proxy")?;
    let now = now(app, headers)?;
    let bytes = read_body(headers, body).await?;
    Ok((bytes, now))
}

fn finish(app: &App, endpoint: &'static str, result: Result<Value, ApiError>) -> Response {
    let response = match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    };
    app.metrics.request(endpoint, response.status().as_u16());
    response
}

async fn check(State(app): State<Arc<App>>, Peer(peer): Peer, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let (bytes, now) = proxy_call(&app, &headers, body).await?;
        let (checks, origins): (Vec<_>, Vec<_>) =
            api::parse_checks(&bytes)?.into_iter().map(|c| ((c.counter, c.cost), c.origin)).unzip();
        let outcome = app.counters().check(&checks, now).await.map_err(|e| unavailable(&e))?;
        let allowed = outcome.denied_by.is_none();
        Metrics::add(if allowed { &app.metrics.checks_allowed } else { &app.metrics.checks_denied }, 1);
        let proxy = peer.map(|p| p.to_string());
        app.stats.record_check(&checks, &origins, &outcome.results, allowed, proxy.as_deref());
        Ok(api::check_response(&outcome))
    }
    .await;
    finish(&app, "/v1/check", result)
}

async fn lease(State(app): State<Arc<App>>, Peer(peer): Peer, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let (bytes, now) = proxy_call(&app, &headers, body).await?;
        let proxy = peer.map(|p| p.to_string());
        let leases = api::parse_leases(&bytes)?;
        let counters = app.counters();
        let mut outcomes = Vec::with_capacity(leases.len());
        for l in &leases {
            let o = counters.lease(&l.counter, l.want, l.returned, now).await.map_err(|e| unavailable(&e))?;
            Metrics::add(&app.metrics.lease_units_granted, o.granted);
            app.stats.record_lease(&l.counter.rule, l.want, o.granted, proxy.as_deref());
            Metrics::add(&app.metrics.lease_units_returned, l.returned);
            outcomes.push(o);
        }
        Ok(api::lease_response(&outcomes))
    }
    .await;
    finish(&app, "/v1/lease", result)
}

async fn adjust(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let (bytes, now) = proxy_call(&app, &headers, body).await?;
        let adjustments = api::parse_adjustments(&bytes)?;
        let counters = app.counters();
        for (counter, delta) in &adjustments {
            counters.adjust(counter, *delta, now).await.map_err(|e| unavailable(&e))?;
            Metrics::add(&app.metrics.adjustments, 1);
        }
        Ok(json!({"ok": true}))
    }
    .await;
    finish(&app, "/v1/adjust", result)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let ping = tokio::time::timeout(HEALTH_TIMEOUT, app.backend.ping()).await.unwrap_or(Err(StoreError::Timeout));
    let response = match ping {
        Ok(()) => json_response(200, &json!({"status": "ok"})),
        Err(e) => json_response(
            503,
            &json!({"status": "unavailable", "error": {"message": e.to_string(), "code": "store_unavailable"}}),
        ),
    };
    app.metrics.request("/healthz", response.status().as_u16());
    response
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    app.metrics.request("/metrics", 200);
    let ct = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], app.metrics.render()).into_response()
}

async fn openapi(State(app): State<Arc<App>>) -> Response {
    app.metrics.request("/openapi.json", 200);
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI).into_response()
}

async fn not_found(State(app): State<Arc<App>>, uri: Uri) -> Response {
    app.metrics.request("other", 404);
    let path: String = uri.path().chars().take(200).collect();
    error_response(&ApiError { status: 404, code: "not_found", message: format!("no such endpoint: {path}") })
}

async fn method_not_allowed(State(app): State<Arc<App>>) -> Response {
    app.metrics.request("other", 405);
    error_response(&ApiError { status: 405, code: "method_not_allowed", message: "method not allowed here".into() })
}
