//! The store's inputs, validated, every error naming its field: who makes an admin write and
//! why, raw keys (hashed on arrival) and key hashes, rule names, query strings (`query`), and
//! JSON bodies read with serde but refused in the store's words (`json`).

mod json;
mod query;

pub use json::{decode, parse, Body, Place, Want};
pub use query::{percent_decode, Query};

use serde::Deserialize;
use tollgate_core::engine::hash::KeyHash;

use crate::error::ApiError;

/// Longest raw key accepted (bytes).
pub const MAX_RAW_KEY_BYTES: usize = 4096;

/// Longest `admin` name (characters).
pub const MAX_ADMIN_CHARS: usize = 64;

/// Longest `reason` (characters).
pub const MAX_REASON_CHARS: usize = 1000;

/// Who makes an admin write, and why: both required, recorded in the audit log. The name is
/// declared by the caller (one admin token for everybody), not authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub admin: String,
    pub reason: String,
}

fn text_field(field: &str, value: Option<&str>, max: usize) -> Result<String, ApiError> {
    let Some(v) = value else { return Err(ApiError::invalid(field, "is required")) };
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, format!("must be 1 to {max} characters, not blank, one line")));
    }
    Ok(v.to_string())
}

impl Who {
    pub fn new(admin: Option<&str>, reason: Option<&str>) -> Result<Who, ApiError> {
        Ok(Who {
            admin: text_field("admin", admin, MAX_ADMIN_CHARS)?,
            reason: text_field("reason", reason, MAX_REASON_CHARS)?,
        })
    }

    /// From the query parameters `admin` and `reason`, else from a JSON body's fields (for
    /// DELETE, which may carry either; an empty body is no body).
    pub fn from_query_or_body(q: &Query, body: &[u8]) -> Result<Who, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Who::new(q.get("admin"), q.get("reason"));
        }
        let b: WhoBody = decode(body)?;
        Who::new(q.get("admin").or(b.admin.as_deref()), q.get("reason").or(b.reason.as_deref()))
    }
}

/// `{"admin": .., "reason": ..}`: the body of a DELETE or a reset.
#[derive(Debug, Default, Deserialize)]
struct WhoBody {
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl Body for WhoBody {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        match at {
            [] => Some(Want::Object),
            [Place::Field(_)] => Some(Want::String),
            _ => None,
        }
    }
}

/// The fleet-wide hash of a raw key (exactly as proxies hash a rule keyed on `["api_key"]`),
/// as 16 hex digits. The raw key is not kept anywhere.
pub fn fleet_hash(field: &str, raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > MAX_RAW_KEY_BYTES {
        return Err(ApiError::invalid(field, format!("must be 1 to {MAX_RAW_KEY_BYTES} bytes")));
    }
    Ok(KeyHash::fleet(&[raw.as_bytes()]).to_string())
}

/// The key hash a `{key}` path segment names: the raw key's fleet hash, or, with `?hash=1`,
/// the segment itself (16 hex digits, e.g. a key hash from `GET /v1/stats`).
pub fn key_hash_of(segment: &str, q: &Query) -> Result<String, ApiError> {
    if q.flag("hash")? {
        if !is_key_hash(segment) {
            return Err(ApiError::invalid("key", "with hash=1, must be 16 hexadecimal digits (a key hash)"));
        }
        return Ok(segment.to_ascii_lowercase());
    }
    fleet_hash("key", segment)
}

/// A rule (or tier) name: 1 to 64 of `A-Z a-z 0-9 - _ .`, as in the plugin configuration.
pub fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ApiError::invalid(field, "must be 1 to 64 characters among letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// 16 hexadecimal digits: a `KeyHash` as `{:016x}` (either case).
pub fn is_key_hash(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn who_is_required_and_one_line() {
        assert_eq!(Who::new(None, Some("r")).unwrap_err().message, "admin: is required");
        assert_eq!(Who::new(Some("a"), None).unwrap_err().message, "reason: is required");
        assert!(Who::new(Some(" "), Some("r")).unwrap_err().message.starts_with("admin: must be 1 to 64"));
        assert!(Who::new(Some("a"), Some("two\nlines")).unwrap_err().message.starts_with("reason: must be"));
        assert_eq!(Who::new(Some("alice"), Some("why")).unwrap(), Who { admin: "alice".into(), reason: "why".into() });
        let q = Query::parse(Some("admin=bob&reason=clean+up%21")).unwrap();
        assert_eq!(Who::from_query_or_body(&q, b"").unwrap().reason, "clean up!");
        let q = Query::parse(None).unwrap();
        assert_eq!(Who::from_query_or_body(&q, br#"{"admin":"c","reason":"d"}"#).unwrap().admin, "c");
    }

    #[test]
    fn queries_and_keys() {
        let q = Query::parse(Some("all=1&limit=5&x=%zz")).unwrap_err();
        assert_eq!(q.message, "x: invalid percent-encoding");
        let q = Query::parse(Some("all&limit=5&hash=0")).unwrap();
        assert!(q.flag("all").unwrap());
        assert!(!q.flag("hash").unwrap());
        // Exactly the values store/openapi.json lists for ?hash= and ?all=.
        for (v, want) in
            [("1", true), ("true", true), ("yes", true), ("", true), ("0", false), ("false", false), ("no", false)]
        {
            assert_eq!(Query::parse(Some(&format!("hash={v}"))).unwrap().flag("hash").unwrap(), want, "{v:?}");
        }
        for v in ["2", "TRUE", "on", " 1"] {
            let e = Query::parse(Some(&format!("hash={v}"))).unwrap().flag("hash").unwrap_err();
            assert_eq!(e.message, "hash: must be 1 or 0 (also true or false, yes or no)", "{v:?}");
        }
        assert_eq!(q.number("limit", 100, 1000).unwrap(), 5);
        assert_eq!(q.number("top", 10, 100).unwrap(), 10);
        let bad = Query::parse(Some("limit=0")).unwrap();
        assert_eq!(bad.number("limit", 1, 9).unwrap_err().message, "limit: must be a whole number from 1 to 9");
        assert_eq!(key_hash_of("sk-1", &Query::default()).unwrap(), KeyHash::fleet(&[b"sk-1"]).to_string());
        let hashed = Query::parse(Some("hash=1")).unwrap();
        assert_eq!(key_hash_of("00FF00FF00FF00FF", &hashed).unwrap(), "00ff00ff00ff00ff");
        assert!(key_hash_of("sk-1", &hashed).is_err());
        assert_eq!(fleet_hash("key", &"x".repeat(4097)).unwrap_err().message, "key: must be 1 to 4096 bytes");
    }
}
