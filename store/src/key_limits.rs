//! Per-key limits (`PUT /v1/keys/{key}/limits`): a tier for the key and/or its own limit and
//! burst for some rules. Stored under the key hash; proxies apply them through `GET /v1/sync`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::admin_input::Who;
use crate::api::{check_name, ApiError, Item};
use crate::timefmt;

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
            "updated_at": timefmt::format_ms(self.updated_ms),
            "updated_ms": self.updated_ms,
            "admin": self.admin,
            "reason": self.reason,
        })
    }

    /// The entry of `key_limits` in `GET /v1/sync`.
    pub fn to_sync(&self, key_hash: &str) -> Value {
        json!({"key": key_hash, "tier": self.tier, "limits": limits_json(&self.limits)})
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

/// Validate a `PUT /v1/keys/{key}/limits` body: `tier` and/or `limits`, plus `admin` and
/// `reason`. Errors name the field.
pub fn parse_put(body: &Value, now_ms: u64) -> Result<(KeyLimits, Who), ApiError> {
    let o = Item::new(body, String::new())?;
    let tier = o.opt_str("tier")?;
    if let Some(t) = tier {
        check_name("tier", t)?;
    }
    let mut limits = BTreeMap::new();
    match o.get("limits") {
        None => {}
        Some(Value::Object(m)) => {
            if m.len() > MAX_RULES_PER_KEY {
                return Err(ApiError::invalid("limits", format!("at most {MAX_RULES_PER_KEY} rules")));
            }
            for (rule, v) in m {
                let path = format!("limits.{rule}");
                check_name(&path, rule)?;
                let item = Item::new(v, path)?;
                let limit = item.req_positive("limit")?;
                let burst = item.positive("burst")?.unwrap_or(limit);
                limits.insert(rule.clone(), RuleLimit { limit, burst });
            }
        }
        Some(_) => return Err(ApiError::invalid("limits", "must be an object of RULE: {\"limit\": N, \"burst\": M}")),
    }
    if tier.is_none() && limits.is_empty() {
        return Err(ApiError::invalid("tier", "give a tier, limits, or both (to remove them: DELETE)"));
    }
    let who = Who::from_item(&o)?;
    let kl = KeyLimits {
        tier: tier.map(str::to_string),
        limits,
        updated_ms: now_ms,
        admin: who.admin.clone(),
        reason: who.reason.clone(),
    };
    Ok((kl, who))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(body: Value) -> String {
        parse_put(&body, 1).unwrap_err().message
    }

    #[test]
    fn parses_and_round_trips() {
        let body = json!({"tier": "pro", "limits": {"per-key-rpm": {"limit": 600, "burst": 100}, "tpm": {"limit": 5}},
                          "admin": "alice", "reason": "contract"});
        let (kl, who) = parse_put(&body, 7).unwrap();
        assert_eq!(who.admin, "alice");
        assert_eq!(kl.limits["tpm"], RuleLimit { limit: 5, burst: 5 });
        let stored = kl.to_json("00ff00ff00ff00ff").to_string();
        assert_eq!(KeyLimits::from_json(&stored).unwrap(), kl);
        assert_eq!(
            kl.to_sync("00ff00ff00ff00ff"),
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
    }
}
