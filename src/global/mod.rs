//! Global rules (`scope: global`): what the filter sends to tollgate-store and how it reads the
//! answer. (What it does when the store cannot answer is `filter::failure_mode`; leases are
//! `lease`.) Pure: the host dispatches the HTTP calls.

pub mod lease;
pub mod wire;

use crate::engine::algorithm::{Algorithm, Decision, Quota};
use crate::engine::hash::KeyHash;

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

/// Body of `POST /v1/check`.
pub fn check_body(checks: &[GlobalCheck], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let checks =
        checks.iter().map(|c| wire::CheckItem::new(rule_name(c.rule), c.key, c.algorithm, &c.quota, c.cost)).collect();
    serde_json::to_vec(&wire::CheckRequest { checks }).unwrap_or_default()
}

/// Body of `POST /v1/lease`: `want` units now, `give_back` unspent units returned first.
pub fn lease_body(items: &[(GlobalCheck, u64, u64)], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let leases = items
        .iter()
        .map(|(c, want, give_back)| {
            wire::LeaseItem::new(rule_name(c.rule), c.key, c.algorithm, &c.quota, *want, *give_back)
        })
        .collect();
    serde_json::to_vec(&wire::LeaseRequest { leases }).unwrap_or_default()
}

/// Body of `POST /v1/adjust`.
pub fn adjust_body(items: &[(GlobalCheck, i64)], rule_name: impl Fn(usize) -> String) -> Vec<u8> {
    let adjustments = items
        .iter()
        .map(|(c, delta)| wire::AdjustItem::new(rule_name(c.rule), c.key, c.algorithm, &c.quota, *delta))
        .collect();
    serde_json::to_vec(&wire::AdjustRequest { adjustments }).unwrap_or_default()
}

/// Why a store call did not give an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// No answer within `store.timeout` (or the cluster was unreachable).
    Timeout,
    /// An answer that is not a 200 with the expected JSON.
    Error,
}

/// The store's answer to `/v1/check`: one decision per check, and which denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckAnswer {
    pub decisions: Vec<Decision>,
    pub denied_by: Option<usize>,
}

/// A 200 answer's JSON (no answer: a timeout).
fn answer<T: serde::de::DeserializeOwned>(status: Option<u32>, body: &[u8]) -> Result<T, StoreFailure> {
    match status {
        None => Err(StoreFailure::Timeout),
        Some(200) => serde_json::from_slice(body).map_err(|_| StoreFailure::Error),
        Some(_) => Err(StoreFailure::Error),
    }
}

pub fn parse_check(status: Option<u32>, body: &[u8], expected: usize) -> Result<CheckAnswer, StoreFailure> {
    let a: wire::CheckResponse = answer(status, body)?;
    if a.results.len() != expected {
        return Err(StoreFailure::Error);
    }
    let decisions: Vec<Decision> = a.results.iter().map(wire::Decision::decision).collect();
    let denied_by = (!a.allowed).then(|| decisions.iter().position(|d| !d.allowed).unwrap_or(0));
    Ok(CheckAnswer { decisions, denied_by })
}

/// One lease answer: units granted and the counter's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub granted: u64,
    pub decision: Decision,
}

pub fn parse_lease(status: Option<u32>, body: &[u8], expected: usize) -> Result<Vec<Grant>, StoreFailure> {
    let a: wire::LeaseResponse = answer(status, body)?;
    if a.leases.len() != expected {
        return Err(StoreFailure::Error);
    }
    Ok(a.leases.iter().map(|g| Grant { granted: g.granted, decision: g.decision() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::algorithm::NANOS_PER_SEC;
    use serde_json::{json, Value};

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
