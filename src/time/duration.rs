//! Durations as written in the config: an integer and a unit (`250ms`, `10s`, `1m`, `1h`, `1d`).

use crate::time::NANOS_PER_SEC;

/// A span of time in nanoseconds, parsed from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    pub fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(NANOS_PER_SEC))
    }

    pub fn from_millis(ms: u64) -> Duration {
        Duration(ms.saturating_mul(1_000_000))
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Whole seconds, rounded up (the unit of `Retry-After` and reset headers).
    pub fn ceil_secs(self) -> u64 {
        self.0.div_ceil(NANOS_PER_SEC)
    }

    /// Parse `"<integer><unit>"` with unit one of `ms`, `s`, `m`, `h`, `d`.
    pub fn parse(text: &str) -> Option<Duration> {
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() || digits.len() > 12 {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        let nanos_per_unit: u64 = match unit {
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            _ => return None,
        };
        n.checked_mul(nanos_per_unit).map(Duration)
    }
}

impl std::fmt::Display for Duration {
    /// The shortest exact form: `1d`, `1h`, `90s`, `250ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(u64, &str); 5] = [
            (86_400 * NANOS_PER_SEC, "d"),
            (3_600 * NANOS_PER_SEC, "h"),
            (60 * NANOS_PER_SEC, "m"),
            (NANOS_PER_SEC, "s"),
            (1_000_000, "ms"),
        ];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{}", self.0 / size, unit);
            }
        }
        if self.0 == 0 {
            return write!(f, "0s");
        }
        write!(f, "{}ns", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(Duration::parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(Duration::parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(Duration::parse("1m"), Some(Duration::from_secs(60)));
        assert_eq!(Duration::parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(Duration::parse("1d"), Some(Duration::from_secs(86400)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "5x", "s", "1", "-1s", "1.5s", "1 s", "1sec", "99999999999999d", "1S"] {
            assert_eq!(Duration::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn displays_shortest_exact_form() {
        assert_eq!(Duration::from_secs(60).to_string(), "1m");
        assert_eq!(Duration::from_secs(90).to_string(), "90s");
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
        assert_eq!(Duration::from_secs(86400).to_string(), "1d");
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(Duration(1).ceil_secs(), 1);
        assert_eq!(Duration::from_secs(2).ceil_secs(), 2);
        assert_eq!(Duration(0).ceil_secs(), 0);
    }
}
