//! `GET /v1/sync`: what every proxy polls on its tick to apply overrides and per-key limits
//! without a reload.
//!
//! The document carries a `version` (also the `ETag`); a proxy sends it back in
//! `If-None-Match` and gets `304` (one Redis GET) until an admin changes something. Overrides
//! carry their absolute expiry (`until_ms`), so a proxy expires them to the millisecond without
//! polling again; expired overrides are left out. The document is bounded: at most
//! `MAX_SYNC_ENTRIES` entries (writes beyond that are refused with 409).
//!
//! ```json
//! {"version": 1700000000123,
//!  "emergency": {"until_ms": 1700000600000} | null,
//!  "allow_keys": [{"key": "9f86d081884c7d65", "until_ms": 1700000600000}],
//!  "allow_ips": [{"cidr": "10.0.0.0/8", "until_ms": 1700000600000}],
//!  "grants": [{"key": "9f86d081884c7d65", "unlimited": false, "multiplier": 2.0, "until_ms": 1700000600000}],
//!  "key_limits": [{"key": "9f86d081884c7d65", "tier": "pro", "limits": {"per-key-rpm": {"limit": 600, "burst": 100}}}]}
//! ```

use axum::http::{header, HeaderMap};
use tollgate_core::global::wire::{AllowIp, AllowKey, Expiry, SyncDocument, SyncGrant};

use crate::key_limits::KeyLimits;
use crate::overrides::{Grant, Kind, Override};

/// Most entries (overrides and per-key limits together) in the sync document.
pub const MAX_SYNC_ENTRIES: usize = 10_000;

/// `"VERSION"`: the ETag of a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Whether `If-None-Match` names this version (a list of tags, weak or strong, or `*`).
pub fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    let tag = etag(version);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag))
}

/// The document at `now_ms`: active overrides only, sorted, at most `MAX_SYNC_ENTRIES` entries.
pub fn document(version: u64, overrides: &[Override], limits: &[(String, KeyLimits)], now_ms: u64) -> SyncDocument {
    let mut active: Vec<&Override> = overrides.iter().filter(|o| o.active(now_ms)).collect();
    active.sort_by(|a, b| {
        (a.kind.name(), &a.target, a.until_ms, &a.id).cmp(&(b.kind.name(), &b.target, b.until_ms, &b.id))
    });
    let emergency = active.iter().filter(|o| o.kind == Kind::Emergency).map(|o| o.until_ms).max();
    let mut doc = SyncDocument {
        version,
        emergency: emergency.map(|until_ms| Expiry { until_ms }),
        allow_keys: Vec::new(),
        allow_ips: Vec::new(),
        grants: Vec::new(),
        key_limits: Vec::new(),
    };
    let mut budget = MAX_SYNC_ENTRIES;
    for o in active {
        let Some(target) = &o.target else { continue };
        if budget == 0 {
            break;
        }
        budget -= 1;
        let (key, until_ms) = (target.clone(), o.until_ms);
        match (o.kind, o.grant) {
            (Kind::AllowKey, _) => doc.allow_keys.push(AllowKey { key, until_ms }),
            (Kind::AllowIp, _) => doc.allow_ips.push(AllowIp { cidr: key, until_ms }),
            (Kind::Grant, Some(g)) => doc.grants.push(SyncGrant {
                key,
                unlimited: g == Grant::Unlimited,
                multiplier: match g {
                    Grant::Unlimited => None,
                    Grant::Multiplier(m) => Some(m),
                },
                until_ms,
            }),
            _ => {}
        }
    }
    let mut key_limits: Vec<&(String, KeyLimits)> = limits.iter().collect();
    key_limits.sort_by(|a, b| a.0.cmp(&b.0));
    doc.key_limits = key_limits.into_iter().take(budget).map(|(k, l)| l.to_sync(k)).collect();
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::{json, Value};

    fn ov(id: &str, kind: Kind, target: Option<&str>, grant: Option<Grant>, until_ms: u64) -> Override {
        Override {
            id: id.into(),
            kind,
            target: target.map(str::to_string),
            grant,
            created_ms: 0,
            until_ms,
            admin: "a".into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn etags_match_weak_strong_lists_and_star() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(not_modified(&with("\"7\""), 7));
        assert!(not_modified(&with("W/\"7\""), 7));
        assert!(not_modified(&with("\"3\", \"7\""), 7));
        assert!(not_modified(&with("*"), 7));
        assert!(!not_modified(&with("\"8\""), 7));
        assert!(!not_modified(&with("7"), 7));
        assert!(!not_modified(&HeaderMap::new(), 7));
    }

    #[test]
    fn only_active_overrides_with_absolute_expiry() {
        let overrides = vec![
            ov("1", Kind::AllowKey, Some("00000000000000aa"), None, 2_000),
            ov("2", Kind::AllowKey, Some("00000000000000bb"), None, 1_000),
            ov("3", Kind::AllowIp, Some("10.0.0.0/8"), None, 5_000),
            ov("4", Kind::Emergency, None, None, 3_000),
            ov("5", Kind::Emergency, None, None, 4_000),
            ov("6", Kind::Grant, Some("00000000000000aa"), Some(Grant::Multiplier(2.0)), 9_000),
            ov("7", Kind::Grant, Some("00000000000000cc"), Some(Grant::Unlimited), 9_000),
        ];
        let limits = vec![(
            "00000000000000aa".to_string(),
            KeyLimits {
                tier: Some("pro".into()),
                limits: Default::default(),
                updated_ms: 0,
                admin: "a".into(),
                reason: "r".into(),
            },
        )];
        let doc = serde_json::to_value(document(42, &overrides, &limits, 1_000)).unwrap();
        assert_eq!(
            doc,
            json!({
                "version": 42,
                "emergency": {"until_ms": 4000},
                "allow_keys": [{"key": "00000000000000aa", "until_ms": 2000}],
                "allow_ips": [{"cidr": "10.0.0.0/8", "until_ms": 5000}],
                "grants": [
                    {"key": "00000000000000aa", "unlimited": false, "multiplier": 2.0, "until_ms": 9000},
                    {"key": "00000000000000cc", "unlimited": true, "multiplier": null, "until_ms": 9000}],
                "key_limits": [{"key": "00000000000000aa", "tier": "pro", "limits": {}}],
            })
        );
        assert_eq!(serde_json::to_value(document(42, &overrides, &[], 4_000)).unwrap()["emergency"], Value::Null);
    }

    #[test]
    fn the_document_is_bounded() {
        let overrides: Vec<Override> = (0..MAX_SYNC_ENTRIES + 10)
            .map(|i| ov(&i.to_string(), Kind::AllowKey, Some(&format!("{i:016x}")), None, 10))
            .collect();
        let doc = document(1, &overrides, &[], 0);
        assert_eq!(doc.allow_keys.len(), MAX_SYNC_ENTRIES);
    }
}
