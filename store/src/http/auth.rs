//! Bearer tokens: the admin token for the admin API, the proxy token for the proxy API. Compared
//! in constant time; a refusal is 401 with `WWW-Authenticate: Bearer`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::app::App;
use crate::error::ApiError;

/// A caller with the admin token.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

/// A proxy (a caller with the proxy token), and the address it calls from when the server
/// knows it (`lib::run` serves with connection info), for the statistics by proxy.
#[derive(Clone, Copy, Debug)]
pub struct Proxy {
    pub peer: Option<IpAddr>,
}

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Admin, ApiError> {
        bearer(&parts.headers, &app.admin_token, "admin").map(|()| Admin)
    }
}

impl FromRequestParts<Arc<App>> for Proxy {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Proxy, ApiError> {
        bearer(&parts.headers, &app.proxy_token, "proxy")?;
        let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_canonical());
        Ok(Proxy { peer })
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

/// Require `Authorization: Bearer <token>` (`who`: which token, for the message).
fn bearer(headers: &HeaderMap, token: &str, who: &str) -> Result<(), ApiError> {
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
        Some(_) => Err(ApiError::unauthorized(format!("invalid {who} token"))),
        None => Err(ApiError::unauthorized(format!("missing Authorization: Bearer <{who} token>"))),
    }
}
