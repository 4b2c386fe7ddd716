//! Admin overrides and per-key limits: the static allow-lists of the plugin config, and the
//! copy each proxy pulls from tollgate-store (`GET /v1/sync`) and applies without a reload.
//! Keys are fleet hashes (`KeyHash::fleet` of the raw API key): no raw key is kept here.

use crate::config::TierLimit;
use crate::engine::algorithm::Quota;
use crate::engine::hash::KeyHash;
use crate::global::wire;
use crate::request::cidr::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;

/// A temporary grant for one key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grant {
    pub unlimited: bool,
    pub multiplier: f64,
    pub until_ms: u64,
}

/// Per-key limits set through the admin API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyLimits {
    pub tier: Option<String>,
    /// Rule name → (limit, burst).
    pub limits: Vec<(String, u64, u64)>,
}

/// Everything that overrides the configured limits for some requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// The store's version (sent back as `If-None-Match`).
    pub version: String,
    pub emergency_until_ms: Option<u64>,
    pub allow_keys: HashMap<u64, u64>,
    pub allow_ips: Vec<(Cidr, u64)>,
    pub grants: HashMap<u64, Grant>,
    pub key_limits: HashMap<u64, KeyLimits>,
}

/// Never expires (static allow-lists).
pub const FOREVER: u64 = u64::MAX;

fn hex_key(key: &str) -> Option<u64> {
    u64::from_str_radix(key, 16).ok()
}

impl Overrides {
    /// The static allow-lists of the plugin config.
    pub fn from_static(keys: &[String], ips: &[Cidr]) -> Overrides {
        Overrides {
            allow_keys: keys.iter().map(|k| (KeyHash::fleet(&[k.as_bytes()]).0, FOREVER)).collect(),
            allow_ips: ips.iter().map(|c| (*c, FOREVER)).collect(),
            ..Overrides::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.emergency_until_ms.is_none()
            && self.allow_keys.is_empty()
            && self.allow_ips.is_empty()
            && self.grants.is_empty()
            && self.key_limits.is_empty()
    }

    pub fn has_ips(&self) -> bool {
        !self.allow_ips.is_empty()
    }

    /// Parse a `/v1/sync` answer; entries that do not parse are skipped, not fatal.
    pub fn parse_sync(body: &[u8]) -> Option<Overrides> {
        let doc: wire::SyncDocument = serde_json::from_slice(body).ok()?;
        let mut o = Overrides {
            version: doc.version.to_string(),
            emergency_until_ms: doc.emergency.map(|e| e.until_ms),
            ..Overrides::default()
        };
        for e in doc.allow_keys {
            if let Some(k) = hex_key(&e.key) {
                o.allow_keys.insert(k, e.until_ms);
            }
        }
        for e in doc.allow_ips {
            if let Some(c) = Cidr::parse(&e.cidr) {
                o.allow_ips.push((c, e.until_ms));
            }
        }
        for e in doc.grants {
            if let Some(k) = hex_key(&e.key) {
                let multiplier = e.multiplier.filter(|m| m.is_finite() && *m > 0.0).unwrap_or(1.0);
                o.grants.insert(k, Grant { unlimited: e.unlimited, multiplier, until_ms: e.until_ms });
            }
        }
        for e in doc.key_limits {
            let Some(k) = hex_key(&e.key) else { continue };
            let limits = e
                .limits
                .into_iter()
                .filter(|(_, l)| l.limit > 0)
                .map(|(rule, l)| (rule, l.limit, l.burst.filter(|n| *n > 0).unwrap_or(l.limit)))
                .collect();
            o.key_limits.insert(k, KeyLimits { tier: e.tier, limits });
        }
        Some(o)
    }

    /// Whether the request passes every rule: emergency access, an allowed key or IP.
    pub fn bypasses(&self, key: Option<KeyHash>, ip: Option<&IpAddr>, now_ms: u64) -> bool {
        if self.emergency_until_ms.is_some_and(|u| now_ms < u) {
            return true;
        }
        if key.and_then(|k| self.allow_keys.get(&k.0)).is_some_and(|u| now_ms < *u) {
            return true;
        }
        ip.is_some_and(|ip| self.allow_ips.iter().any(|(c, u)| now_ms < *u && c.contains(ip)))
    }

    /// The tier set for this key through the admin API.
    pub fn tier(&self, key: Option<KeyHash>) -> Option<&str> {
        self.key_limits.get(&key?.0)?.tier.as_deref()
    }

    /// The limit of `rule` for this key: the per-key limit when set, then a grant.
    pub fn adjust(&self, key: Option<KeyHash>, rule: &str, base: TierLimit, now_ms: u64) -> TierLimit {
        let Some(key) = key else { return base };
        let mut limit = base;
        if let (Some(kl), TierLimit::Limited(q)) = (self.key_limits.get(&key.0), base) {
            if let Some((_, l, b)) = kl.limits.iter().find(|(r, _, _)| r == rule) {
                limit = TierLimit::Limited(Quota { limit: *l, burst: *b, ..q });
            }
        }
        match (self.grants.get(&key.0), limit) {
            (Some(g), _) if now_ms >= g.until_ms => limit,
            (Some(g), _) if g.unlimited => TierLimit::Unlimited,
            (Some(g), TierLimit::Limited(q)) => {
                let scale = |n: u64| ((n as f64) * g.multiplier).round().clamp(1.0, u64::MAX as f64) as u64;
                TierLimit::Limited(Quota { limit: scale(q.limit), burst: scale(q.burst), ..q })
            }
            _ => limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sync_answer_applies_to_the_second() {
        let k = KeyHash::fleet(&[b"sk-vip"]);
        let body = json!({"version": 7, "emergency": null,
            "allow_keys": [{"key": k.to_string(), "until_ms": 5000}],
            "allow_ips": [{"cidr": "10.0.0.0/8", "until_ms": 5000}],
            "grants": [{"key": "00000000000000aa", "unlimited": false, "multiplier": 2.0, "until_ms": 5000}],
            "key_limits": [{"key": "00000000000000bb", "tier": "pro", "limits": {"r": {"limit": 7}}}]});
        let o = Overrides::parse_sync(body.to_string().as_bytes()).unwrap();
        assert_eq!(o.version, "7");
        assert!(o.bypasses(Some(k), None, 4999));
        assert!(!o.bypasses(Some(k), None, 5000));
        assert!(o.bypasses(None, Some(&ip("10.1.1.1")), 1));
        let q = Quota { limit: 10, window_ns: 1, burst: 4 };
        let granted = o.adjust(Some(KeyHash(0xaa)), "r", TierLimit::Limited(q), 1);
        assert_eq!(granted, TierLimit::Limited(Quota { limit: 20, window_ns: 1, burst: 8 }));
        assert_eq!(o.adjust(Some(KeyHash(0xaa)), "r", TierLimit::Limited(q), 5000), TierLimit::Limited(q));
        assert_eq!(o.tier(Some(KeyHash(0xbb))), Some("pro"));
        assert_eq!(
            o.adjust(Some(KeyHash(0xbb)), "r", TierLimit::Limited(q), 1),
            TierLimit::Limited(Quota { limit: 7, window_ns: 1, burst: 7 })
        );
        let e = Overrides::parse_sync(br#"{"version":"8","emergency":{"until_ms":100}}"#).unwrap();
        assert!(e.bypasses(None, None, 99) && !e.bypasses(None, None, 100));
        assert!(Overrides::parse_sync(b"garbage").is_none());
    }
}
