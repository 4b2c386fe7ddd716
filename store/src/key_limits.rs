//! Per-key limits (`PUT /v1/keys/{key}/limits`): a tier for the key and/or its own limit and
//! burst for some rules. Stored under the key hash; proxies apply them through `GET /v1/sync`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tollgate_core::global::wire::{self, Object};

use crate::error::ApiError;
use crate::input::{check_name, Body, Place, Want, Who};
use tollgate_core::time::rfc3339;

/// Most rules with their own limits for one key.
pub const MAX_RULES_PER_KEY: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleLimit {
    pub limit: u64,
    /// Defaults to `limit`, as in the plugin configuration.
    pub burst: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLimits {
    pub tier: Option<String>,
    pub limits: BTreeMap<String, RuleLimit>,
    pub updated_ms: u64,
    pub admin: String,
    pub reason: String,
}

fn limits_json(limits: &BTreeMap<String, RuleLimit>) -> Value {
    let m: Map<String, Value> =
        limits.iter().map(|(r, l)| (r.clone(), json!({"limit": l.limit, "burst": l.burst}))).collect();
    Value::Object(m)
}

impl KeyLimits {
    /// The stored and answered form.
    pub fn to_json(&self, key_hash: &str) -> Value {
        json!({
            "key": key_hash,
            "tier": self.tier,
            "limits": limits_json(&self.limits),
            "updated_at": rfc3339::format_ms(self.updated_ms),
            "updated_ms": self.updated_ms,
            "admin": self.admin,
            "reason": self.reason,
        })
    }

    /// The entry of `key_limits` in `GET /v1/sync`.
    pub fn to_sync(&self, key_hash: &str) -> wire::SyncKeyLimits {
        let limits = self
            .limits
            .iter()
            .map(|(rule, l)| (rule.clone(), wire::RuleLimit { limit: l.limit, burst: Some(l.burst) }))
            .collect();
        wire::SyncKeyLimits { key: key_hash.to_string(), tier: self.tier.clone(), limits }
    }

    pub fn from_json(text: &str) -> Option<KeyLimits> {
        let v: Value = serde_json::from_str(text).ok()?;
        let mut limits = BTreeMap::new();
        for (rule, l) in v.get("limits")?.as_object()? {
            let limit = l.get("limit")?.as_u64()?;
            limits.insert(rule.clone(), RuleLimit { limit, burst: l.get("burst")?.as_u64()? });
        }
        Some(KeyLimits {
            tier: v.get("tier").and_then(Value::as_str).map(str::to_string),
            limits,
            updated_ms: v.get("updated_ms").and_then(Value::as_u64).unwrap_or(0),
            admin: v.get("admin").and_then(Value::as_str).unwrap_or_default().to_string(),
            reason: v.get("reason").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
    }
}

/// The body of `PUT /v1/keys/{key}/limits`.
#[derive(Debug, Deserialize)]
pub struct PutLimits {
    #[serde(default)]
    pub tier: Option<String>,
    /// RULE: {"limit": N, "burst": M}.
    #[serde(default)]
    pub limits: Option<BTreeMap<String, Object<PutLimit>>>,
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PutLimit {
    pub limit: u64,
    #[serde(default)]
    pub burst: Option<u64>,
}

impl Body for PutLimits {
    fn want(at: &[Place<'_>]) -> Option<Want> {
        match at {
            [] => Some(Want::Object),
            [Place::Field("limits")] => {
                Some(Want::Said("must be an object of RULE: {\"limit\": N, \"burst\": M}".into()))
            }
            [Place::Field("limits"), _] => Some(Want::Object),
            [Place::Field("limits"), _, Place::Field("limit" | "burst")] => Some(Want::Positive),
            [Place::Field(_)] => Some(Want::String),
            _ => None,
        }
    }
}

/// Validate a `PUT /v1/keys/{key}/limits` body: `tier` and/or `limits`, plus `admin` and
/// `reason`. Errors name the field.
pub fn parse_put(body: PutLimits, now_ms: u64) -> Result<(KeyLimits, Who), ApiError> {
    if let Some(t) = &body.tier {
        check_name("tier", t)?;
    }
    let given = body.limits.unwrap_or_default();
    if given.len() > MAX_RULES_PER_KEY {
        return Err(ApiError::invalid("limits", format!("at most {MAX_RULES_PER_KEY} rules")));
    }
    let mut limits = BTreeMap::new();
    for (rule, Object(l)) in given {
        let path = format!("limits.{rule}");
        check_name(&path, &rule)?;
        let positive = |field: &str, n: u64| match n {
            0 => Err(ApiError::invalid(&format!("{path}.{field}"), "must be positive")),
            n => Ok(n),
        };
        let limit = positive("limit", l.limit)?;
        let burst = l.burst.map(|b| positive("burst", b)).transpose()?.unwrap_or(limit);
        limits.insert(rule, RuleLimit { limit, burst });
    }
    if body.tier.is_none() && limits.is_empty() {
        return Err(ApiError::invalid("tier", "give a tier, limits, or both (to remove them: DELETE)"));
    }
    let who = Who::new(body.admin.as_deref(), body.reason.as_deref())?;
    let kl =
        KeyLimits { tier: body.tier, limits, updated_ms: now_ms, admin: who.admin.clone(), reason: who.reason.clone() };
    Ok((kl, who))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(body: &Value, now_ms: u64) -> Result<(KeyLimits, Who), ApiError> {
        parse_put(crate::input::decode(body.to_string().as_bytes())?, now_ms)
    }

    fn err(body: Value) -> String {
        parse(&body, 1).unwrap_err().message
    }

    #[test]
    fn parses_and_round_trips() {
        let body = json!({"tier": "pro", "limits": {"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5}},
                          "admin": "alice", "reason": "contract"});
        let (kl, who) = parse(&body, 7).unwrap();
        assert_eq!(who.admin, "alice");
        assert_eq!(kl.limits["tpm"], RuleLimit { limit: 5, burst: 5 });
        let stored = kl.to_json("00ff00ff00ff00ff").to_string();
        assert_eq!(KeyLimits::from_json(&stored).unwrap(), kl);
        assert_eq!(
            serde_json::to_value(kl.to_sync("00ff00ff00ff00ff")).unwrap(),
            json!({"key": "00ff00ff00ff00ff", "tier": "pro",
                   "limits": {"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5, "burst": 5}}})
        );
    }

    #[test]
    fn errors_name_the_field() {
        let who = |mut v: Value| {
            v["admin"] = "a".into();
            v["reason"] = "r".into();
            err(v)
        };
        assert_eq!(who(json!({})), "tier: give a tier, limits, or both (to remove them: DELETE)");
        assert!(who(json!({"tier": "p r o"})).starts_with("tier: must be 1 to 64"));
        assert_eq!(who(json!({"tier": 5})), "tier: must be a string");
        assert!(who(json!({"limits": []})).starts_with("limits: must be an object"));
        assert!(who(json!({"limits": {"a b": {"limit": 1}}})).starts_with("limits.a b: must be 1 to 64"));
        assert_eq!(who(json!({"limits": {"r": {}}})), "limits.r.limit: is required");
        assert_eq!(who(json!({"limits": {"r": {"limit": 0}}})), "limits.r.limit: must be positive");
        assert_eq!(who(json!({"limits": {"r": {"limit": 5, "burst": -1}}})), "limits.r.burst: must be positive");
        assert_eq!(who(json!({"limits": {"r": 5}})), "limits.r: must be an object");
        assert_eq!(err(json!({"tier": "pro", "admin": "a"})), "reason: is required");
        assert_eq!(who(json!({"limits": {"r": [5]}})), "limits.r: must be an object");
        assert_eq!(who(json!({"limits": {"limit": {"limit": "5"}}})), "limits.limit.limit: must be a positive integer");
        let null_limits = json!({"tier": "pro", "limits": null, "admin": "a", "reason": "r"});
        assert!(parse(&null_limits, 1).unwrap().0.limits.is_empty(), "null is absent");
    }
}
