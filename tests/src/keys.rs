//! API keys as tests present and look for them: the fleet hash a raw key becomes (the core's
//! own hashing, so tests see what proxies and the store see), unsigned JWT bearer tokens, and
//! one-rule-per-key plugin configurations.

use serde_json::{json, Value};

/// The fleet hash of a raw API key, as proxies compute it for a rule keyed on `["api_key"]`
/// and as the store and `tollgatectl replay` show it.
pub fn fleet_hash(raw: &str) -> String {
    tollgate_core::engine::hash::KeyHash::fleet(&[raw.as_bytes()]).to_string()
}

/// `Bearer HEADER.PAYLOAD.sig` with `{"alg":"none"}` and `claims` (the filter reads the claims,
/// it does not check signatures).
pub fn jwt(claims: &Value) -> String {
    format!("Bearer {}.{}.sig", b64url(br#"{"alg":"none"}"#), b64url(claims.to_string().as_bytes()))
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// One fixed-window rule `k` of `limit` requests per hour keyed on `key`, with the top-level
/// fields of `extra` added to the configuration.
pub fn per_key_config(key: &[&str], limit: u64, extra: Value) -> String {
    let mut config =
        json!({"rules": [{"name": "k", "key": key, "algorithm": "fixed_window", "limit": limit, "window": "1h"}]});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config.to_string()
}
