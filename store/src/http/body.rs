//! Request bodies: at most `MAX_BODY_BYTES` (413 as soon as a larger `Content-Length` is seen,
//! or once the body grows past it), then JSON read into a type whose refusals are the store's
//! words (`input::decode`). Any content type is read as JSON, as always.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::input::{self, Query, Who};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body read as a `T`.
#[derive(Clone, Debug)]
pub struct JsonBody<T>(pub T);

/// The body's bytes, or 413.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
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

impl<S: Send + Sync, T: input::Body> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<JsonBody<T>, ApiError> {
        let (parts, body) = req.into_parts();
        input::decode(&read_body(&parts.headers, body).await?).map(JsonBody)
    }
}

/// Who makes a write: `admin` and `reason` from the query, else from a JSON body (a DELETE
/// may carry either).
impl<S: Send + Sync> FromRequest<S> for Who {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Who, ApiError> {
        let (parts, body) = req.into_parts();
        let q = Query::parse(parts.uri.query())?;
        Who::from_query_or_body(&q, &read_body(&parts.headers, body).await?)
    }
}
