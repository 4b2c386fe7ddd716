//! What clients see (contract §2): rate-limit headers, the 429 body, Retry-After.

use crate::algorithm::{Decision, Quota, NANOS_PER_SEC};
use crate::config::{HeaderFormat, Rule, Unit};
use crate::duration::Duration;

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
/// denied the request (the one the single-rule formats describe), if any.
pub fn rate_limit_headers(
    formats: &[HeaderFormat],
    applied: &[Applied],
    denier: Option<usize>,
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
        }
    }
    out
}

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

/// The JSON body of a denial.
pub fn denial_body(template: &str, applied: &Applied, code: &str) -> String {
    let retry = retry_after_secs(&applied.decision).map(|s| s.to_string()).unwrap_or_default();
    let message = template
        .replace("{rule}", &applied.rule.name)
        .replace("{limit}", &applied.limit().to_string())
        .replace("{window}", &applied.rule.window.to_string())
        .replace("{retry_after}", &retry);
    error_body(&message, applied.rule.unit.error_type(), code, &applied.rule.name)
}

pub fn error_body(message: &str, kind: &str, code: &str, rule: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "code": code, "rule": rule}}).to_string()
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
