//! The proxy API's JSON: parsing and validating request bodies (every error names the field),
//! and building response bodies.

use serde_json::{json, Map, Value};
use tollgate_core::algorithm::{Algorithm, Decision, Quota};

use crate::counters::{ns_to_ms_ceil, BatchOutcome, Counter, LeaseOutcome};

/// Most items in one call (checks, leases or adjustments).
pub const MAX_ITEMS: usize = 256;

/// Longest `window_ms` (about 584 years): the window in nanoseconds must fit in a `u64`.
/// store/openapi.json states the same bound.
pub const MAX_WINDOW_MS: u64 = u64::MAX / 1_000_000;

/// An error answered as `{"error":{"message":..,"code":..}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError { status: 400, code: "invalid_request", message: format!("{field}: {why}") }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "code": self.code}})
    }
}

/// A check request item: the counter and its cost, and where the request came from (optional
/// fields a proxy may add for the admin statistics: the client IP and the endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckItem {
    pub counter: Counter,
    pub cost: u64,
    pub origin: Origin,
}

/// Optional `ip` and `endpoint` of a check item (only used for the top-violator statistics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address, canonical (`std::net::IpAddr` formatting).
    pub ip: Option<String>,
    /// The request's endpoint, e.g. `/v1/chat/completions` (1 to 256 characters).
    pub endpoint: Option<String>,
}

/// Longest `endpoint` of a check item.
pub const MAX_ENDPOINT_CHARS: usize = 256;

/// A lease request item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRequest {
    pub counter: Counter,
    pub want: u64,
    pub returned: u64,
}

pub fn parse_checks(body: &[u8]) -> Result<Vec<CheckItem>, ApiError> {
    items(body, "checks")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let o = Item::new(v, format!("checks[{i}]"))?;
            let counter = o.counter()?;
            let cost = o.opt_u64("cost")?.unwrap_or(1);
            let ip = match o.opt_str("ip")? {
                None => None,
                Some(t) => Some(
                    t.parse::<std::net::IpAddr>()
                        .map_err(|_| ApiError::invalid(&o.at("ip"), "must be an IPv4 or IPv6 address"))?
                        .to_string(),
                ),
            };
            let endpoint = match o.opt_str("endpoint")? {
                Some(e)
                    if e.is_empty() || e.chars().count() > MAX_ENDPOINT_CHARS || e.chars().any(char::is_control) =>
                {
                    return Err(ApiError::invalid(
                        &o.at("endpoint"),
                        format!("must be 1 to {MAX_ENDPOINT_CHARS} characters without control characters"),
                    ))
                }
                e => e.map(str::to_string),
            };
            Ok(CheckItem { counter, cost, origin: Origin { ip, endpoint } })
        })
        .collect()
}

pub fn parse_leases(body: &[u8]) -> Result<Vec<LeaseRequest>, ApiError> {
    items(body, "leases")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let o = Item::new(v, format!("leases[{i}]"))?;
            Ok(LeaseRequest {
                counter: o.counter()?,
                want: o.opt_u64("want")?.unwrap_or(0),
                returned: o.opt_u64("return")?.unwrap_or(0),
            })
        })
        .collect()
}

pub fn parse_adjustments(body: &[u8]) -> Result<Vec<(Counter, i64)>, ApiError> {
    items(body, "adjustments")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let o = Item::new(v, format!("adjustments[{i}]"))?;
            let counter = o.counter()?;
            let delta = match o.get("delta") {
                None => return Err(ApiError::invalid(&o.at("delta"), "is required")),
                Some(d) => d.as_i64().ok_or_else(|| ApiError::invalid(&o.at("delta"), "must be an integer"))?,
            };
            Ok((counter, delta))
        })
        .collect()
}

/// The body's top-level array `field`, with 1..=MAX_ITEMS items.
fn items(body: &[u8], field: &str) -> Result<Vec<Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("invalid JSON ({e})")))?;
    let Value::Object(mut top) = v else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    match top.remove(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(field, "is required")),
        Some(Value::Array(a)) if a.is_empty() => Err(ApiError::invalid(field, "must not be empty")),
        Some(Value::Array(a)) if a.len() > MAX_ITEMS => {
            Err(ApiError::invalid(field, format!("at most {MAX_ITEMS} items per call, got {}", a.len())))
        }
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ApiError::invalid(field, "must be an array")),
    }
}

/// A JSON object being validated: field accessors whose errors name the field by its path.
pub(crate) struct Item<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

impl<'a> Item<'a> {
    /// `path` names the object in error messages ("" for the top level of a body).
    pub(crate) fn new(v: &'a Value, path: String) -> Result<Item<'a>, ApiError> {
        match v {
            Value::Object(obj) => Ok(Item { obj, path }),
            _ => Err(ApiError::invalid(if path.is_empty() { "body" } else { &path }, "must be an object")),
        }
    }

    pub(crate) fn at(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// A field; `null` counts as absent.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    pub(crate) fn req_str(&self, field: &str) -> Result<&'a str, ApiError> {
        self.opt_str(field)?.ok_or_else(|| ApiError::invalid(&self.at(field), "is required"))
    }

    pub(crate) fn opt_str(&self, field: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| ApiError::invalid(&self.at(field), "must be a string")),
        }
    }

    pub(crate) fn opt_u64(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(ApiError::invalid(&self.at(field), "must be a non-negative integer")),
            },
        }
    }

    pub(crate) fn positive(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(0) => Err(ApiError::invalid(&self.at(field), "must be positive")),
                Some(n) => Ok(Some(n)),
                None if v.as_i64().is_some_and(|n| n <= 0) || v.as_f64().is_some_and(|f| f <= 0.0) => {
                    Err(ApiError::invalid(&self.at(field), "must be positive"))
                }
                None => Err(ApiError::invalid(&self.at(field), "must be a positive integer")),
            },
        }
    }

    pub(crate) fn req_positive(&self, field: &str) -> Result<u64, ApiError> {
        self.positive(field)?.ok_or_else(|| ApiError::invalid(&self.at(field), "is required"))
    }

    /// The counter fields shared by every item: rule, key, algorithm, limit, window_ms, burst.
    fn counter(&self) -> Result<Counter, ApiError> {
        let rule = self.req_str("rule")?;
        check_name(&self.at("rule"), rule)?;
        let key = self.req_str("key")?;
        if !is_key_hash(key) {
            return Err(ApiError::invalid(&self.at("key"), "must be 16 hexadecimal digits (the key hash)"));
        }
        let alg_name = self.req_str("algorithm")?;
        let algorithm = Algorithm::from_name(alg_name).ok_or_else(|| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            ApiError::invalid(&self.at("algorithm"), format!("{alg_name:?}: must be one of {}", names.join(", ")))
        })?;
        let limit = self.req_positive("limit")?;
        let window_ms = self.req_positive("window_ms")?;
        // Fails exactly above MAX_WINDOW_MS.
        let window_ns = window_ms.checked_mul(1_000_000).ok_or_else(|| {
            ApiError::invalid(
                &self.at("window_ms"),
                format!(
                    "must be at most {MAX_WINDOW_MS} (about 584 years: the window in nanoseconds must fit in 64 bits)"
                ),
            )
        })?;
        let burst = self.positive("burst")?.unwrap_or(limit);
        Ok(Counter {
            rule: rule.to_string(),
            key: key.to_ascii_lowercase(),
            algorithm,
            quota: Quota { limit, window_ns, burst },
        })
    }
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

fn decision_json(d: &Decision) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("allowed".into(), d.allowed.into());
    m.insert("remaining".into(), d.remaining.into());
    m.insert("reset_after_ms".into(), ns_to_ms_ceil(d.reset_after_ns).into());
    m.insert("retry_after_ms".into(), ns_to_ms_ceil(d.retry_after_ns).into());
    m
}

pub fn check_response(o: &BatchOutcome) -> Value {
    json!({
        "allowed": o.denied_by.is_none(),
        "denied_by": o.denied_by,
        "results": o.results.iter().map(|d| Value::Object(decision_json(d))).collect::<Vec<_>>(),
    })
}

pub fn lease_response(leases: &[LeaseOutcome]) -> Value {
    let items: Vec<Value> = leases
        .iter()
        .map(|l| {
            let mut m = decision_json(&l.decision);
            m.remove("allowed");
            m.insert("granted".into(), l.granted.into());
            Value::Object(m)
        })
        .collect();
    json!({ "leases": items })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_checks(body.as_bytes()).unwrap_err().message
    }

    const OK: &str =
        r#"{"rule":"per-key-rpm","key":"00ff00ff00ff00ff","algorithm":"token_bucket","limit":60,"window_ms":60000}"#;

    #[test]
    fn parses_defaults() {
        let c = parse_checks(format!(r#"{{"checks":[{OK}]}}"#).as_bytes()).unwrap();
        assert_eq!(c[0].cost, 1);
        assert_eq!(c[0].counter.quota, Quota { limit: 60, window_ns: 60_000_000_000, burst: 60 });
        assert_eq!(c[0].counter.redis_key(), "tollgate:{00ff00ff00ff00ff}:per-key-rpm");
        assert_eq!(c[0].origin, Origin::default());
    }

    #[test]
    fn origin_fields_are_validated_and_canonical() {
        let with = |k: &str, v: Value| {
            let mut o: Value = serde_json::from_str(OK).unwrap();
            o[k] = v;
            parse_checks(json!({"checks": [o]}).to_string().as_bytes())
        };
        let c = with("ip", json!("2001:DB8::1")).unwrap();
        assert_eq!(c[0].origin.ip.as_deref(), Some("2001:db8::1"));
        let c = with("endpoint", json!("/v1/chat/completions")).unwrap();
        assert_eq!(c[0].origin.endpoint.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(
            with("ip", json!("10.0.0.300")).unwrap_err().message,
            "checks[0].ip: must be an IPv4 or IPv6 address"
        );
        assert!(with("endpoint", json!("")).unwrap_err().message.starts_with("checks[0].endpoint: must be 1 to 256"));
        assert!(with("endpoint", json!("x".repeat(257))).is_err());
        assert_eq!(with("ip", json!(5)).unwrap_err().message, "checks[0].ip: must be a string");
    }

    #[test]
    fn errors_name_the_field() {
        let with = |k: &str, v: &str| {
            let mut o: Value = serde_json::from_str(OK).unwrap();
            o[k] = serde_json::from_str(v).unwrap();
            err(&json!({"checks": [o]}).to_string())
        };
        assert_eq!(with("window_ms", "0"), "checks[0].window_ms: must be positive");
        assert_eq!(with("window_ms", "-5"), "checks[0].window_ms: must be positive");
        assert!(with("window_ms", "18446744073710").starts_with("checks[0].window_ms: must be at most 18446744073709 "));
        let mut longest: Value = serde_json::from_str(OK).unwrap();
        longest["window_ms"] = MAX_WINDOW_MS.into();
        let c = parse_checks(json!({"checks": [longest]}).to_string().as_bytes()).unwrap();
        assert_eq!(c[0].counter.quota.window_ns, 18_446_744_073_709_000_000);
        assert_eq!(with("limit", "1.5"), "checks[0].limit: must be a positive integer");
        assert_eq!(with("key", "\"sk-raw\""), "checks[0].key: must be 16 hexadecimal digits (the key hash)");
        assert!(with("algorithm", "\"lru\"").starts_with("checks[0].algorithm: \"lru\": must be one of token_bucket"));
        assert_eq!(with("cost", "-1"), "checks[0].cost: must be a non-negative integer");
        assert!(with("rule", "\"a b\"").starts_with("checks[0].rule: must be 1 to 64"));
        assert_eq!(err("{}"), "checks: is required");
        assert_eq!(err(r#"{"checks":[]}"#), "checks: must not be empty");
        assert_eq!(err(r#"{"checks":[1]}"#), "checks[0]: must be an object");
        assert!(err("{").starts_with("body: invalid JSON"));
        assert_eq!(err(r#"{"checks":[{"key":"00ff00ff00ff00ff"}]}"#), "checks[0].rule: is required");
        let many: Vec<Value> = (0..257).map(|_| serde_json::from_str(OK).unwrap()).collect();
        assert_eq!(err(&json!({ "checks": many }).to_string()), "checks: at most 256 items per call, got 257");
        let e = parse_adjustments(
            br#"{"adjustments":[{"rule":"r","key":"00ff00ff00ff00ff","algorithm":"gcra","limit":1,"window_ms":1}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.message, "adjustments[0].delta: is required");
    }
}
