//! Inputs shared by the admin endpoints: who makes a write and why, raw keys (hashed on
//! arrival), and query strings. Every error names its field.

use serde_json::Value;
use tollgate_core::hash::KeyHash;

use crate::api::{is_key_hash, ApiError, Item};

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

    /// From the fields `admin` and `reason` of a JSON body.
    pub(crate) fn from_item(o: &Item<'_>) -> Result<Who, ApiError> {
        Who::new(o.opt_str("admin")?, o.opt_str("reason")?)
    }

    /// From the query parameters `admin` and `reason`, else from a JSON body's fields (for
    /// DELETE, which may carry either).
    pub fn from_query_or_body(q: &Query, body: &[u8]) -> Result<Who, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Who::new(q.get("admin"), q.get("reason"));
        }
        let v: Value = parse_json(body)?;
        let o = Item::new(&v, String::new())?;
        Who::new(q.get("admin").or(o.opt_str("admin")?), q.get("reason").or(o.opt_str("reason")?))
    }
}

pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("invalid JSON ({e})")))
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

/// A parsed query string (`application/x-www-form-urlencoded`).
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut out = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k).ok_or_else(|| ApiError::invalid("query", "invalid percent-encoding"))?;
            let v = percent_decode(v).ok_or_else(|| ApiError::invalid(&k, "invalid percent-encoding"))?;
            out.push((k, v));
        }
        Ok(Query(out))
    }

    /// The first value of `name` (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// `name=1|true|yes` (or a bare `name`): true; `0|false|no` or absent: false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()) {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("" | "1" | "true" | "yes") => Ok(true),
            Some(_) => Err(ApiError::invalid(name, "must be 1 or 0 (also true or false, yes or no)")),
        }
    }

    /// A whole number in `1..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::invalid(name, format!("must be a whole number from 1 to {max}"))),
        }
    }
}

/// Decode `%XX` escapes and `+` (space); None for a bad escape or invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
