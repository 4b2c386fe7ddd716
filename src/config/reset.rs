//! A rule's calendar window from the config: `window` (`1d`, `1w`, `1mo`, `3mo`, ...) and
//! `reset` (`{"timezone": "Europe/Berlin", "at": "00:00", "day": 1, "weekday": "mon"}`),
//! with errors that name the field path like the rest of the config.

use super::de::from_value_at;
use super::values::one_of;
use super::ConfigError;
use crate::time::calendar::{CalendarSpan, CalendarWindow, Cycle, Weekday, Zone, MONTH_COUNTS};
use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A rule's `reset` section as written; which fields apply depends on the window
/// ([`rule_window`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object")]
pub struct Reset {
    pub timezone: Option<Zone>,
    pub at: Option<TimeOfDay>,
    pub day: Option<DayOfMonth>,
    pub weekday: Option<Weekday>,
}

/// `reset.at`: `"HH:MM"`, as minutes after midnight.
#[derive(Clone, Copy, Debug)]
pub struct TimeOfDay(pub u32);

/// `reset.day`: 1 to 28, a day every month has.
#[derive(Clone, Copy, Debug)]
pub struct DayOfMonth(pub u32);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(d)?;
        Zone::get(&name)
            .ok_or_else(|| D::Error::custom(format!("{name:?} is not an IANA time zone (e.g. \"Europe/Berlin\")")))
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeOfDay, D::Error> {
        let text = String::deserialize(d)?;
        parse_hh_mm(&text)
            .map(TimeOfDay)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not a time of day (use \"HH:MM\", 00:00 to 23:59)")))
    }
}

impl<'de> Deserialize<'de> for DayOfMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DayOfMonth, D::Error> {
        let v = Value::deserialize(d)?;
        match v.as_u64() {
            Some(day @ 1..=28) => Ok(DayOfMonth(day as u32)),
            _ => {
                Err(D::Error::custom(format!("expected a day of the month from 1 to 28 (every month has it), got {v}")))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        one_of(
            d,
            &[
                ("mon", Weekday::Mon),
                ("tue", Weekday::Tue),
                ("wed", Weekday::Wed),
                ("thu", Weekday::Thu),
                ("fri", Weekday::Fri),
                ("sat", Weekday::Sat),
                ("sun", Weekday::Sun),
            ],
        )
    }
}

/// The calendar window of the rule at `rule_path` (`rules[3]`), given its `window` text and
/// its `reset` value as JSON (absent or null: none): [`rule_window`] after reading `reset`.
pub fn parse_rule_window(
    window: &str,
    reset: Option<&Value>,
    rule_path: &str,
) -> Result<Option<CalendarWindow>, ConfigError> {
    let reset = match reset.filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(from_value_at::<Reset>(v, &format!("{rule_path}.reset"))?),
    };
    rule_window(window, reset.as_ref(), rule_path)
}

/// The calendar window of the rule at `rule_path` (`rules[3]`), given its `window` text and
/// its `reset` section.
///
/// - `Ok(None)`: an ordinary window (a duration, `1d` included, without `reset`): epoch-aligned
///   UTC windows as before.
/// - `Ok(Some(_))`: `window` is `1w` or `Nmo`, or the rule has a `reset` (then `window` must be
///   `1d`, `1w` or `Nmo`). Without `reset` the defaults apply: UTC, 00:00, day 1, Monday.
/// - `Err`: a field that does not apply to the window (`weekday` with `1mo`), or a `window`
///   that `reset` cannot apply to. (A malformed value, e.g. `rules[3].reset.timezone:
///   "Europe/Berln" is not an IANA time zone`, is refused while `reset` is read.)
pub fn rule_window(
    window: &str,
    reset: Option<&Reset>,
    rule_path: &str,
) -> Result<Option<CalendarWindow>, ConfigError> {
    let window_path = format!("{rule_path}.window");
    let span = match (CalendarSpan::parse(window), reset) {
        (Some(CalendarSpan::Day), None) => return Ok(None),
        (Some(span), _) => span,
        (None, _) if window.ends_with('w') || window.ends_with("mo") => {
            return Err(ConfigError::new(
                &window_path,
                format!("{window:?} is not a calendar window (weeks: \"1w\"; months: \"1mo\", \"3mo\", \"12mo\")"),
            ))
        }
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(ConfigError::new(
                &window_path,
                format!("{window:?} cannot reset on the calendar (with \"reset\" use \"1d\", \"1w\" or \"1mo\")"),
            ))
        }
    };
    let cycle = match span {
        CalendarSpan::Day => Cycle::Day,
        CalendarSpan::Week => Cycle::Week,
        CalendarSpan::Months(n) if MONTH_COUNTS.contains(&n) => Cycle::Months(n),
        CalendarSpan::Months(_) => {
            return Err(ConfigError::new(
                &window_path,
                format!("{window:?}: a number of months must divide a year (1mo, 2mo, 3mo, 4mo, 6mo or 12mo)"),
            ))
        }
    };
    let Some(reset) = reset else {
        return Ok(Some(CalendarWindow::new(cycle, Zone::utc(), 0, 1, Weekday::Mon)));
    };
    let not_for = |field: &str, applies: &str| {
        ConfigError::new(
            &format!("{rule_path}.reset.{field}"),
            format!("applies only to {applies} windows, not to {window:?}"),
        )
    };
    if reset.day.is_some() && !matches!(cycle, Cycle::Months(_)) {
        return Err(not_for("day", "monthly (\"1mo\")"));
    }
    if reset.weekday.is_some() && cycle != Cycle::Week {
        return Err(not_for("weekday", "weekly (\"1w\")"));
    }
    Ok(Some(CalendarWindow::new(
        cycle,
        reset.timezone.clone().unwrap_or_else(Zone::utc),
        reset.at.map_or(0, |t| t.0),
        reset.day.map_or(1, |d| d.0),
        reset.weekday.unwrap_or(Weekday::Mon),
    )))
}

/// `"HH:MM"` (two digits each, 00:00 to 23:59) as minutes after midnight.
fn parse_hh_mm(text: &str) -> Option<u32> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).filter(|c| c.is_ascii_digit()).map(|c| u32::from(c - b'0'));
    if b.len() != 5 || b.get(2) != Some(&b':') {
        return None;
    }
    let (h, m) = (digit(0)? * 10 + digit(1)?, digit(3)? * 10 + digit(4)?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}
