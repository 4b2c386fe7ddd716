//! Times in RFC 3339 in UTC (`2025-01-31T12:00:00.250Z`) to and from milliseconds since the
//! epoch, with the core's civil-date arithmetic (`crate::time::calendar::civil`, after H. Hinnant's
//! `days_from_civil`).

use crate::time::calendar::civil::{civil_from_days, days_from_civil, days_in_month};

/// Latest accepted time: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: u64 = 253_402_300_799_999;

const MS_PER_DAY: u64 = 86_400_000;

/// `2025-01-31T12:00:00.250Z` (always milliseconds, always UTC).
pub fn format_ms(ms: u64) -> String {
    let ms = ms.min(MAX_MS);
    let (y, mo, d) = civil_from_days((ms / MS_PER_DAY) as i64);
    let in_day = ms % MS_PER_DAY;
    let (h, mi, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Parse an RFC 3339 date-time (`T` or space between date and time, optional fraction, `Z` or
/// `±HH:MM`) to ms since the epoch (a fraction finer than 1 ms is truncated). None when it is
/// malformed, not a real date, or outside 1970..=9999.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (i64::from(num(0, 4)?), num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut milli = 0u64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        for (k, digit) in b[start..i].iter().take(3).enumerate() {
            milli += u64::from(digit - b'0') * 10u64.pow(2 - k as u32);
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(&c @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 60 + om);
            if c == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // A leap second (:60) counts as the next second.
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_min * 60;
    let ms = u64::try_from(secs).ok()?.checked_mul(1000)?.checked_add(milli)?;
    (ms <= MAX_MS).then_some(ms)
}

/// A point in time given as RFC 3339, as milliseconds since the epoch (digits only), or as a
/// duration (`15m`, `2h`, `7d`) meaning that long before `now_ms`.
pub fn parse_time_or_ago(text: &str, now_ms: u64) -> Option<u64> {
    if let Some(ms) = parse_rfc3339(text) {
        return Some(ms);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().filter(|ms| *ms <= MAX_MS);
    }
    let ago = crate::time::duration::Duration::parse(text)?;
    Some(now_ms.saturating_sub(ago.as_millis()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.1234+01:00"), Some(1_700_000_000_123));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20z"), Some(1_700_000_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999Z"), Some(MAX_MS));
        for ms in (0..400u64).map(|i| i * 7_919_999_937 + 13) {
            assert_eq!(parse_rfc3339(&format_ms(ms)), Some(ms), "{}", format_ms(ms));
        }
    }

    #[test]
    fn rejects_malformed_and_impossible_dates() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20Zjunk",
            "२०२३-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_mean_ago() {
        assert_eq!(parse_time_or_ago("10m", 1_000_000), Some(400_000));
        assert_eq!(parse_time_or_ago("1d", 5), Some(0));
        assert_eq!(parse_time_or_ago("soon", 5), None);
        assert_eq!(parse_time_or_ago("1700000000123", 5), Some(1_700_000_000_123));
    }
}
