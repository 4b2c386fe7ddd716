//! The store's error answer: a status and `{"error": {"message": .., "code": ..}}` (a 401 also
//! says `WWW-Authenticate: Bearer`). Handlers return `Result<_, ApiError>`; what fails below
//! converts with `From` (Redis unreachable: 503 `store_unavailable`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::backend::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// 400 `invalid_request`: `FIELD: WHY`.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError { status: 400, code: "invalid_request", message: format!("{field}: {why}") }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { status: 401, code: "unauthorized", message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError { status: 403, code: "forbidden", message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: 404, code: "not_found", message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: 500, code: "internal", message: message.into() }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "code": self.code}})
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError { status: 503, code: "store_unavailable", message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}
