//! What clients see (contract §2, §6): rate-limit headers, error bodies in the caller's
//! provider's shape, Retry-After. Every error body is valid JSON whatever the rule name or
//! message holds.

use crate::config::{ErrorFormat, HeaderFormat, Rule, Unit};
use crate::engine::algorithm::{Decision, Nanos, Quota, NANOS_PER_SEC};
use crate::time::duration::Duration;
use serde_json::json;

/// One rule as applied to a request, for headers.
#[derive(Clone, Copy, Debug)]
pub struct Applied<'a> {
    pub rule: &'a Rule,
    pub quota: Quota,
    pub decision: Decision,
}

impl Applied<'_> {
    fn limit(&self) -> u64 {
        match self.rule.algorithm {
            Some(a) => a.capacity(&self.quota).max(self.quota.limit),
            None => self.quota.limit,
        }
    }

    fn reset_secs(&self) -> u64 {
        Duration(self.decision.reset_after_ns).ceil_secs()
    }
}

/// `Retry-After` in whole seconds (rounded up, at least 1): a client that waits this long is
/// admitted. None when waiting cannot help (the cost exceeds the capacity).
pub fn retry_after_secs(d: &Decision) -> Option<u64> {
    if d.retry_after_ns == u64::MAX {
        return None;
    }
    Some(d.retry_after_ns.div_ceil(NANOS_PER_SEC).max(1))
}

/// Append `n` in decimal (without the formatting machinery: this runs on every request).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: always UTF-8.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

fn decimal(n: u64) -> String {
    let mut out = String::with_capacity(20);
    push_u64(&mut out, n);
    out
}

/// One IETF list: `"NAME";KEY1=V1;KEY2=V2` per applied rule, comma-separated.
fn ietf_list(applied: &[Applied], keys: [&str; 2], values: impl Fn(&Applied) -> (u64, u64)) -> String {
    let mut out = String::with_capacity(applied.iter().map(|a| a.rule.name.len() + 32).sum());
    for (i, a) in applied.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let (v1, v2) = values(a);
        out.push('"');
        out.push_str(&a.rule.name);
        out.push_str("\";");
        out.push_str(keys[0]);
        push_u64(&mut out, v1);
        out.push(';');
        out.push_str(keys[1]);
        push_u64(&mut out, v2);
    }
    out
}

/// The headers for the applied rules, in the configured formats. `denier`: the rule that
/// denied the request (the one the single-rule formats describe), if any. `now`: the time,
/// for formats that give resets as instants.
pub fn rate_limit_headers(
    formats: &[HeaderFormat],
    applied: &[Applied],
    denier: Option<usize>,
    now: Nanos,
) -> Vec<(&'static str, String)> {
    if applied.is_empty() || formats.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(formats.len() * 3);
    for format in formats {
        match format {
            HeaderFormat::Ietf => {
                let policy = ietf_list(applied, ["q=", "w="], |a| (a.limit(), a.rule.window.ceil_secs()));
                let state = ietf_list(applied, ["r=", "t="], |a| (a.decision.remaining, a.reset_secs()));
                out.push(("ratelimit-policy", policy));
                out.push(("ratelimit", state));
            }
            HeaderFormat::XRateLimit => {
                if let Some(a) = denier.and_then(|i| applied.get(i)).or_else(|| most_restrictive(applied.iter())) {
                    out.push(("x-ratelimit-limit", decimal(a.limit())));
                    out.push(("x-ratelimit-remaining", decimal(a.decision.remaining)));
                    out.push(("x-ratelimit-reset", decimal(a.reset_secs())));
                }
            }
            HeaderFormat::OpenAi => {
                let requests = most_restrictive(applied.iter().filter(|a| a.rule.unit == Unit::Requests));
                if let Some(a) = requests {
                    out.push(("x-ratelimit-limit-requests", decimal(a.limit())));
                    out.push(("x-ratelimit-remaining-requests", decimal(a.decision.remaining)));
                    out.push(("x-ratelimit-reset-requests", go_duration(a.decision.reset_after_ns)));
                }
                let tokens = most_restrictive(
                    applied
                        .iter()
                        .filter(|a| matches!(a.rule.unit, Unit::Tokens | Unit::InputTokens | Unit::OutputTokens)),
                );
                if let Some(a) = tokens {
                    out.push(("x-ratelimit-limit-tokens", decimal(a.limit())));
                    out.push(("x-ratelimit-remaining-tokens", decimal(a.decision.remaining)));
                    out.push(("x-ratelimit-reset-tokens", go_duration(a.decision.reset_after_ns)));
                }
            }
            HeaderFormat::Anthropic => {
                for (unit, [limit, remaining, reset]) in ANTHROPIC_HEADERS {
                    if let Some(a) = most_restrictive(applied.iter().filter(|a| a.rule.unit == unit)) {
                        out.push((limit, decimal(a.limit())));
                        out.push((remaining, decimal(a.decision.remaining)));
                        let at = now.saturating_add(a.decision.reset_after_ns);
                        out.push((reset, crate::time::calendar::rfc3339_utc(at)));
                    }
                }
            }
        }
    }
    out
}

/// Anthropic's `anthropic-ratelimit-*` trios, by the unit they describe.
const ANTHROPIC_HEADERS: [(Unit, [&str; 3]); 4] = [
    (
        Unit::Requests,
        [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ],
    ),
    (
        Unit::Tokens,
        [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ],
    ),
    (
        Unit::InputTokens,
        [
            "anthropic-ratelimit-input-tokens-limit",
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ],
    ),
    (
        Unit::OutputTokens,
        [
            "anthropic-ratelimit-output-tokens-limit",
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ],
    ),
];

/// The rule with the smallest share of its limit left (rules count different units), the
/// later reset on a tie.
fn most_restrictive<'a, 'b>(applied: impl Iterator<Item = &'b Applied<'a>>) -> Option<&'b Applied<'a>>
where
    'a: 'b,
{
    // remaining_x / limit_x against remaining_y / limit_y, without division.
    let left = |a: &Applied, other: &Applied| a.decision.remaining as u128 * other.limit().max(1) as u128;
    applied.min_by(|x, y| left(x, y).cmp(&left(y, x)).then(y.decision.reset_after_ns.cmp(&x.decision.reset_after_ns)))
}

/// OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`, `250ms`.
pub fn go_duration(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The shape of one request's error bodies: `response.format`, with `auto` resolved by the
/// path the client called (the official SDKs can only read their own provider's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    OpenAi,
    Anthropic,
    Gemini,
}

impl Shape {
    pub fn of(format: ErrorFormat, path: &str) -> Shape {
        match format {
            ErrorFormat::OpenAi => Shape::OpenAi,
            ErrorFormat::Anthropic => Shape::Anthropic,
            ErrorFormat::Gemini => Shape::Gemini,
            ErrorFormat::Auto => {
                let path = path.split('?').next().unwrap_or(path);
                if path.contains("/v1/messages") {
                    Shape::Anthropic
                } else if GEMINI_METHODS.iter().any(|m| path.ends_with(m)) {
                    Shape::Gemini
                } else {
                    Shape::OpenAi
                }
            }
        }
    }
}

/// Gemini API methods (`/v1beta/models/NAME:METHOD`) whose clients read Google's errors.
const GEMINI_METHODS: [&str; 5] =
    [":generateContent", ":streamGenerateContent", ":countTokens", ":embedContent", ":batchEmbedContents"];

/// One error Tollgate answers with (a denial, a missing key, an unknown model, the store down).
#[derive(Clone, Copy, Debug)]
pub struct ErrorReply<'a> {
    pub status: u32,
    pub message: &'a str,
    /// Tollgate's `type`: requests | tokens | cost | concurrent.
    pub kind: &'a str,
    /// Tollgate's `code`: rate_limit_exceeded, insufficient_quota, missing_key, ...
    pub code: &'a str,
    /// The rule that answered ("" when none).
    pub rule: &'a str,
    /// Seconds after which a retry can succeed (Gemini's `RetryInfo`).
    pub retry_after: Option<u64>,
}

/// The JSON body of an error, in `shape`. OpenAI's shape is contract §2's; Anthropic's and
/// Google's carry Tollgate's rule, type and code where their clients ignore extra fields.
pub fn error_body(shape: Shape, e: &ErrorReply) -> String {
    let value = match shape {
        Shape::OpenAi => json!({"error": {"message": e.message, "type": e.kind, "code": e.code, "rule": e.rule}}),
        Shape::Anthropic => json!({"type": "error", "error": {
            "type": anthropic_type(e.status), "message": e.message,
            "code": e.code, "rule": e.rule, "limit_type": e.kind}}),
        Shape::Gemini => {
            let mut details = vec![json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": e.code.to_ascii_uppercase(),
                "domain": "tollgate",
                "metadata": {"rule": e.rule, "type": e.kind, "code": e.code},
            })];
            if let Some(secs) = e.retry_after {
                details.push(
                    json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}),
                );
            }
            json!({"error": {"code": e.status, "message": e.message, "status": google_status(e.status), "details": details}})
        }
    };
    value.to_string()
}

/// Anthropic's error `type` for an HTTP status.
fn anthropic_type(status: u32) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The `google.rpc.Code` name Google's APIs pair with an HTTP status.
fn google_status(status: u32) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// The message of a denial: the configured template with its placeholders filled.
pub fn denial_message(template: &str, applied: &Applied) -> String {
    let retry = retry_after_secs(&applied.decision).map(|s| s.to_string()).unwrap_or_default();
    template
        .replace("{rule}", &applied.rule.name)
        .replace("{limit}", &applied.limit().to_string())
        .replace("{window}", &applied.rule.window.to_string())
        .replace("{retry_after}", &retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_display() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(NANOS_PER_SEC), "1s");
        assert_eq!(go_duration(360 * NANOS_PER_SEC), "6m0s");
        assert_eq!(go_duration(3723 * NANOS_PER_SEC), "1h2m3s");
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        let d = |ns| Decision { allowed: false, remaining: 0, reset_after_ns: 0, retry_after_ns: ns };
        assert_eq!(retry_after_secs(&d(1)), Some(1));
        assert_eq!(retry_after_secs(&d(1_000_000_001)), Some(2));
        assert_eq!(retry_after_secs(&d(u64::MAX)), None);
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    fn error(status: u32) -> ErrorReply<'static> {
        ErrorReply {
            status,
            message: "Rate limit exceeded: 1 per 1m",
            kind: "tokens",
            code: "rate_limit_exceeded",
            rule: "r\"<x>",
            retry_after: Some(7),
        }
    }

    #[test]
    fn auto_picks_the_shape_by_path() {
        let auto = |p| Shape::of(ErrorFormat::Auto, p);
        assert_eq!(auto("/v1/chat/completions"), Shape::OpenAi);
        assert_eq!(auto("/v1/messages"), Shape::Anthropic);
        assert_eq!(auto("/anthropic/v1/messages/count_tokens?beta=true"), Shape::Anthropic);
        assert_eq!(auto("/v1beta/models/gemini-2.5-pro:generateContent"), Shape::Gemini);
        assert_eq!(
            auto("/v1/projects/p/locations/l/publishers/google/models/m:streamGenerateContent?alt=sse"),
            Shape::Gemini
        );
        assert_eq!(auto("/v1/generateContent"), Shape::OpenAi, "a method is after a colon");
        assert_eq!(Shape::of(ErrorFormat::Gemini, "/v1/chat/completions"), Shape::Gemini);
    }

    #[test]
    fn every_shape_is_json_with_the_rule_kept() {
        for shape in [Shape::OpenAi, Shape::Anthropic, Shape::Gemini] {
            let v: serde_json::Value = serde_json::from_str(&error_body(shape, &error(429))).unwrap();
            let text = v.to_string();
            assert!(text.contains(r#"r\"<x>"#), "{shape:?}: {text}");
        }
        let g: serde_json::Value = serde_json::from_str(&error_body(Shape::Gemini, &error(429))).unwrap();
        assert_eq!(g["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(g["error"]["details"][1]["retryDelay"], "7s");
        let a: serde_json::Value = serde_json::from_str(&error_body(Shape::Anthropic, &error(403))).unwrap();
        assert_eq!(a["error"]["type"], "permission_error");
        let g: serde_json::Value = serde_json::from_str(&error_body(Shape::Gemini, &error(503))).unwrap();
        assert_eq!(g["error"]["status"], "UNAVAILABLE");
    }
}
