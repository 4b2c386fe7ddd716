//! A rule's calendar window from the config: `window` (`1d`, `1w`, `1mo`, `3mo`, ...) and
//! `reset` (`{"timezone": "Europe/Berlin", "at": "00:00", "day": 1, "weekday": "mon"}`),
//! with errors that name the field path like the rest of the config.

use super::{CalendarWindow, Cycle, Weekday, Zone};
use crate::config::json::{field_path, Obj};
use crate::config::ConfigError;
use serde_json::Value;

/// Month counts a `Nmo` window may have: those that tile a year, so periods start in the same
/// months every year (`3mo` = quarters from January, `12mo` = years).
pub(super) const MONTH_COUNTS: [u32; 6] = [1, 2, 3, 4, 6, 12];

const RESET_FIELDS: &[&str] = &["timezone", "at", "day", "weekday"];

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

/// The calendar window of the rule at `rule_path` (`rules[3]`), given its `window` text and
/// its `reset` value (absent or null: none).
///
/// - `Ok(None)`: an ordinary window (a duration, `1d` included, without `reset`): epoch-aligned
///   UTC windows as before.
/// - `Ok(Some(_))`: `window` is `1w` or `Nmo`, or the rule has a `reset` (then `window` must be
///   `1d`, `1w` or `Nmo`). Without `reset` the defaults apply: UTC, 00:00, day 1, Monday.
/// - `Err`: `rules[3].reset.timezone: "Europe/Berln" is not an IANA time zone`, a field that
///   does not apply to the window (`weekday` with `1mo`), a malformed value, or a `window` that
///   `reset` cannot apply to.
pub fn parse_rule_window(
    window: &str,
    reset: Option<&Value>,
    rule_path: &str,
) -> Result<Option<CalendarWindow>, ConfigError> {
    let reset = reset.filter(|v| !v.is_null());
    let window_path = field_path(rule_path, "window");
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
    let o = Obj::new(reset, &field_path(rule_path, "reset"), RESET_FIELDS)?;
    let zone = match o.opt_str("timezone")? {
        None => Zone::utc(),
        Some(name) => Zone::get(name).ok_or_else(|| {
            ConfigError::new(&o.at("timezone"), format!("{name:?} is not an IANA time zone (e.g. \"Europe/Berlin\")"))
        })?,
    };
    let at = match o.opt_str("at")? {
        None => 0,
        Some(text) => parse_hh_mm(text).ok_or_else(|| {
            ConfigError::new(&o.at("at"), format!("{text:?} is not a time of day (use \"HH:MM\", 00:00 to 23:59)"))
        })?,
    };
    let not_for = |field: &str, applies: &str| {
        ConfigError::new(&o.at(field), format!("applies only to {applies} windows, not to {window:?}"))
    };
    let day = match o.get("day") {
        None => 1,
        Some(_) if !matches!(cycle, Cycle::Months(_)) => return Err(not_for("day", "monthly (\"1mo\")")),
        Some(v) => match v.as_u64() {
            Some(d @ 1..=28) => u32::try_from(d).unwrap_or(1),
            _ => {
                return Err(ConfigError::new(
                    &o.at("day"),
                    format!("expected a day of the month from 1 to 28 (every month has it), got {v}"),
                ))
            }
        },
    };
    let weekday = match o.get("weekday") {
        None => Weekday::Mon,
        Some(_) if cycle != Cycle::Week => return Err(not_for("weekday", "weekly (\"1w\")")),
        Some(_) => {
            let choices: Vec<(&str, Weekday)> = Weekday::ALL.iter().map(|w| (w.name(), *w)).collect();
            o.opt_enum("weekday", &choices)?.unwrap_or(Weekday::Mon)
        }
    };
    Ok(Some(CalendarWindow::new(cycle, zone, at, day, weekday)))
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
