//! Console sessions: the admin token is sent once, to `POST /ui/login`; what the browser keeps
//! is a session cookie that scripts cannot read (`HttpOnly`), that no other site can make it
//! send (`SameSite=Strict`), and that only `/ui` receives (`Path=/ui`).
//!
//! The cookie is stateless and signed, so it works on every replica behind a load balancer
//! and while Redis is down (the overview must still load at 3 a.m. to say Redis is down):
//! `EXPIRES_MS.NONCE.MAC`, where NONCE is 16 random bytes and MAC an HMAC-SHA256 of both under
//! a key derived from the admin token. Changing the admin token therefore ends every session.
//! A session lasts `SESSION_TTL_MS` (8 h) from login, then the console asks for the token
//! again. Logging out deletes the cookie in that browser; a copy of a cookie taken before
//! stays valid until it expires (rotate the admin token to end them all).
//!
//! Writes (any method but GET and HEAD) also need the session's CSRF token in the
//! `X-Tollgate-CSRF` header (an HMAC of the nonce, handed to the page by `GET
//! /ui/api/session`, which other origins cannot read), and are refused when the browser says
//! they come from another origin (`Origin`, `Sec-Fetch-Site`).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::ApiError;
use crate::http::now_ms;

/// The session cookie's name.
pub const COOKIE: &str = "tollgate_console";

/// The header writes carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-tollgate-csrf";

/// How long a session lasts after login (8 hours).
pub const SESSION_TTL_MS: u64 = 8 * 3_600_000;

/// A valid session (from a verified cookie).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// 32 hex digits.
    pub nonce: String,
    pub expires_ms: u64,
}

/// The key sessions are signed with, derived from the admin token.
pub struct Keys {
    mac: hmac::Key,
    random: SystemRandom,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl Keys {
    pub fn new(admin_token: &str) -> Keys {
        let root = hmac::Key::new(hmac::HMAC_SHA256, admin_token.as_bytes());
        let derived = hmac::sign(&root, b"tollgate console session key v1");
        Keys { mac: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()), random: SystemRandom::new() }
    }

    /// A new session and its cookie value.
    pub fn issue(&self, now_ms: u64) -> Result<(Session, String), ApiError> {
        let mut nonce = [0u8; 16];
        self.random.fill(&mut nonce).map_err(|_| ApiError::internal("no randomness available for a session id"))?;
        let session = Session { nonce: hex(&nonce), expires_ms: now_ms.saturating_add(SESSION_TTL_MS) };
        let payload = format!("{}.{}", session.expires_ms, session.nonce);
        let mac = hmac::sign(&self.mac, format!("session|{payload}").as_bytes());
        Ok((session, format!("{payload}.{}", hex(mac.as_ref()))))
    }

    /// The session a cookie value stands for, if it is ours and not expired.
    pub fn verify(&self, value: &str, now_ms: u64) -> Option<Session> {
        let mut parts = value.split('.');
        let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.len() != 32 || unhex(nonce).is_none() {
            return None;
        }
        let payload = format!("{expires}.{nonce}");
        hmac::verify(&self.mac, format!("session|{payload}").as_bytes(), &unhex(mac)?).ok()?;
        let expires_ms = expires.parse::<u64>().ok()?;
        (now_ms < expires_ms).then(|| Session { nonce: nonce.to_string(), expires_ms })
    }

    /// The session's CSRF token.
    pub fn csrf(&self, s: &Session) -> String {
        hex(hmac::sign(&self.mac, format!("csrf|{}", s.nonce).as_bytes()).as_ref())
    }

    fn csrf_ok(&self, s: &Session, presented: &str) -> bool {
        unhex(presented)
            .is_some_and(|mac| hmac::verify(&self.mac, format!("csrf|{}", s.nonce).as_bytes(), &mac).is_ok())
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|c| {
            let (k, val) = c.trim().split_once('=')?;
            (k == name).then_some(val)
        })
    })
}

/// Whether the request reached the store through HTTPS (`X-Forwarded-Proto: https`): then the
/// cookie is `Secure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secure(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Secure {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Secure, Self::Rejection> {
        Ok(Secure(behind_https(&parts.headers)))
    }
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(value: &str, secure: Secure) -> String {
    let secure = if secure.0 { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL_MS / 1000)
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(secure: Secure) -> String {
    let secure = if secure.0 { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

fn behind_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Refuse a request that the browser says comes from another site or origin.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(ApiError::forbidden("cross-origin request refused (Sec-Fetch-Site)"));
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or("");
        let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if host.is_empty() || authority != Some(host) {
            return Err(ApiError::forbidden("cross-origin request refused (Origin is not this store)"));
        }
    }
    Ok(())
}

/// A request that does not come from another site or origin, as far as the browser says.
#[derive(Clone, Copy, Debug)]
pub struct SameOrigin;

impl<S: Send + Sync> FromRequestParts<S> for SameOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<SameOrigin, ApiError> {
        same_origin(&parts.headers).map(|()| SameOrigin)
    }
}

/// A request of a logged-in console user. For writes (not GET or HEAD), the request also
/// carried the session's CSRF token and came from this origin.
impl<S: Send + Sync> FromRequestParts<S> for Session
where
    Arc<Keys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Session, ApiError> {
        let keys = Arc::<Keys>::from_ref(state);
        let value =
            cookie(&parts.headers, COOKIE).ok_or_else(|| ApiError::unauthorized("not logged in: log in first"))?;
        let session = keys.verify(value, now_ms()).ok_or_else(|| {
            ApiError::unauthorized("the session has expired (or the admin token changed): log in again")
        })?;
        if !parts.method.is_safe() {
            same_origin(&parts.headers)?;
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !keys.csrf_ok(&session, presented) {
                return Err(ApiError::forbidden("missing or wrong X-Tollgate-CSRF header: reload the page"));
            }
        }
        Ok(session)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_are_signed_expire_and_depend_on_the_admin_token() {
        let keys = Keys::new("admin-token");
        let (s, value) = keys.issue(1_000).unwrap();
        assert_eq!(keys.verify(&value, 1_001), Some(s.clone()));
        assert_eq!(s.expires_ms, 1_000 + SESSION_TTL_MS);
        assert_eq!(keys.verify(&value, 1_000 + SESSION_TTL_MS), None, "expired");
        assert_eq!(Keys::new("other-token").verify(&value, 1_001), None, "another admin token");
        // Changing the expiry (or anything) breaks the signature.
        let forged = value.replacen(&s.expires_ms.to_string(), &(s.expires_ms * 2).to_string(), 1);
        assert_eq!(keys.verify(&forged, 1_001), None);
        for bad in ["", "1.2", "x.y.z", "1.2.3.4", &format!("{value}.x")] {
            assert_eq!(keys.verify(bad, 1), None, "{bad:?}");
        }
        let (other, _) = keys.issue(1_000).unwrap();
        assert_ne!(s.nonce, other.nonce, "random session ids");
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let keys = Keys::new("a");
        let (s1, _) = keys.issue(0).unwrap();
        let (s2, _) = keys.issue(0).unwrap();
        assert!(keys.csrf_ok(&s1, &keys.csrf(&s1)));
        assert!(!keys.csrf_ok(&s2, &keys.csrf(&s1)));
        assert!(!keys.csrf_ok(&s1, ""));
        assert!(!keys.csrf_ok(&s1, "zz"));
    }

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; tollgate_console=v.w.x; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("v.w.x"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(!behind_https(&h));
        let c = set_cookie("v", Secure(false));
        assert_eq!(c, "tollgate_console=v; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=28800");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(behind_https(&h));
        assert!(set_cookie("v", Secure(true)).ends_with("; Secure"));

        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h).is_ok(), "no Origin: the CSRF token decides");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert_eq!(same_origin(&h).unwrap_err().status, 403);
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(same_origin(&h).unwrap_err().status, 403);
    }
}
