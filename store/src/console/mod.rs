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
mod state;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{constant_time_eq, now_ms, JsonBody};
use crate::input::{fleet_hash, Body as JsonInput, Place, Want};
use session::{Keys, SameOrigin, Secure, Session};
use state::{cannot_build, Console};
use tollgate_core::time::rfc3339;

/// The Content-Security-Policy of every `/ui` answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Admin API paths the console may reach (under `/ui/api`); not the proxy API, not `/v1/sync`.
const ADMIN_PREFIXES: [&str; 4] = ["/v1/keys/", "/v1/overrides", "/v1/audit", "/v1/stats"];

/// The `/ui` routes (merged into the store's router unless `--no-ui`); `admin` is the admin
/// API's router, called in process.
pub fn routes(app: Arc<App>, admin: Router) -> Router<Arc<App>> {
    let console = Console { keys: Arc::new(Keys::new(&app.admin_token)), app, admin };
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
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// The security headers of every console answer.
async fn security_headers(req: Request, next: Next) -> Response {
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
    r
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such console page")
}

/// `{"token": ADMIN_TOKEN}` of `POST /ui/login`.
#[derive(Debug, Deserialize)]
struct Login {
    #[serde(default)]
    token: Option<String>,
}

/// `{"key": RAW}` of `POST /ui/api/hash`.
#[derive(Debug, Deserialize)]
struct RawKey {
    #[serde(default)]
    key: Option<String>,
}

/// An object of strings.
fn strings(at: &[Place<'_>]) -> Option<Want> {
    match at {
        [] => Some(Want::Object),
        [Place::Field(_)] => Some(Want::String),
        _ => None,
    }
}

impl JsonInput for Login {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        strings(at)
    }
}

impl JsonInput for RawKey {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        strings(at)
    }
}

/// A request whose body says it is JSON (`Content-Type: application/json`): a form post, which
/// another site could make a browser send, is 415.
#[derive(Clone, Copy, Debug)]
struct JsonContent;

impl<S: Send + Sync> FromRequestParts<S> for JsonContent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<JsonContent, ApiError> {
        let media_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if media_type
            .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")))
        {
            return Ok(JsonContent);
        }
        Err(ApiError {
            status: 415,
            code: "unsupported_media_type",
            message: "send {\"token\": ...} as application/json".into(),
        })
    }
}

/// `POST /ui/login` `{"token": "..."}` (from this origin, as JSON): a session cookie for the
/// admin token.
async fn login(
    State(c): State<Console>,
    _: SameOrigin,
    _: JsonContent,
    secure: Secure,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let token = body.token.unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid("token", "is required"));
    }
    if !constant_time_eq(token.trim().as_bytes(), c.app.admin_token.as_bytes()) {
        return Err(ApiError::unauthorized("that is not the store's admin token (--admin-token)"));
    }
    let (session, cookie) = c.keys.issue(now_ms())?;
    let set = HeaderValue::from_str(&session::set_cookie(&cookie, secure)).map_err(|_| cannot_build("cookie"))?;
    let mut r = Json(json!({"expires_at": rfc3339::format_ms(session.expires_ms)})).into_response();
    r.headers_mut().insert(header::SET_COOKIE, set);
    Ok(r)
}

/// `POST /ui/logout`: delete the session cookie in this browser.
async fn logout(_: Session, secure: Secure) -> Result<Response, ApiError> {
    let clear = HeaderValue::from_str(&session::clear_cookie(secure)).map_err(|_| cannot_build("cookie"))?;
    let mut r = Json(json!({"logged_out": true})).into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(r)
}

/// `GET /ui/api/session`: the CSRF token for writes, the session's expiry, the store's clock.
async fn session_info(s: Session, State(c): State<Console>) -> Json<Value> {
    Json(json!({
        "csrf": c.keys.csrf(&s),
        "expires_at": rfc3339::format_ms(s.expires_ms),
        "expires_ms": s.expires_ms,
        "now_ms": now_ms(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `POST /ui/api/hash` `{"key": RAW}` → `{"key": HASH}`: the fleet hash of a raw key.
async fn hash_key(_: Session, JsonBody(body): JsonBody<RawKey>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"key": fleet_hash("key", body.key.as_deref().unwrap_or(""))?})))
}

/// `/ui/api/v1/...`: the admin API, in process, with the admin token.
async fn forward(_: Session, State(c): State<Console>, req: Request) -> Result<Response, ApiError> {
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
