//! The path and the query string: the key a `{key}` segment names, an override id, and the
//! query's parameters (`input::Query`). Errors name the parameter.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::input::{key_hash_of, Query};

/// The key hash of `/v1/keys/{key}/…`: the raw key's fleet hash, or with `?hash=1` the segment
/// itself (16 hex digits), lower-case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(pub String);

/// The `{id}` of `/v1/overrides/{id}`: `ov-0123456789abcdef` (up to 64 of `A-Z a-z 0-9 - _`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Query, ApiError> {
        Query::parse(parts.uri.query())
    }
}

/// The only path parameter of the route, percent-decoded; `name` words the error.
async fn segment<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Result<String, ApiError> {
    let Path(s) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::invalid(name, "must be valid percent-encoded UTF-8"))?;
    Ok(s)
}

impl<S: Send + Sync> FromRequestParts<S> for Key {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Key, ApiError> {
        let q = Query::parse(parts.uri.query())?;
        Ok(Key(key_hash_of(&segment(parts, state, "key").await?, &q)?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OverrideId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<OverrideId, ApiError> {
        let id = segment(parts, state, "id").await?;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ApiError::invalid("id", "must be an override id like ov-0123456789abcdef"));
        }
        Ok(OverrideId(id))
    }
}
