//! Calendar windows: fixed windows whose boundaries are civil instants in a time zone (every
//! day at 06:00, every Monday at 00:00, the 1st of every month at 00:00 Europe/Berlin) rather
//! than multiples of a duration since the epoch.
//!
//! Invariants (property-tested in `tests.rs`):
//! - periods tile time: `period(t)` is `[start, end)` with `start <= t < end`, and the period
//!   after it starts exactly at `end`; no gaps, no overlaps;
//! - every `start` is a reset instant: the first instant whose local wall time is the reset
//!   time `at` on a reset date (in a spring-forward gap, the first instant after the gap; in
//!   an autumn fold, the earlier of the two instants): see [`Zone::first_instant_at`];
//! - `index` identifies a period and grows strictly from one period to the next; it depends
//!   only on the civil reset date (not on time-zone data), so a tzdb update never renumbers;
//! - everything is total: any `u64` clock works (the first period is cut at 0, the last at
//!   `u64::MAX`, 2554-07-21), and the hot path does not allocate.
//!
//! Cost: computing a period takes a few time-zone look-ups (about 0.5 us natively); the window
//! keeps the last period it computed, so asking again within it (nearly every request) is a
//! comparison under an uncontended lock (`Sync`, for the store's threads; never waited on).

pub mod civil;
mod zone;

#[cfg(test)]
mod tests;

pub use zone::Zone;

use crate::time::{Nanos, NANOS_PER_SEC};
use std::sync::Mutex;
use zone::DAY_SECS;

/// How often a calendar window resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cycle {
    /// Every day at `at` (`1d`).
    Day,
    /// Every week on `weekday` at `at` (`1w`).
    Week,
    /// Every `n` months (`n` divides 12: 1, 2, 3, 4, 6 or 12), on `day` at `at`, the blocks of
    /// months counted from January (`3mo` resets in January, April, July and October).
    Months(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// Name as written in the config (`mon` .. `sun`).
    pub fn name(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// 0 = Monday .. 6 = Sunday (as `civil::weekday_from_days`).
    pub fn number(self) -> u32 {
        match self {
            Weekday::Mon => 0,
            Weekday::Tue => 1,
            Weekday::Wed => 2,
            Weekday::Thu => 3,
            Weekday::Fri => 4,
            Weekday::Sat => 5,
            Weekday::Sun => 6,
        }
    }
}

/// One period of a calendar window: `[start_ns, end_ns)` in UNIX nanoseconds, and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    pub start_ns: Nanos,
    pub end_ns: Nanos,
    /// Days (`1d`), weeks (`1w`) or blocks of n months (`Nmo`) from 0000-01-01 (proleptic
    /// Gregorian) to the period's reset date: 2026-03-29 is day 740,069 for `1d`; March 2026 is
    /// month 24,314 for `1mo`. Strictly increasing with time.
    pub index: u64,
}

impl Period {
    /// Contains no instant: what the cache holds before the first period is computed.
    const EMPTY: Period = Period { start_ns: 0, end_ns: 0, index: 0 };

    pub fn contains(&self, now: Nanos) -> bool {
        self.start_ns <= now && now < self.end_ns
    }
}

/// A calendar window, built once at configure time.
#[derive(Debug)]
pub struct CalendarWindow {
    cycle: Cycle,
    zone: Zone,
    /// Local reset time, seconds after midnight (`at`, whole minutes, < 24 h).
    at_secs: i64,
    /// Day of the month of the reset (1..=28), for `Months`.
    day: u32,
    /// Day of the week of the reset, for `Week`.
    weekday: Weekday,
    /// The unit of 0000-01-01, from which period indexes count.
    index_base: i64,
    /// The last period computed (`Period::EMPTY` at first).
    last: Mutex<Period>,
}

impl Clone for CalendarWindow {
    fn clone(&self) -> CalendarWindow {
        CalendarWindow {
            cycle: self.cycle,
            zone: self.zone.clone(),
            at_secs: self.at_secs,
            day: self.day,
            weekday: self.weekday,
            index_base: self.index_base,
            last: Mutex::new(self.last.try_lock().map_or(Period::EMPTY, |p| *p)),
        }
    }
}

/// Two windows are equal when they have the same periods (the cache does not count).
impl PartialEq for CalendarWindow {
    fn eq(&self, other: &CalendarWindow) -> bool {
        (self.cycle, self.zone.name(), self.at_secs, self.day, self.weekday)
            == (other.cycle, other.zone.name(), other.at_secs, other.day, other.weekday)
    }
}

impl CalendarWindow {
    /// A window resetting every `cycle` in `zone` at `at_minutes` after local midnight (clamped
    /// to 23:59), on `day` of the month (clamped to 1..=28) or on `weekday`; `Months(n)` with
    /// `n` not dividing 12 is taken as `Months(1)`. The config's way in is [`parse_rule_window`].
    pub fn new(cycle: Cycle, zone: Zone, at_minutes: u32, day: u32, weekday: Weekday) -> CalendarWindow {
        let cycle = match cycle {
            Cycle::Months(n) if !MONTH_COUNTS.contains(&n) => Cycle::Months(1),
            c => c,
        };
        let mut window = CalendarWindow {
            cycle,
            zone,
            at_secs: i64::from(at_minutes.min(24 * 60 - 1)) * 60,
            day: day.clamp(1, 28),
            weekday,
            index_base: 0,
            last: Mutex::new(Period::EMPTY),
        };
        window.index_base = window.unit_of_day(YEAR_0);
        window
    }

    pub fn cycle(&self) -> Cycle {
        self.cycle
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The reset time, minutes after local midnight.
    pub fn at_minutes(&self) -> u32 {
        u32::try_from(self.at_secs / 60).unwrap_or(0)
    }

    pub fn day(&self) -> u32 {
        self.day
    }

    pub fn weekday(&self) -> Weekday {
        self.weekday
    }

    /// The period containing `now`.
    pub fn period(&self, now: Nanos) -> Period {
        // The lock is never waited on: when another thread holds it, compute without it.
        if let Ok(last) = self.last.try_lock() {
            if last.contains(now) {
                return *last;
            }
        }
        let period = self.compute_period(now);
        if let Ok(mut last) = self.last.try_lock() {
            *last = period;
        }
        period
    }

    /// The period containing `now`, from the time-zone data.
    fn compute_period(&self, now: Nanos) -> Period {
        let now_secs = i64::try_from(now / NANOS_PER_SEC).unwrap_or(i64::MAX);
        let local_day = now_secs.saturating_add(self.zone.offset_at(now_secs)).div_euclid(DAY_SECS);
        // The period of the local date's unit starts on or before that date; its reset instant
        // may still be after `now` (earlier on the day, or before the reset day of the month):
        // then `now` is in the previous period. A bounded walk either way settles it (one step
        // in practice; the bound only keeps this total against odd time-zone data).
        let mut unit = self.unit_of_day(local_day);
        let mut start = self.reset_instant(unit);
        for _ in 0..4 {
            if start <= now_secs {
                break;
            }
            unit = unit.saturating_sub(1);
            start = self.reset_instant(unit);
        }
        let mut end = self.reset_instant(unit.saturating_add(1));
        for _ in 0..4 {
            if end > now_secs {
                break;
            }
            unit = unit.saturating_add(1);
            start = end;
            end = self.reset_instant(unit.saturating_add(1));
        }
        Period {
            start_ns: secs_to_nanos(start),
            end_ns: secs_to_nanos(end),
            index: u64::try_from(unit.saturating_sub(self.index_base)).unwrap_or(0),
        }
    }

    /// Time from `now` to the end of its period (>= 1 ns, except at `u64::MAX`).
    pub fn reset_after_ns(&self, now: Nanos) -> u64 {
        self.period(now).end_ns.saturating_sub(now)
    }

    /// The unit local day `z` falls in: its day, its week (from a reset weekday), or its block
    /// of months (whose reset date, on `day`, may come later than `z`). Days and weeks are
    /// counted from 1970-01-01, months from January of year 0.
    fn unit_of_day(&self, z: i64) -> i64 {
        match self.cycle {
            Cycle::Day => z,
            Cycle::Week => z.saturating_sub(self.first_reset_day()).div_euclid(7),
            Cycle::Months(n) => {
                let (y, m, _) = civil::civil_from_days(z);
                months_since_0(y, m).div_euclid(i64::from(n.max(1)))
            }
        }
    }

    /// The instant (UNIX seconds) at which `unit`'s period starts.
    fn reset_instant(&self, unit: i64) -> i64 {
        let day = match self.cycle {
            Cycle::Day => unit,
            Cycle::Week => unit.saturating_mul(7).saturating_add(self.first_reset_day()),
            Cycle::Months(n) => {
                let month = unit.saturating_mul(i64::from(n.max(1)));
                let (y, m0) = (month.div_euclid(12), month.rem_euclid(12));
                civil::days_from_civil(y, u32::try_from(m0 + 1).unwrap_or(1), self.day)
            }
        };
        self.zone.first_instant_at(day.saturating_mul(DAY_SECS).saturating_add(self.at_secs))
    }

    /// Day number (since 1970-01-01) of the first reset weekday on or after 1970-01-01.
    fn first_reset_day(&self) -> i64 {
        i64::from((self.weekday.number() + 7 - civil::weekday_from_days(0)) % 7)
    }
}

/// The canonical description, for messages and as a counter-key ingredient (two windows with
/// the same periods have the same text): `1d at 02:30 Europe/Berlin`, `1w on mon at 00:00 UTC`,
/// `3mo on day 15 at 06:00 America/New_York`.
impl std::fmt::Display for CalendarWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cycle {
            Cycle::Day => write!(f, "1d")?,
            Cycle::Week => write!(f, "1w on {}", self.weekday.name())?,
            Cycle::Months(n) => write!(f, "{n}mo on day {}", self.day)?,
        }
        let at = self.at_minutes();
        write!(f, " at {:02}:{:02} {}", at / 60, at % 60, self.zone.name())
    }
}

/// Day number of 0000-01-01, where period indexes start.
const YEAR_0: i64 = -719_528;

fn months_since_0(y: i64, m: u32) -> i64 {
    y.saturating_mul(12).saturating_add(i64::from(m)).saturating_sub(1)
}

fn secs_to_nanos(secs: i64) -> Nanos {
    u64::try_from(secs).map_or(0, |s| s.saturating_mul(NANOS_PER_SEC))
}

/// An instant as RFC 3339 in UTC, to the second (`2026-03-29T01:00:00Z`). A fraction of a
/// second rounds up: a reset announced for that second has happened by then.
pub fn rfc3339_utc(ns: Nanos) -> String {
    let secs = ns.div_ceil(NANOS_PER_SEC);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let in_day = secs % 86_400;
    let (y, m, d) = civil::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", in_day / 3600, in_day / 60 % 60, in_day % 60)
}

/// Month counts a `Nmo` window may have: those that tile a year, so periods start in the same
/// months every year (`3mo` = quarters from January, `12mo` = years).
pub const MONTH_COUNTS: [u32; 6] = [1, 2, 3, 4, 6, 12];

/// A `window` written in calendar units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarSpan {
    /// `1d`.
    Day,
    /// `1w`.
    Week,
    /// `Nmo`, any positive N (validated against [`MONTH_COUNTS`] by [`parse_rule_window`]).
    Months(u32),
}

impl CalendarSpan {
    /// `1d`, `1w` or `<N>mo`; None for anything else (`7d`, `1h` and `0mo` included).
    pub fn parse(text: &str) -> Option<CalendarSpan> {
        match text {
            "1d" => Some(CalendarSpan::Day),
            "1w" => Some(CalendarSpan::Week),
            _ => {
                let digits = text.strip_suffix("mo")?;
                if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().filter(|n| *n > 0).map(CalendarSpan::Months)
            }
        }
    }
}
