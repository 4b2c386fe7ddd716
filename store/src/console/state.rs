//! The console's state: the store, the session keys, and the admin API's router, which the
//! console calls in process (with the admin token, once the session checked out).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::session::Keys;
use crate::app::App;
use crate::error::ApiError;
use crate::http::MAX_BODY_BYTES;

/// The console's state: the store, the session keys, and the admin API as a service.
#[derive(Clone)]
pub struct Console {
    pub app: Arc<App>,
    pub keys: Arc<Keys>,
    pub admin: Router,
}

impl FromRef<Console> for Arc<Keys> {
    fn from_ref(c: &Console) -> Arc<Keys> {
        c.keys.clone()
    }
}

impl Console {
    pub fn bearer(&self) -> Result<HeaderValue, ApiError> {
        HeaderValue::from_str(&format!("Bearer {}", self.app.admin_token)).map_err(|_| cannot_build("admin call"))
    }

    /// GET an admin API path in process: (status, JSON body).
    pub async fn admin_get(&self, path_and_query: &str) -> Result<(StatusCode, Value), ApiError> {
        let req = axum::http::Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(header::AUTHORIZATION, self.bearer()?)
            .body(Body::empty())
            .map_err(|_| cannot_build("admin call"))?;
        let r = self.admin.clone().oneshot(req).await.into_response();
        let status = r.status();
        let bytes =
            axum::body::to_bytes(r.into_body(), MAX_BODY_BYTES * 16).await.map_err(|_| cannot_build("admin answer"))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}

/// 500: a header or request the console builds could not be built.
pub fn cannot_build(what: &str) -> ApiError {
    ApiError::internal(format!("cannot build the {what}"))
}
