//! One recorded request, whatever log format it came from, and the times logs write.

use serde_json::Value;
use tollgate_core::llm::Usage;
use tollgate_core::request::Request;

/// A request read from a log line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// When the request started, in ns since the epoch (the simulation's clock).
    pub time_ns: u64,
    pub method: String,
    /// Path and query, as the filter sees `:path`.
    pub path: String,
    /// The status the proxy answered, when the log has it.
    pub status: Option<u16>,
    /// Request headers, lower-case names (pseudo-headers `:method`, `:path`, `:authority`
    /// included, as Envoy gives them to the filter).
    pub headers: Vec<(String, String)>,
    /// The connection's peer address (possibly with a port).
    pub peer: Option<String>,
    /// The request body (JSON), for body keys and LLM estimates.
    pub body: Option<Value>,
    /// Tokens the response reported, to settle token and cost reservations.
    pub usage: Option<Usage>,
    /// How long the request took (its reservations are settled, its concurrency slot released,
    /// that long after it started).
    pub duration_ns: u64,
}

impl Record {
    /// The filter's view of this request.
    pub fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            peer: self.peer.as_deref(),
            body: self.body.as_ref(),
        }
    }

    /// Add the pseudo-headers the filter sees (`:method`, `:path`), after the others.
    pub fn finish_headers(&mut self) {
        if !self.headers.iter().any(|(k, _)| k == ":method") {
            self.headers.push((":method".into(), self.method.clone()));
        }
        if !self.headers.iter().any(|(k, _)| k == ":path") {
            self.headers.push((":path".into(), self.path.clone()));
        }
    }
}

/// Why a line could not be read (shown with the line's place, never fatal).
pub type Unreadable = String;

/// A log time: RFC 3339 (`2025-01-31T12:00:00.123Z`, any fraction, `Z` or an offset), to ns
/// since the epoch.
pub fn parse_time(text: &str) -> Option<u64> {
    let ms = tollgate_core::time::rfc3339::parse_rfc3339(text)?;
    // parse_rfc3339 keeps milliseconds: add the digits below them.
    let mut sub_ms = 0u64;
    if let Some(frac) = text.get(19..).and_then(|t| t.strip_prefix('.')) {
        let digits: Vec<u8> = frac.bytes().take_while(u8::is_ascii_digit).collect();
        for (k, d) in digits.iter().skip(3).take(6).enumerate() {
            sub_ms += u64::from(d - b'0') * 10u64.pow(5 - k as u32);
        }
    }
    ms.checked_mul(1_000_000)?.checked_add(sub_ms)
}

/// A time given as a number: seconds since the epoch (fractions allowed) below 10^11,
/// milliseconds below 10^14, microseconds below 10^17, else nanoseconds. Whole numbers are
/// exact; a fraction is rounded to the nanosecond.
pub fn number_time(n: &serde_json::Number) -> Option<u64> {
    let scale = |magnitude: f64| -> u64 {
        if magnitude < 1e11 {
            1_000_000_000
        } else if magnitude < 1e14 {
            1_000_000
        } else if magnitude < 1e17 {
            1_000
        } else {
            1
        }
    };
    if let Some(i) = n.as_u64() {
        return i.checked_mul(scale(i as f64));
    }
    let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?;
    let unit = scale(f);
    let whole = f.trunc();
    let frac = ((f - whole) * unit as f64).round() as u64;
    (whole < u64::MAX as f64).then(|| (whole as u64).checked_mul(unit)?.checked_add(frac)).flatten()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.123456789Z"), Some(1_123_456_789));
        assert_eq!(parse_time("1970-01-01T01:00:00.000+01:00"), Some(0));
        assert_eq!(parse_time("2025-01-31T12:00:00.250Z"), Some(1_738_324_800_250_000_000));
        assert_eq!(parse_time("yesterday"), None);
        let n = |text: &str| number_time(&serde_json::from_str::<serde_json::Number>(text).unwrap());
        assert_eq!(n("1738324800.25"), Some(1_738_324_800_250_000_000));
        assert_eq!(n("1738324800"), Some(1_738_324_800_000_000_000));
        assert_eq!(n("1738324800250"), Some(1_738_324_800_250_000_000));
        assert_eq!(n("1738324800123.5"), Some(1_738_324_800_123_500_000));
        assert_eq!(n("1738324800250001"), Some(1_738_324_800_250_001_000));
        assert_eq!(n("1738324800250000001"), Some(1_738_324_800_250_000_001));
        assert_eq!(n("-1"), None);
    }
}
