//! The router: every route of the store in one place, and what applies to all of them.
//!
//! - the proxy API (`api`, proxy token): `/v1/check`, `/v1/lease`, `/v1/adjust`, `/v1/sync`;
//! - the admin API (`admin`, admin token): `/v1/keys/…`, `/v1/stats`, `/v1/overrides…`,
//!   `/v1/audit`;
//! - the web console (`console`, a session cookie) at `/ui`, unless `--no-ui`;
//! - open: `GET /healthz`, `GET /metrics`, `GET /openapi.json`;
//! - anything else: 404 `not_found`, or 405 `method_not_allowed` for a route's other methods.
//!
//! Every answer is counted by route and status (`http::metrics::record`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::backend::StoreError;
use crate::error::ApiError;
use crate::{admin, api, console, http};

/// The OpenAPI document, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// /healthz waits at most this long for Redis to answer PING.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

pub fn router(app: Arc<App>) -> Router {
    let count = middleware::from_fn_with_state(app.metrics.clone(), http::metrics::record);
    let console = if app.ui {
        // The console reaches the admin API in process: the same routes, counted the same way.
        let admin_api = admin::routes().layer(count.clone()).with_state(app.clone());
        console::routes(app.clone(), admin_api)
    } else {
        Router::new()
    };
    Router::new()
        .merge(api::routes())
        .merge(admin::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(console)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(count)
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let ping = tokio::time::timeout(HEALTH_TIMEOUT, app.backend.ping()).await.unwrap_or(Err(StoreError::Timeout));
    match ping {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            let body =
                json!({"status": "unavailable", "error": {"message": e.to_string(), "code": "store_unavailable"}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let ct = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, ct)], app.metrics.render()).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI).into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::not_found(format!("no such endpoint: {path}"))
}

async fn method_not_allowed() -> ApiError {
    ApiError { status: 405, code: "method_not_allowed", message: "method not allowed here".into() }
}
