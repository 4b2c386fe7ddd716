//! Global rules (`scope: global`): what the filter sends to tollgate-store and how it reads the
//! answer. (What it does when the store cannot answer is `filter::failure_mode`; leases are
//! `lease`.) Pure: the host dispatches the HTTP calls.

use crate::algorithm::{Algorithm, Decision, Quota};
use crate::hash::KeyHash;
use serde_json::{json, Value};

/// One global counter to check (strict) or lease from (batched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalCheck {
    pub rule: usize,
    pub algorithm: Algorithm,
    pub quota: Quota,
    pub key: KeyHash,
    pub cost: u64,
    /// The price a cost rule reserved at, for settlement.
    pub price: Option<crate::llm::PriceRef>,
}

impl GlobalCheck {
    fn json(&self, rule_name: &str) -> Value {
        json!({
            "rule": rule_name,
            "key": self.key.to_string(),
            "algorithm": self.algorithm.name(),
            "limit": self.quota.limit,
            "window_ms": self.quota.window_ns / 1_000_000,
            "burst": self.quota.burst,
        })
    }
}

/// Body of `POST /v1/check`.
pub fn check_body(checks: &[GlobalCheck], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let items: Vec<Value> = checks
        .iter()
        .map(|c| {
            let mut v = c.json(&rule_name(c.rule));
            v["cost"] = json!(c.cost);
            v
        })
        .collect();
    json!({ "checks": items }).to_string().into_bytes()
}

/// Body of `POST /v1/lease`: `want` units now, `give_back` unspent units returned first.
pub fn lease_body(items: &[(GlobalCheck, u64, u64)], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let items: Vec<Value> = items
        .iter()
        .map(|(c, want, give_back)| {
            let mut v = c.json(&rule_name(c.rule));
            v["want"] = json!(want);
            v["return"] = json!(give_back);
            v
        })
        .collect();
    json!({ "leases": items }).to_string().into_bytes()
}

/// Body of `POST /v1/adjust`.
pub fn adjust_body(items: &[(GlobalCheck, i64)], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let items: Vec<Value> = items
        .iter()
        .map(|(c, delta)| {
            let mut v = c.json(&rule_name(c.rule));
            v["delta"] = json!(delta);
            v
        })
        .collect();
    json!({ "adjustments": items }).to_string().into_bytes()
}

/// Why a store call did not give an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// No answer within `store.timeout` (or the cluster was unreachable).
    Timeout,
    /// An answer that is not a 200 with the expected JSON.
    Error,
}

fn decision(v: &Value) -> Decision {
    let ms = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0).saturating_mul(1_000_000);
    Decision {
        allowed: v.get("allowed").and_then(Value::as_bool).unwrap_or(false),
        remaining: v.get("remaining").and_then(Value::as_u64).unwrap_or(0),
        reset_after_ns: ms("reset_after_ms"),
        retry_after_ns: ms("retry_after_ms"),
    }
}

/// The store's answer to `/v1/check`: one decision per check, and which denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckAnswer {
    pub decisions: Vec<Decision>,
    pub denied_by: Option<usize>,
}

/// The `field` array of a 200 JSON answer, with `expected` items.
fn answer_items(
    status: Option<u32>,
    body: &[u8],
    field: &str,
    expected: usize,
) -> Result<(Value, Vec<Value>), StoreFailure> {
    let Some(status) = status else { return Err(StoreFailure::Timeout) };
    if status != 200 {
        return Err(StoreFailure::Error);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| StoreFailure::Error)?;
    let items = v.get(field).and_then(Value::as_array).filter(|a| a.len() == expected).cloned();
    let items = items.ok_or(StoreFailure::Error)?;
    Ok((v, items))
}

pub fn parse_check(status: Option<u32>, body: &[u8], expected: usize) -> Result<CheckAnswer, StoreFailure> {
    let (v, results) = answer_items(status, body, "results", expected)?;
    let decisions: Vec<Decision> = results.iter().map(decision).collect();
    let denied_by = match v.get("allowed").and_then(Value::as_bool) {
        Some(true) => None,
        _ => Some(decisions.iter().position(|d| !d.allowed).unwrap_or(0)),
    };
    Ok(CheckAnswer { decisions, denied_by })
}

/// One lease answer: units granted and the counter's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    pub decision: Decision,
}

pub fn parse_lease(status: Option<u32>, body: &[u8], expected: usize) -> Result<Vec<Grant>, StoreFailure> {
    let (_, items) = answer_items(status, body, "leases", expected)?;
    Ok(items
        .iter()
        .map(|i| {
            let granted = i.get("granted").and_then(Value::as_u64).unwrap_or(0);
            Grant { granted, decision: Decision { allowed: granted > 0, ..decision(i) } }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::NANOS_PER_SEC;

    fn check() -> GlobalCheck {
        GlobalCheck {
            rule: 0,
            algorithm: Algorithm::Gcra,
            quota: Quota { limit: 100, window_ns: 60 * NANOS_PER_SEC, burst: 10 },
            key: KeyHash(0xabc),
            cost: 2,
            price: None,
        }
    }

    #[test]
    fn check_body_carries_hashes_not_keys() {
        let body: Value = serde_json::from_slice(&check_body(&[check()], |_| "r".into())).unwrap();
        assert_eq!(
            body,
            json!({"checks": [{"rule": "r", "key": "0000000000000abc", "algorithm": "gcra", "limit": 100,
                               "window_ms": 60000, "burst": 10, "cost": 2}]})
        );
    }

    #[test]
    fn answers_and_failures() {
        let ok = br#"{"allowed":false,"denied_by":0,"results":[{"allowed":false,"remaining":0,"reset_after_ms":1500,"retry_after_ms":700}]}"#;
        let a = parse_check(Some(200), ok, 1).unwrap();
        assert_eq!(a.denied_by, Some(0));
        assert_eq!(a.decisions[0].retry_after_ns, 700_000_000);
        assert_eq!(parse_check(None, b"", 1), Err(StoreFailure::Timeout));
        assert_eq!(parse_check(Some(503), b"{}", 1), Err(StoreFailure::Error));
        assert_eq!(parse_check(Some(200), b"garbage", 1), Err(StoreFailure::Error));
        assert_eq!(parse_check(Some(200), br#"{"allowed":true,"results":[]}"#, 1), Err(StoreFailure::Error));
        let lease = br#"{"leases":[{"granted":5,"remaining":95,"reset_after_ms":10,"retry_after_ms":0}]}"#;
        assert_eq!(parse_lease(Some(200), lease, 1).unwrap()[0].granted, 5);
    }
}
