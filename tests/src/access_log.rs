//! Access-log lines for `tollgatectl replay`, in each format it reads, from requests whose
//! outcome is known by construction (the tests) or from a large synthetic workload (the
//! throughput benchmark, `make replay-bench`).

use serde_json::json;

/// One logged request.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Milliseconds since the epoch.
    pub t_ms: u64,
    pub method: &'static str,
    pub path: String,
    pub api_key: String,
    /// The client address, logged as X-Forwarded-For.
    pub client: String,
    pub status: u16,
    pub tokens: Option<u64>,
    pub duration_ms: u64,
}

/// RFC 3339 with milliseconds, UTC (as Envoy's %START_TIME%).
pub fn rfc3339(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let in_day = ms % 86_400_000;
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Envoy's JSON access log, as envoy/access-log.yaml's `json_format` writes it.
pub fn envoy_json(e: &Entry) -> String {
    json!({
        "start_time": rfc3339(e.t_ms),
        "method": e.method,
        "path": e.path,
        "response_code": e.status,
        "duration": e.duration_ms,
        "downstream_remote_address": "127.0.0.1:40000",
        "x_forwarded_for": e.client,
        "headers": {"x-api-key": e.api_key, "authorization": null, "x-tier": null},
        "total_tokens": e.tokens.map(|t| t.to_string()),
    })
    .to_string()
}

/// Envoy's default text format (no API key in it).
pub fn envoy_text(e: &Entry) -> String {
    format!(
        "[{}] \"{} {} HTTP/1.1\" {} - 0 96 {} {} \"{}\" \"replay-gen/1\" \"req-{}\" \"api.example\" \"127.0.0.1:8000\"",
        rfc3339(e.t_ms),
        e.method,
        e.path,
        e.status,
        e.duration_ms,
        e.duration_ms.saturating_sub(1),
        e.client,
        e.t_ms
    )
}

/// JSON Lines of requests (time as seconds since the epoch).
pub fn jsonl(e: &Entry) -> String {
    let mut v = json!({
        "time": e.t_ms as f64 / 1000.0,
        "method": e.method,
        "path": e.path,
        "headers": {"x-api-key": e.api_key, "x-forwarded-for": e.client},
        "status": e.status,
        "duration_ms": e.duration_ms,
    });
    if let Some(t) = e.tokens {
        v["tokens"] = t.into();
    }
    v.to_string()
}

fn entry(t_ms: u64, key: &str, client: &str) -> Entry {
    Entry {
        t_ms,
        method: "POST",
        path: "/v1/chat/completions".into(),
        api_key: key.into(),
        client: client.into(),
        status: 200,
        tokens: Some(100),
        duration_ms: 20,
    }
}

/// The known traffic, over `minutes` minutes from `start_ms` (a whole minute), against a
/// limit of `limit` requests per minute per key (a fixed window):
/// - `sk-double` (10.0.0.2) sends twice its limit, evenly: half of it is denied, the
///   second half of every minute;
/// - `sk-half` (10.0.0.3) sends half its limit, evenly: nothing is denied;
/// - `sk-burst` (10.0.0.4) sends `burst` requests at once, in the middle of the second
///   minute: `limit` pass, the rest is denied.
pub fn known(start_ms: u64, minutes: u64, limit: u64, burst: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    for m in 0..minutes {
        let base = start_ms + m * 60_000;
        let n = 2 * limit;
        for i in 0..n {
            out.push(entry(base + i * 60_000 / n, "sk-double", "10.0.0.2"));
        }
        let n = limit / 2;
        for i in 0..n {
            out.push(entry(base + i * 60_000 / n, "sk-half", "10.0.0.3"));
        }
        if m == 1 {
            for _ in 0..burst {
                out.push(entry(base + 30_500, "sk-burst", "10.0.0.4"));
            }
        }
    }
    out.sort_by_key(|e| e.t_ms);
    out
}

/// A large synthetic workload for the throughput benchmark: `n` requests at 1,000 per second
/// from `keys` API keys and 256 client addresses, LLM-style with token counts.
pub fn synthetic(start_ms: u64, n: u64, keys: u64) -> impl Iterator<Item = Entry> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |i| {
        // xorshift: a spread of keys, hot ones more often.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let k = if state.is_multiple_of(4) { (state >> 8) % 16 } else { (state >> 8) % keys.max(1) };
        let path = if state.is_multiple_of(3) { "/v1/embeddings" } else { "/v1/chat/completions" };
        Entry {
            t_ms: start_ms + i,
            method: "POST",
            path: path.into(),
            api_key: format!("sk-live-{k:06}"),
            client: format!("10.1.{}.{}", (k / 256) % 256, k % 256),
            status: 200,
            tokens: Some(50 + state % 500),
            duration_ms: 5 + state % 200,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_738_324_800_250), "2025-01-31T12:00:00.250Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_known_traffic_has_its_shape() {
        let k = known(0, 3, 60, 100);
        let count = |key: &str| k.iter().filter(|e| e.api_key == key).count();
        assert_eq!((count("sk-double"), count("sk-half"), count("sk-burst")), (360, 90, 100));
    }
}
