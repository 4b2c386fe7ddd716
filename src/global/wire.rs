//! The JSON between the filter and tollgate-store, defined once for both sides: the proxy API
//! (`POST /v1/check`, `/v1/lease`, `/v1/adjust`: bodies and answers) and the document of
//! `GET /v1/sync`. store/openapi.json describes the same JSON.
//!
//! What is on the wire: times in milliseconds (durations rounded up), key hashes as 16 hex
//! digits, optional request fields left out when unset, `null` where an answer has nothing.
//! Unknown fields are ignored everywhere (the store has never refused them).
//!
//! Each side reads as it needs: the store reads requests strictly (objects where the OpenAPI
//! says objects; it words refusals itself, by the path serde reports); the filter reads answers
//! leniently (a missing number is 0) and skips a sync entry it cannot read rather than the whole
//! document.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::engine::algorithm::{self, Algorithm, Quota};
use crate::engine::hash::KeyHash;

/// Body of `POST /v1/check`: every check passes, or none is charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(deserialize_with = "objects")]
    pub checks: Vec<CheckItem>,
}

/// One counter to check and charge. The first six fields name the counter (the rule's counter
/// of one key hash) and carry the rule's quota, as in every item of the proxy API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    pub rule: String,
    pub key: String,
    pub algorithm: String,
    pub limit: u64,
    pub window_ms: u64,
    /// Absent or null: `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Units to charge (0: a peek). Absent or null: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
    /// The client's address, for the store's top violators (not used for the decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The request's endpoint, for the store's top violators (not used for the decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Body of `POST /v1/lease`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    #[serde(deserialize_with = "objects")]
    pub leases: Vec<LeaseItem>,
}

/// Units to lease from a counter, after giving back the unspent units of an earlier lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseItem {
    pub rule: String,
    pub key: String,
    pub algorithm: String,
    pub limit: u64,
    pub window_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Most units to grant. Absent or null: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub want: Option<u64>,
    /// Unspent units refunded first. Absent or null: 0.
    #[serde(rename = "return", default, skip_serializing_if = "Option::is_none")]
    pub give_back: Option<u64>,
}

/// Body of `POST /v1/adjust`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustRequest {
    #[serde(deserialize_with = "objects")]
    pub adjustments: Vec<AdjustItem>,
}

/// Units to charge (`delta` > 0) or refund (< 0) once a response told the real cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustItem {
    pub rule: String,
    pub key: String,
    pub algorithm: String,
    pub limit: u64,
    pub window_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    pub delta: i64,
}

/// The counter fields of an item as the filter writes them: `burst` always given.
fn counter_fields(quota: &Quota) -> (u64, u64, Option<u64>) {
    (quota.limit, quota.window_ns / 1_000_000, Some(quota.burst))
}

impl CheckItem {
    pub fn new(rule: String, key: KeyHash, algorithm: Algorithm, quota: &Quota, cost: u64) -> CheckItem {
        let (limit, window_ms, burst) = counter_fields(quota);
        let (key, algorithm) = (key.to_string(), algorithm.name().to_string());
        CheckItem { rule, key, algorithm, limit, window_ms, burst, cost: Some(cost), ip: None, endpoint: None }
    }
}

impl LeaseItem {
    pub fn new(
        rule: String,
        key: KeyHash,
        algorithm: Algorithm,
        quota: &Quota,
        want: u64,
        give_back: u64,
    ) -> LeaseItem {
        let (limit, window_ms, burst) = counter_fields(quota);
        let (key, algorithm) = (key.to_string(), algorithm.name().to_string());
        LeaseItem { rule, key, algorithm, limit, window_ms, burst, want: Some(want), give_back: Some(give_back) }
    }
}

impl AdjustItem {
    pub fn new(rule: String, key: KeyHash, algorithm: Algorithm, quota: &Quota, delta: i64) -> AdjustItem {
        let (limit, window_ms, burst) = counter_fields(quota);
        let (key, algorithm) = (key.to_string(), algorithm.name().to_string());
        AdjustItem { rule, key, algorithm, limit, window_ms, burst, delta }
    }
}

/// Answer of `POST /v1/check`: one decision per check, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// True when every check allowed (and all were charged).
    #[serde(default)]
    pub allowed: bool,
    /// The first check that denied; null when allowed.
    #[serde(default)]
    pub denied_by: Option<usize>,
    pub results: Vec<Decision>,
}

/// One counter's decision on the wire (`algorithm::Decision` in milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_after_ms: u64,
    pub retry_after_ms: u64,
}

/// Answer of `POST /v1/lease`: one grant per lease, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub leases: Vec<LeaseGrant>,
}

/// Units granted, and the counter's state after the grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseGrant {
    pub granted: u64,
    pub remaining: u64,
    pub reset_after_ms: u64,
    pub retry_after_ms: u64,
}

/// Answer of `POST /v1/adjust`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkResponse {
    pub ok: bool,
}

/// Nanoseconds as wire milliseconds: rounded up, so a client never retries too early.
pub fn ms_ceil(ns: u64) -> u64 {
    ns.div_ceil(1_000_000)
}

fn ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

impl Decision {
    pub fn from_decision(d: &algorithm::Decision) -> Decision {
        Decision {
            allowed: d.allowed,
            remaining: d.remaining,
            reset_after_ms: ms_ceil(d.reset_after_ns),
            retry_after_ms: ms_ceil(d.retry_after_ns),
        }
    }

    pub fn decision(&self) -> algorithm::Decision {
        algorithm::Decision {
            allowed: self.allowed,
            remaining: self.remaining,
            reset_after_ns: ns(self.reset_after_ms),
            retry_after_ns: ns(self.retry_after_ms),
        }
    }
}

impl LeaseGrant {
    pub fn new(granted: u64, d: &algorithm::Decision) -> LeaseGrant {
        let Decision { remaining, reset_after_ms, retry_after_ms, .. } = Decision::from_decision(d);
        LeaseGrant { granted, remaining, reset_after_ms, retry_after_ms }
    }

    /// The counter's state as a decision: allowed when units were granted.
    pub fn decision(&self) -> algorithm::Decision {
        let LeaseGrant { granted, remaining, reset_after_ms, retry_after_ms } = *self;
        Decision { allowed: granted > 0, remaining, reset_after_ms, retry_after_ms }.decision()
    }
}

/// Answer of `GET /v1/sync`: the active overrides and per-key limits (`ETag`: the version).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncDocument {
    /// Sent back in `If-None-Match` (read from a number or a string of digits).
    #[serde(deserialize_with = "number_or_digits")]
    pub version: u64,
    /// Nothing is limited until then (null: no emergency override).
    #[serde(default)]
    pub emergency: Option<Expiry>,
    #[serde(default, deserialize_with = "readable")]
    pub allow_keys: Vec<AllowKey>,
    #[serde(default, deserialize_with = "readable")]
    pub allow_ips: Vec<AllowIp>,
    #[serde(default, deserialize_with = "readable")]
    pub grants: Vec<SyncGrant>,
    #[serde(default, deserialize_with = "readable")]
    pub key_limits: Vec<SyncKeyLimits>,
}

/// Milliseconds since the epoch an override lasts until (absent: forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    #[serde(default = "forever")]
    pub until_ms: u64,
}

/// A key hash that no rule limits until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowKey {
    pub key: String,
    #[serde(default = "forever")]
    pub until_ms: u64,
}

/// Addresses (a CIDR) that no rule limits until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowIp {
    pub cidr: String,
    #[serde(default = "forever")]
    pub until_ms: u64,
}

/// A key hash whose limits are lifted (`unlimited`) or multiplied until `until_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncGrant {
    pub key: String,
    #[serde(default)]
    pub unlimited: bool,
    /// Null when unlimited.
    #[serde(default)]
    pub multiplier: Option<f64>,
    #[serde(default = "forever")]
    pub until_ms: u64,
}

/// A key hash's tier and its own limits of some rules, set through the admin API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncKeyLimits {
    pub key: String,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub limits: BTreeMap<String, RuleLimit>,
}

/// A rule's limit and burst for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLimit {
    pub limit: u64,
    /// Absent or null: `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

fn forever() -> u64 {
    u64::MAX
}

/// A struct read from a JSON object only. (serde also reads a struct from an array, field by
/// position; the wire has no such thing, and the store refuses it.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Object<T>, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// A list of objects (see [`Object`]).
fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Object<T>>::deserialize(d)?.into_iter().map(|o| o.0).collect())
}

/// A list keeping the entries that read (anything but a list reads as empty).
fn readable<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(entries) => entries.into_iter().filter_map(|e| T::deserialize(e).ok()).collect(),
        _ => Vec::new(),
    })
}

fn number_or_digits<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| de::Error::custom("a version: a whole number, or one in a string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NANOS: u64 = 1_000_000;

    #[test]
    fn requests_carry_hashes_and_milliseconds_and_leave_out_what_is_unset() {
        let q = Quota { limit: 100, window_ns: 60_000 * NANOS, burst: 10 };
        let item = CheckItem::new("r".into(), KeyHash(0xabc), Algorithm::Gcra, &q, 2);
        let body = serde_json::to_value(CheckRequest { checks: vec![item] }).unwrap();
        assert_eq!(
            body,
            json!({"checks": [{"rule": "r", "key": "0000000000000abc", "algorithm": "gcra", "limit": 100,
                               "window_ms": 60000, "burst": 10, "cost": 2}]})
        );
        let lease = LeaseItem::new("r".into(), KeyHash(1), Algorithm::FixedWindow, &q, 5, 3);
        let body = serde_json::to_value(LeaseRequest { leases: vec![lease] }).unwrap();
        assert_eq!((body["leases"][0]["want"].clone(), body["leases"][0]["return"].clone()), (json!(5), json!(3)));
        let adjust = AdjustItem::new("r".into(), KeyHash(1), Algorithm::FixedWindow, &q, -4);
        let body = serde_json::to_value(AdjustRequest { adjustments: vec![adjust] }).unwrap();
        assert_eq!(body["adjustments"][0]["delta"], json!(-4));
        // What the store reads back: optional fields absent or null are None.
        let read: CheckRequest = serde_json::from_value(json!({"checks": [
            {"rule": "r", "key": "00ff00ff00ff00ff", "algorithm": "gcra", "limit": 1, "window_ms": 1,
             "burst": null, "extra": "ignored"}]}))
        .unwrap();
        assert_eq!((read.checks[0].burst, read.checks[0].cost), (None, None));
    }

    #[test]
    fn items_are_objects_never_arrays() {
        let by_position = json!({"checks": [["r", "00ff00ff00ff00ff", "gcra", 1, 1]]});
        assert!(serde_json::from_value::<CheckRequest>(by_position).is_err());
        let fields = json!({"checks": [{"rule": "r", "key": "00ff00ff00ff00ff", "algorithm": "gcra", "limit": 1,
                                        "window_ms": 1}]});
        assert!(serde_json::from_value::<CheckRequest>(fields).is_ok());
    }

    #[test]
    fn decisions_round_milliseconds_up() {
        let d = algorithm::Decision { allowed: true, remaining: 3, reset_after_ns: 1, retry_after_ns: 2 * NANOS };
        let wire = Decision::from_decision(&d);
        assert_eq!(
            serde_json::to_value(wire).unwrap(),
            json!({"allowed": true, "remaining": 3, "reset_after_ms": 1, "retry_after_ms": 2})
        );
        assert_eq!(wire.decision().reset_after_ns, NANOS);
        let grant = LeaseGrant::new(0, &d);
        assert!(!grant.decision().allowed, "nothing granted");
        let answer = CheckResponse { allowed: true, denied_by: None, results: vec![wire] };
        assert_eq!(serde_json::to_value(answer).unwrap()["denied_by"], json!(null));
    }

    #[test]
    fn sync_documents_keep_what_reads() {
        let doc: SyncDocument = serde_json::from_value(json!({
            "version": "8",
            "allow_keys": [{"key": "00000000000000aa"}, {"until_ms": 5}, 7],
            "allow_ips": "not a list",
            "grants": [{"key": "00000000000000bb", "unlimited": true, "multiplier": null, "until_ms": 9}],
            "key_limits": [{"key": "00000000000000cc", "limits": {"r": {"limit": 7}}}]}))
        .unwrap();
        assert_eq!(doc.version, 8);
        assert_eq!(doc.emergency, None);
        assert_eq!(doc.allow_keys, vec![AllowKey { key: "00000000000000aa".into(), until_ms: u64::MAX }]);
        assert!(doc.allow_ips.is_empty());
        assert_eq!(doc.grants[0].multiplier, None);
        assert_eq!(doc.key_limits[0].limits["r"], RuleLimit { limit: 7, burst: None });
        let written = serde_json::to_value(SyncDocument { version: 1, ..doc }).unwrap();
        assert_eq!(written["version"], json!(1));
        assert_eq!(written["emergency"], json!(null));
        assert_eq!(
            written["key_limits"][0],
            json!({"key": "00000000000000cc", "tier": null, "limits": {"r": {"limit": 7}}})
        );
        assert!(serde_json::from_value::<SyncDocument>(json!({"version": "seven"})).is_err());
    }
}
