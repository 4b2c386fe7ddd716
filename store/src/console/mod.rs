//! The web console: `GET /ui/` serves a single page (HTML, CSS and ES modules embedded in the
//! binary, see `assets`), which talks only to this store:
//!
//! - `POST /ui/login` `{"token": ADMIN_TOKEN}`: sets the session cookie (`session`);
//!   `POST /ui/logout` deletes it.
//! - `GET /ui/api/session`: the session's expiry and CSRF token, and the store's clock.
//! - `GET /ui/api/overview`: statistics, health and the store's own metrics (`overview`).
//! - `POST /ui/api/hash` `{"key": RAW}`: a raw key's fleet hash, so the page never puts a
//!   raw key in a URL.
//! - `/ui/api/v1/{keys/…, overrides…, audit, stats}`: the admin API itself, reached in process
//!   with the admin token once the session (and, for writes, the CSRF token) checked out: the
//!   console adds no second implementation of any admin operation, so validation, audit and
//!   errors are exactly the API's.
//!
//! Every `/ui` answer carries a strict Content-Security-Policy (no inline script or style),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and, except assets,
//! `Cache-Control: no-store`. `--no-ui` leaves all of `/ui` unrouted (404). docs/console.md.

mod assets;
mod overview;
pub mod session;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::admin_input::{fleet_hash, parse_json};
use crate::api::ApiError;
use crate::server::{constant_time_eq, error_response, json_response, read_body, App};
use crate::timefmt;
use session::{Keys, Session};

/// The Content-Security-Policy of every `/ui` answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Admin API paths the console may reach (under `/ui/api`); not the proxy API, not `/v1/sync`.
const ADMIN_PREFIXES: [&str; 4] = ["/v1/keys/", "/v1/overrides", "/v1/audit", "/v1/stats"];

/// The console's state: the store, the session keys, and the admin API as a service.
#[derive(Clone)]
pub struct Console {
    app: Arc<App>,
    keys: Arc<Keys>,
    admin: Router,
}

/// An error answer of the console: the admin API's error shape and status.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// Milliseconds since the epoch, by this replica's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The `/ui` routes (merged into the store's router unless `--no-ui`).
pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let admin = crate::admin::routes().with_state(app.clone());
    let console = Console { keys: Arc::new(Keys::new(&app.admin_token)), app: app.clone(), admin };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(assets::index))
        .route("/ui/assets/{file}", get(assets::asset))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/api/session", get(session_info))
        .route("/ui/api/overview", get(overview::overview))
        .route("/ui/api/hash", post(hash_key))
        .route("/ui/api/v1/{*rest}", any(forward))
        .route("/ui/{*rest}", any(not_found))
        .layer(middleware::from_fn_with_state(app, headers_and_metrics))
        .with_state(console)
}

/// Security headers on every console answer, and its count in the store's metrics.
async fn headers_and_metrics(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    app.metrics.request("/ui", r.status().as_u16());
    r
}

async fn not_found() -> Failure {
    Failure(ApiError { status: 404, code: "not_found", message: "no such console page".into() })
}

/// `POST /ui/login` `{"token": "..."}`: a session cookie for the admin token.
async fn login(State(c): State<Console>, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    session::same_origin(&headers)?;
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json_body {
        return Err(Failure(ApiError {
            status: 415,
            code: "unsupported_media_type",
            message: "send {\"token\": ...} as application/json".into(),
        }));
    }
    let body = parse_json(&read_body(&headers, body).await?)?;
    let token = body.get("token").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::invalid("token", "is required").into());
    }
    if !constant_time_eq(token.trim().as_bytes(), c.app.admin_token.as_bytes()) {
        return Err(Failure(ApiError {
            status: 401,
            code: "unauthorized",
            message: "that is not the store's admin token (--admin-token)".into(),
        }));
    }
    let (session, cookie) = c.keys.issue(now_ms())?;
    let set = HeaderValue::from_str(&session::set_cookie(&cookie, &headers)).map_err(|_| internal("cookie"))?;
    let mut r = json_response(200, &json!({"expires_at": timefmt::format_ms(session.expires_ms)}));
    r.headers_mut().insert(header::SET_COOKIE, set);
    Ok(r)
}

fn internal(what: &str) -> Failure {
    Failure(ApiError { status: 500, code: "internal", message: format!("cannot build the {what}") })
}

/// `POST /ui/logout`: delete the session cookie in this browser.
async fn logout(_: Session, headers: HeaderMap) -> Result<Response, Failure> {
    let clear = HeaderValue::from_str(&session::clear_cookie(&headers)).map_err(|_| internal("cookie"))?;
    let mut r = json_response(200, &json!({"logged_out": true}));
    r.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(r)
}

/// `GET /ui/api/session`: the CSRF token for writes, the session's expiry, the store's clock.
async fn session_info(s: Session, State(c): State<Console>) -> Response {
    let now = now_ms();
    json_response(
        200,
        &json!({
            "csrf": c.keys.csrf(&s),
            "expires_at": timefmt::format_ms(s.expires_ms),
            "expires_ms": s.expires_ms,
            "now_ms": now,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// `POST /ui/api/hash` `{"key": RAW}` → `{"key": HASH}`: the fleet hash of a raw key.
async fn hash_key(_: Session, headers: HeaderMap, body: Body) -> Result<Response, Failure> {
    let body = parse_json(&read_body(&headers, body).await?)?;
    let raw = body.get("key").and_then(Value::as_str).unwrap_or("");
    Ok(json_response(200, &json!({"key": fleet_hash("key", raw)?})))
}

/// `/ui/api/v1/...`: the admin API, in process, with the admin token.
async fn forward(_: Session, State(c): State<Console>, req: Request) -> Result<Response, Failure> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/ui/api").unwrap_or("");
    if !ADMIN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return Err(not_found().await);
    }
    let target = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    parts.uri = target.parse().map_err(|_| ApiError::invalid("path", "is not a valid URI"))?;
    // A fresh request for the admin router: none of this route's matched path parameters.
    parts.extensions = axum::http::Extensions::new();
    parts.headers.remove(header::COOKIE);
    parts.headers.remove(session::CSRF_HEADER);
    parts.headers.insert(header::AUTHORIZATION, c.bearer()?);
    Ok(c.admin.oneshot(Request::from_parts(parts, body)).await.into_response())
}

impl Console {
    fn bearer(&self) -> Result<HeaderValue, Failure> {
        HeaderValue::from_str(&format!("Bearer {}", self.app.admin_token)).map_err(|_| internal("admin call"))
    }

    /// GET an admin API path in process: (status, JSON body).
    async fn admin_get(&self, path_and_query: &str) -> Result<(StatusCode, Value), Failure> {
        let req = axum::http::Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(header::AUTHORIZATION, self.bearer()?)
            .body(Body::empty())
            .map_err(|_| internal("admin call"))?;
        let r = self.admin.clone().oneshot(req).await.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), crate::server::MAX_BODY_BYTES * 16)
            .await
            .map_err(|_| internal("admin answer"))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}
