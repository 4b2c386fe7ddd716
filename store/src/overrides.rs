//! Overrides: temporary exceptions an admin adds (`POST /v1/overrides`) and every proxy
//! applies (through `GET /v1/sync`) until they expire.
//!
//! - `allow_key`: the key is not limited; `allow_ip`: requests from the address or CIDR are
//!   not limited; `emergency`: no request is limited (the fleet-wide kill switch of the
//!   limiter); `grant`: the key's limits are multiplied (`multiplier`) or lifted
//!   (`unlimited`).
//! - Keys are hashed on arrival (`KeyHash::fleet`): only the 16-hex-digit hash is stored.
//!   Addresses and CIDRs are stored in canonical form (`10.0.0.0/8`, `2001:db8::/32`; a bare
//!   address gets `/32` or `/128`).
//! - Every override expires: `ttl` (`10m`) or `expires_at` (RFC 3339), at most `MAX_TTL_MS`
//!   ahead. An override is active while `now < until_ms` (milliseconds since the epoch).

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::input::{fleet_hash, Body, Place, Want, Who};
use tollgate_core::time::rfc3339;

/// The longest an override may last: 366 days.
pub const MAX_TTL_MS: u64 = 366 * 86_400_000;

/// Largest grant multiplier.
pub const MAX_MULTIPLIER: f64 = 1000.0;

/// Expired overrides stay listed (`GET /v1/overrides?all=1`) this long, then are dropped.
pub const KEEP_EXPIRED_MS: u64 = 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AllowKey,
    AllowIp,
    Emergency,
    Grant,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::AllowKey, Kind::AllowIp, Kind::Emergency, Kind::Grant];

    pub fn name(self) -> &'static str {
        match self {
            Kind::AllowKey => "allow_key",
            Kind::AllowIp => "allow_ip",
            Kind::Emergency => "emergency",
            Kind::Grant => "grant",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the target is a key (hashed on arrival).
    pub fn targets_key(self) -> bool {
        matches!(self, Kind::AllowKey | Kind::Grant)
    }
}

/// What a grant gives: no limit, or the limits multiplied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Grant {
    Unlimited,
    Multiplier(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub id: String,
    pub kind: Kind,
    /// The key hash (allow_key, grant), the canonical CIDR (allow_ip), None (emergency).
    pub target: Option<String>,
    /// Some for grants only.
    pub grant: Option<Grant>,
    pub created_ms: u64,
    pub until_ms: u64,
    pub admin: String,
    pub reason: String,
}

impl Override {
    pub fn active(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }

    /// The stored and answered form.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "kind": self.kind.name(),
            "target": self.target,
            "created_at": rfc3339::format_ms(self.created_ms),
            "expires_at": rfc3339::format_ms(self.until_ms),
            "until_ms": self.until_ms,
            "admin": self.admin,
            "reason": self.reason,
        });
        if let Some(g) = self.grant {
            v["unlimited"] = (g == Grant::Unlimited).into();
            v["multiplier"] = match g {
                Grant::Unlimited => Value::Null,
                Grant::Multiplier(m) => m.into(),
            };
        }
        v
    }

    /// The answered form, with `active` at `now_ms`.
    pub fn to_json_at(&self, now_ms: u64) -> Value {
        let mut v = self.to_json();
        v["active"] = self.active(now_ms).into();
        v
    }

    /// Read the stored form back (None if it is not one: skipped, never a panic).
    pub fn from_json(text: &str) -> Option<Override> {
        let v: Value = serde_json::from_str(text).ok()?;
        let kind = Kind::from_name(v.get("kind")?.as_str()?)?;
        let grant = match kind {
            Kind::Grant if v.get("unlimited").and_then(Value::as_bool) == Some(true) => Some(Grant::Unlimited),
            Kind::Grant => Some(Grant::Multiplier(v.get("multiplier")?.as_f64()?)),
            _ => None,
        };
        Some(Override {
            id: v.get("id")?.as_str()?.to_string(),
            kind,
            target: v.get("target").and_then(Value::as_str).map(str::to_string),
            grant,
            created_ms: v.get("created_ms").and_then(Value::as_u64).unwrap_or(0),
            until_ms: v.get("until_ms")?.as_u64()?,
            admin: v.get("admin").and_then(Value::as_str).unwrap_or_default().to_string(),
            reason: v.get("reason").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
    }

    /// Stored JSON: the answered form plus `created_ms`.
    pub fn to_stored(&self) -> String {
        let mut v = self.to_json();
        v["created_ms"] = self.created_ms.into();
        v.to_string()
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address: the canonical CIDR, or why not.
pub fn parse_cidr(text: &str) -> Result<String, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address or CIDR"))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= max && !p.starts_with('+') && (p == "0" || !p.starts_with('0')))
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
    };
    let bits: u128 = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_bits = u32::from(max - prefix);
    let host_mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    if bits & host_mask != 0 {
        let network = bits & !host_mask;
        let net: IpAddr = match ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(network as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(network)),
        };
        return Err(format!("{text:?} has host bits set (the network is {net}/{prefix})"));
    }
    Ok(format!("{ip}/{prefix}"))
}

/// The body of `POST /v1/overrides`.
#[derive(Debug, Deserialize)]
pub struct NewOverride {
    pub kind: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub unlimited: Option<bool>,
    #[serde(default)]
    pub multiplier: Option<f64>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a grant's multiplier must be.
fn multiplier_rule() -> String {
    format!("must be a number above 0, at most {MAX_MULTIPLIER}")
}

impl Body for NewOverride {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        match at {
            [] => Some(Want::Object),
            [Place::Field("unlimited")] => Some(Want::Bool),
            [Place::Field("multiplier")] => Some(Want::Said(multiplier_rule())),
            [Place::Field(_)] => Some(Want::String),
            _ => None,
        }
    }
}

/// Validate a `POST /v1/overrides` body into an override (its `id` empty: the caller names
/// it) and who asked. Errors name the field.
pub fn parse_new(body: NewOverride, now_ms: u64) -> Result<(Override, Who), ApiError> {
    let kind = Kind::from_name(&body.kind).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        ApiError::invalid("kind", format!("{:?}: must be one of {}", body.kind, names.join(", ")))
    })?;
    let target = match (kind, body.target.as_deref()) {
        (Kind::Emergency, None) => None,
        (Kind::Emergency, Some(_)) => return Err(ApiError::invalid("target", "must not be given for kind emergency")),
        (_, None) => return Err(ApiError::invalid("target", format!("is required for kind {}", kind.name()))),
        (Kind::AllowIp, Some(t)) => Some(parse_cidr(t.trim()).map_err(|why| ApiError::invalid("target", why))?),
        (_, Some(t)) => Some(fleet_hash("target", t)?),
    };
    let unlimited = body.unlimited;
    let multiplier = match body.multiplier {
        Some(m) if !(m.is_finite() && m > 0.0 && m <= MAX_MULTIPLIER) => {
            return Err(ApiError::invalid("multiplier", multiplier_rule()))
        }
        m => m,
    };
    let grant = match (kind, unlimited, multiplier) {
        (Kind::Grant, Some(true), None) => Some(Grant::Unlimited),
        (Kind::Grant, Some(true), Some(_)) => {
            return Err(ApiError::invalid("multiplier", "give either unlimited: true or multiplier, not both"))
        }
        (Kind::Grant, Some(false) | None, Some(m)) => Some(Grant::Multiplier(m)),
        (Kind::Grant, Some(false), None) => {
            return Err(ApiError::invalid("unlimited", "must be true, or give a multiplier instead"))
        }
        (Kind::Grant, None, None) => {
            return Err(ApiError::invalid("multiplier", "kind grant needs unlimited: true or a multiplier"))
        }
        (_, Some(_), _) => return Err(ApiError::invalid("unlimited", "is only for kind grant")),
        (_, None, Some(_)) => return Err(ApiError::invalid("multiplier", "is only for kind grant")),
        (_, None, None) => None,
    };
    let until_ms = match (body.ttl.as_deref(), body.expires_at.as_deref()) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("expires_at", "give either ttl or expires_at, not both")),
        (None, None) => return Err(ApiError::invalid("ttl", "one of ttl (e.g. \"10m\") or expires_at is required")),
        (Some(ttl), None) => {
            let d = tollgate_core::time::duration::Duration::parse(ttl)
                .map(|d| d.as_millis())
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    ApiError::invalid("ttl", format!("{ttl:?}: must be a duration like 90s, 10m, 2h or 7d"))
                })?;
            if d > MAX_TTL_MS {
                return Err(ApiError::invalid("ttl", "must be at most 366d"));
            }
            now_ms.saturating_add(d)
        }
        (None, Some(at)) => {
            let t = rfc3339::parse_rfc3339(at).ok_or_else(|| {
                ApiError::invalid("expires_at", format!("{at:?}: must be an RFC 3339 time like 2025-01-31T12:00:00Z"))
            })?;
            if t <= now_ms {
                return Err(ApiError::invalid("expires_at", "is in the past"));
            }
            if t - now_ms > MAX_TTL_MS {
                return Err(ApiError::invalid("expires_at", "must be at most 366 days ahead"));
            }
            t
        }
    };
    let who = Who::new(body.admin.as_deref(), body.reason.as_deref())?;
    let ov = Override {
        id: String::new(),
        kind,
        target,
        grant,
        created_ms: now_ms,
        until_ms,
        admin: who.admin.clone(),
        reason: who.reason.clone(),
    };
    Ok((ov, who))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn parse(body: &Value, now_ms: u64) -> Result<(Override, Who), ApiError> {
        parse_new(crate::input::decode(body.to_string().as_bytes())?, now_ms)
    }

    fn err(body: Value) -> String {
        parse(&body, NOW).unwrap_err().message
    }

    #[test]
    fn cidrs_are_validated_and_canonical() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.1.2.3").unwrap(), "10.1.2.3/32");
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(parse_cidr("2001:DB8::/32").unwrap(), "2001:db8::/32");
        assert_eq!(parse_cidr("::1").unwrap(), "::1/128");
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("host bits set (the network is 10.0.0.0/8)"));
        assert!(parse_cidr("2001:db8::1/32").unwrap_err().contains("2001:db8::/32"));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0/8", "sk-abc", "::/129", ""] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_every_kind() {
        let who = json!({"admin": "alice", "reason": "incident 42"});
        let with = |extra: Value| {
            let mut b = who.clone();
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            parse(&b, NOW).unwrap().0
        };
        let o = with(json!({"kind": "allow_key", "target": "sk-secret", "ttl": "10m"}));
        assert_eq!(
            o.target.as_deref(),
            Some(tollgate_core::engine::hash::KeyHash::fleet(&[b"sk-secret"]).to_string().as_str())
        );
        assert_eq!(o.until_ms, NOW + 600_000);
        let o = with(json!({"kind": "allow_ip", "target": "192.168.0.0/16", "expires_at": "2023-11-14T23:13:20Z"}));
        assert_eq!((o.target.as_deref(), o.until_ms), (Some("192.168.0.0/16"), NOW + 3_600_000));
        let o = with(json!({"kind": "emergency", "ttl": "2s"}));
        assert_eq!((o.target, o.grant, o.until_ms), (None, None, NOW + 2000));
        let o = with(json!({"kind": "grant", "target": "k", "unlimited": true, "ttl": "1h"}));
        assert_eq!(o.grant, Some(Grant::Unlimited));
        let o = with(json!({"kind": "grant", "target": "k", "multiplier": 2.5, "ttl": "1h"}));
        assert_eq!(o.grant, Some(Grant::Multiplier(2.5)));
        let back = Override::from_json(&Override { id: "x".into(), ..o.clone() }.to_stored()).unwrap();
        assert_eq!(back, Override { id: "x".into(), ..o });
    }

    #[test]
    fn errors_name_the_field() {
        let base = |v: Value| {
            let mut b = json!({"admin": "alice", "reason": "r", "ttl": "1m"});
            for (k, x) in v.as_object().unwrap() {
                b[k] = x.clone();
            }
            err(b)
        };
        assert_eq!(base(json!({})), "kind: is required");
        assert!(base(json!({"kind": "block"})).starts_with("kind: \"block\": must be one of allow_key"));
        assert_eq!(base(json!({"kind": "allow_key"})), "target: is required for kind allow_key");
        assert_eq!(base(json!({"kind": "emergency", "target": "x"})), "target: must not be given for kind emergency");
        assert!(base(json!({"kind": "allow_ip", "target": "300.0.0.1"})).starts_with("target: \"300.0.0.1\""));
        assert_eq!(base(json!({"kind": "allow_key", "target": ""})), "target: must be 1 to 4096 bytes");
        assert_eq!(
            base(json!({"kind": "grant", "target": "k"})),
            "multiplier: kind grant needs unlimited: true or a multiplier"
        );
        assert!(base(json!({"kind": "grant", "target": "k", "multiplier": 0})).starts_with("multiplier: must be"));
        assert!(base(json!({"kind": "grant", "target": "k", "multiplier": "2"})).starts_with("multiplier: must be"));
        assert_eq!(
            base(json!({"kind": "allow_key", "target": "k", "unlimited": true})),
            "unlimited: is only for kind grant"
        );
        assert_eq!(
            base(json!({"kind": "grant", "target": "k", "unlimited": false})),
            "unlimited: must be true, or give a multiplier instead"
        );
        assert!(base(json!({"kind": "emergency", "ttl": "10 minutes"})).starts_with("ttl: \"10 minutes\""));
        assert_eq!(base(json!({"kind": "emergency", "ttl": "0s"})).split(':').next(), Some("ttl"));
        assert_eq!(base(json!({"kind": "emergency", "ttl": "400d"})), "ttl: must be at most 366d");
        assert_eq!(
            base(json!({"kind": "emergency", "expires_at": "2020-01-01T00:00:00Z"})),
            "expires_at: give either ttl or expires_at, not both"
        );
        let mut b = json!({"admin": "a", "reason": "r", "kind": "emergency"});
        assert_eq!(err(b.clone()), "ttl: one of ttl (e.g. \"10m\") or expires_at is required");
        b["expires_at"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(err(b.clone()), "expires_at: is in the past");
        b["expires_at"] = json!("tomorrow");
        assert!(err(b).starts_with("expires_at: \"tomorrow\": must be an RFC 3339 time"));
        assert_eq!(err(json!({"kind": "emergency", "ttl": "1m", "reason": "r"})), "admin: is required");
        assert_eq!(err(json!({"kind": "emergency", "ttl": "1m", "admin": "a"})), "reason: is required");
        assert_eq!(err(json!([])), "body: must be an object");
        assert_eq!(err(json!({"kind": 5})), "kind: must be a string");
        assert_eq!(err(json!({"kind": "grant", "unlimited": "yes"})), "unlimited: must be true or false");
        assert_eq!(err(json!({"kind": "emergency", "ttl": 60})), "ttl: must be a string");
    }
}
