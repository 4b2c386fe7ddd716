//! Tests of calendar windows: the edge times one by one (daylight-saving changes in Berlin,
//! New York and Lord Howe, half-hour offsets, month ends, leap days, year ends, a skipped day),
//! then exhaustive walks over decades of periods and property tests of the invariants in
//! `mod.rs` (periods tile time, starts are reset instants, indexes grow), then the config
//! parser's answers and errors.

use super::civil::{civil_from_days, days_from_civil, weekday_from_days};
use super::{rfc3339_utc, CalendarWindow, Cycle, Period, Weekday, Zone};
use crate::config::reset::parse_rule_window;
use crate::time::NANOS_PER_SEC;
use proptest::prelude::*;
use serde_json::{json, Value};

const SEC: u64 = NANOS_PER_SEC;
const HOUR: u64 = 3_600 * SEC;
const DAY: u64 = 24 * HOUR;

/// `"2026-03-29T01:00:00Z"` (or with `:SS` left out) as UNIX nanoseconds.
fn ns(text: &str) -> u64 {
    let num = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap();
    let days = days_from_civil(i64::from(num(0..4)), num(5..7), num(8..10));
    let secs = if text.len() > 17 { num(17..19) } else { 0 };
    let secs = days * 86_400 + i64::from(num(11..13) * 3600 + num(14..16) * 60 + secs);
    u64::try_from(secs).unwrap() * SEC
}

/// The window of a rule with `window` and `reset`.
fn win(window: &str, reset: Value) -> CalendarWindow {
    parse_rule_window(window, Some(&reset), "rules[0]").unwrap().unwrap()
}

/// The period containing `now`, as `[start, end)` in RFC 3339.
fn span(w: &CalendarWindow, now: &str) -> (String, String) {
    let p = w.period(ns(now));
    (rfc3339_utc(p.start_ns), rfc3339_utc(p.end_ns))
}

fn hours(p: Period) -> f64 {
    (p.end_ns - p.start_ns) as f64 / HOUR as f64
}

/// The local wall time (seconds since 1970-01-01T00:00 on the local clock) at `t` ns.
fn local_secs(zone: &Zone, t: u64) -> i64 {
    let secs = i64::try_from(t / SEC).unwrap();
    secs + zone.offset_at(secs)
}

// ---------------------------------------------------------------------------------------
// Daylight-saving days

#[test]
fn berlin_day_is_23_hours_on_spring_forward_and_25_on_fall_back() {
    let w = win("1d", json!({"timezone": "Europe/Berlin"}));
    // 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC.
    assert_eq!(span(&w, "2026-03-29T12:00:00Z"), ("2026-03-28T23:00:00Z".into(), "2026-03-29T22:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-03-29T12:00"))), 23.0);
    // 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC.
    assert_eq!(span(&w, "2026-10-25T12:00:00Z"), ("2026-10-24T22:00:00Z".into(), "2026-10-25T23:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-10-25T12:00"))), 25.0);
    // The days around them are 24 hours.
    assert_eq!(hours(w.period(ns("2026-03-28T12:00"))), 24.0);
    assert_eq!(hours(w.period(ns("2026-03-30T12:00"))), 24.0);
    assert_eq!(hours(w.period(ns("2026-10-26T12:00"))), 24.0);
    // Both sides of the jump are the same day.
    assert_eq!(w.period(ns("2026-03-29T00:59:59")), w.period(ns("2026-03-29T01:00:00")));
    assert_eq!(w.period(ns("2026-10-25T00:59:59")), w.period(ns("2026-10-25T01:00:00")));
}

#[test]
fn berlin_reset_in_the_spring_gap_is_the_first_instant_after_it() {
    // 02:30 does not exist on 2026-03-29: the reset is at 03:00 CEST = 01:00 UTC.
    let w = win("1d", json!({"timezone": "Europe/Berlin", "at": "02:30"}));
    assert_eq!(span(&w, "2026-03-29T00:59:59Z"), ("2026-03-28T01:30:00Z".into(), "2026-03-29T01:00:00Z".into()));
    assert_eq!(span(&w, "2026-03-29T01:00:00Z"), ("2026-03-29T01:00:00Z".into(), "2026-03-30T00:30:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-03-29T00:00"))), 23.5);
    assert_eq!(hours(w.period(ns("2026-03-29T12:00"))), 23.5);
    // A reset at 02:00 sharp (the gap's first wall time) is the same instant.
    let w = win("1d", json!({"timezone": "Europe/Berlin", "at": "02:00"}));
    assert_eq!(w.period(ns("2026-03-29T01:00")).start_ns, ns("2026-03-29T01:00"));
    // 03:00 (the first wall time after the gap) too: that day's 02:00 and 03:00 resets coincide.
    let w = win("1d", json!({"timezone": "Europe/Berlin", "at": "03:00"}));
    assert_eq!(w.period(ns("2026-03-29T01:00")).start_ns, ns("2026-03-29T01:00"));
}

#[test]
fn berlin_reset_in_the_autumn_fold_is_the_earlier_instant() {
    // 02:30 happens twice on 2026-10-25: 02:30 CEST (00:30 UTC), then 02:30 CET (01:30 UTC).
    let w = win("1d", json!({"timezone": "Europe/Berlin", "at": "02:30"}));
    assert_eq!(span(&w, "2026-10-25T00:29:59Z"), ("2026-10-24T00:30:00Z".into(), "2026-10-25T00:30:00Z".into()));
    assert_eq!(span(&w, "2026-10-25T00:30:00Z"), ("2026-10-25T00:30:00Z".into(), "2026-10-26T01:30:00Z".into()));
    // The second pass over 02:00..03:00 (CET) belongs to the period that began in the first.
    let p = w.period(ns("2026-10-25T01:10"));
    assert_eq!(p, w.period(ns("2026-10-25T00:30")));
    assert_eq!(p, w.period(ns("2026-10-25T01:59:59")));
    assert_eq!(hours(p), 25.0);
    assert_eq!(hours(w.period(ns("2026-10-24T12:00"))), 24.0);
}

#[test]
fn new_york_days_across_both_changes() {
    let w = win("1d", json!({"timezone": "America/New_York"}));
    // 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC.
    assert_eq!(span(&w, "2026-03-08T12:00:00Z"), ("2026-03-08T05:00:00Z".into(), "2026-03-09T04:00:00Z".into()));
    // 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC.
    assert_eq!(span(&w, "2026-11-01T12:00:00Z"), ("2026-11-01T04:00:00Z".into(), "2026-11-02T05:00:00Z".into()));
    // Gap: 02:30 on 2026-03-08 -> 03:00 EDT = 07:00 UTC.
    let w = win("1d", json!({"timezone": "America/New_York", "at": "02:30"}));
    assert_eq!(span(&w, "2026-03-08T07:00:00Z"), ("2026-03-08T07:00:00Z".into(), "2026-03-09T06:30:00Z".into()));
    assert_eq!(span(&w, "2026-03-08T06:59:59Z"), ("2026-03-07T07:30:00Z".into(), "2026-03-08T07:00:00Z".into()));
    // Fold: 01:30 on 2026-11-01 -> 01:30 EDT = 05:30 UTC, not 01:30 EST = 06:30 UTC.
    let w = win("1d", json!({"timezone": "America/New_York", "at": "01:30"}));
    assert_eq!(span(&w, "2026-11-01T06:30:00Z"), ("2026-11-01T05:30:00Z".into(), "2026-11-02T06:30:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-11-01T06:00"))), 25.0);
}

#[test]
fn lord_howe_shifts_by_half_an_hour() {
    // Australia/Lord_Howe: +10:30 standard, +11 in summer. 2026-04-05: 02:00 -> 01:30 at
    // 15:00 UTC on the 4th; 2026-10-04: 02:00 -> 02:30 at 15:30 UTC on the 3rd.
    let w = win("1d", json!({"timezone": "Australia/Lord_Howe"}));
    assert_eq!(span(&w, "2026-04-05T00:00:00Z"), ("2026-04-04T13:00:00Z".into(), "2026-04-05T13:30:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-04-05T00:00"))), 24.5);
    assert_eq!(span(&w, "2026-10-04T00:00:00Z"), ("2026-10-03T13:30:00Z".into(), "2026-10-04T13:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-10-04T00:00"))), 23.5);
    // 02:15 falls in the October gap -> 02:30 (+11) = 15:30 UTC.
    let w = win("1d", json!({"timezone": "Australia/Lord_Howe", "at": "02:15"}));
    assert_eq!(w.period(ns("2026-10-03T16:00")).start_ns, ns("2026-10-03T15:30"));
    // 01:45 falls in the April fold -> the earlier one, 01:45 (+11) = 14:45 UTC.
    let w = win("1d", json!({"timezone": "Australia/Lord_Howe", "at": "01:45"}));
    assert_eq!(w.period(ns("2026-04-04T15:00")).start_ns, ns("2026-04-04T14:45"));
}

#[test]
fn kolkata_resets_on_the_half_hour() {
    let w = win("1d", json!({"timezone": "Asia/Kolkata"}));
    assert_eq!(span(&w, "2026-03-01T00:00:00Z"), ("2026-02-28T18:30:00Z".into(), "2026-03-01T18:30:00Z".into()));
    let w = win("1mo", json!({"timezone": "Asia/Kolkata"}));
    assert_eq!(span(&w, "2026-03-01T00:00:00Z"), ("2026-02-28T18:30:00Z".into(), "2026-03-31T18:30:00Z".into()));
}

#[test]
fn a_skipped_day_leaves_no_empty_period() {
    // Pacific/Apia skipped 2011-12-30: 2011-12-29T24:00 (-10) became 2011-12-31T00:00 (+14).
    let w = win("1d", json!({"timezone": "Pacific/Apia"}));
    let p29 = w.period(ns("2011-12-30T09:00")); // 23:00 on the 29th, local
    assert_eq!(
        (rfc3339_utc(p29.start_ns), rfc3339_utc(p29.end_ns)),
        ("2011-12-29T10:00:00Z".into(), "2011-12-30T10:00:00Z".into())
    );
    let p31 = w.period(p29.end_ns);
    assert_eq!(p31.start_ns, p29.end_ns);
    assert_eq!(p31.index, p29.index + 2, "the 30th has no period");
    // A reset at noon: the 30th's noon did not exist, its period starts when the day jumps.
    let w = win("1d", json!({"timezone": "Pacific/Apia", "at": "12:00"}));
    let p30 = w.period(ns("2011-12-30T10:00"));
    assert_eq!(p30.start_ns, ns("2011-12-30T10:00"));
    assert_eq!(p30.end_ns, ns("2011-12-30T22:00"));
    assert_eq!(w.period(p30.start_ns - 1).index + 1, p30.index);
}

// ---------------------------------------------------------------------------------------
// Months, leap days, weeks, years

#[test]
fn monthly_budget_in_berlin_across_daylight_saving() {
    // The docs/calendar.md example: resets on the 1st at 00:00 Europe/Berlin.
    let w = win("1mo", json!({"timezone": "Europe/Berlin", "at": "00:00", "day": 1}));
    let starts: Vec<String> = ["2026-02-15", "2026-03-15", "2026-04-15", "2026-09-15", "2026-10-15", "2026-11-15"]
        .iter()
        .map(|d| rfc3339_utc(w.period(ns(&format!("{d}T12:00"))).start_ns))
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-31T23:00:00Z",
            "2026-02-28T23:00:00Z",
            "2026-03-31T22:00:00Z",
            "2026-08-31T22:00:00Z",
            "2026-09-30T22:00:00Z",
            "2026-10-31T23:00:00Z"
        ]
    );
    // March has 31 days less the spring hour, October 31 days plus the autumn hour.
    assert_eq!(hours(w.period(ns("2026-03-15T12:00"))), 31.0 * 24.0 - 1.0);
    assert_eq!(hours(w.period(ns("2026-10-15T12:00"))), 31.0 * 24.0 + 1.0);
    assert_eq!(w.reset_after_ns(ns("2026-03-31T21:00")), HOUR);
}

#[test]
fn month_ends() {
    let w = win("1mo", json!({}));
    assert_eq!(span(&w, "2026-01-31T23:59:59Z"), ("2026-01-01T00:00:00Z".into(), "2026-02-01T00:00:00Z".into()));
    assert_eq!(span(&w, "2026-02-01T00:00:00Z"), ("2026-02-01T00:00:00Z".into(), "2026-03-01T00:00:00Z".into()));
    assert_eq!(span(&w, "2026-04-30T23:59:59Z"), ("2026-04-01T00:00:00Z".into(), "2026-05-01T00:00:00Z".into()));
    assert_eq!(span(&w, "2026-12-31T23:59:59Z"), ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into()));
    assert_eq!(w.period(ns("2027-01-01T00:00")).index, w.period(ns("2026-12-31T23:59")).index + 1);
    assert_eq!(hours(w.period(ns("2026-02-10T00:00"))), 28.0 * 24.0);
    assert_eq!(hours(w.period(ns("2026-06-10T00:00"))), 30.0 * 24.0);
    // Day 15 at 09:00: before the 15th, the period began on the 15th of the month before.
    let w = win("1mo", json!({"day": 15, "at": "09:00"}));
    assert_eq!(span(&w, "2026-03-15T08:59:59Z"), ("2026-02-15T09:00:00Z".into(), "2026-03-15T09:00:00Z".into()));
    assert_eq!(span(&w, "2026-01-10T00:00:00Z"), ("2025-12-15T09:00:00Z".into(), "2026-01-15T09:00:00Z".into()));
}

#[test]
fn leap_day() {
    let w = win("1d", json!({"timezone": "Europe/Berlin"}));
    assert_eq!(span(&w, "2028-02-29T12:00:00Z"), ("2028-02-28T23:00:00Z".into(), "2028-02-29T23:00:00Z".into()));
    // February 2028 has 29 days, February 2027 has 28.
    let w = win("1mo", json!({}));
    assert_eq!(hours(w.period(ns("2028-02-29T12:00"))), 29.0 * 24.0);
    assert_eq!(hours(w.period(ns("2027-02-28T12:00"))), 28.0 * 24.0);
    // Resetting on the 28th: the period from 2028-02-28 contains the leap day.
    let w = win("1mo", json!({"day": 28}));
    assert_eq!(span(&w, "2028-02-29T12:00:00Z"), ("2028-02-28T00:00:00Z".into(), "2028-03-28T00:00:00Z".into()));
    assert_eq!(span(&w, "2028-02-27T23:59:59Z"), ("2028-01-28T00:00:00Z".into(), "2028-02-28T00:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2028-02-29T12:00"))), 29.0 * 24.0);
    // A month period crossing Feb 29: the 15th to the 15th.
    let w = win("1mo", json!({"day": 15, "timezone": "America/New_York"}));
    assert_eq!(span(&w, "2028-02-29T12:00:00Z"), ("2028-02-15T05:00:00Z".into(), "2028-03-15T04:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2028-02-29T12:00"))), 29.0 * 24.0 - 1.0, "spring forward on 2028-03-12");
}

#[test]
fn weeks_across_daylight_saving_and_the_year_end() {
    let w = win("1w", json!({"timezone": "Europe/Berlin"}));
    // Monday 2026-03-23 to Monday 2026-03-30, with the spring change in between.
    assert_eq!(span(&w, "2026-03-29T12:00:00Z"), ("2026-03-22T23:00:00Z".into(), "2026-03-29T22:00:00Z".into()));
    assert_eq!(hours(w.period(ns("2026-03-29T12:00"))), 167.0);
    assert_eq!(hours(w.period(ns("2026-10-25T12:00"))), 169.0);
    // 2026-01-01 is a Thursday: its week began on Monday 2025-12-29.
    assert_eq!(span(&w, "2026-01-01T00:00:00Z"), ("2025-12-28T23:00:00Z".into(), "2026-01-04T23:00:00Z".into()));
    let p = w.period(ns("2026-01-01T00:00"));
    assert_eq!(w.period(p.start_ns - 1).index + 1, p.index);
    assert_eq!(w.period(p.end_ns).index, p.index + 1);
    // Sundays at 18:00 New York time.
    let w = win("1w", json!({"timezone": "America/New_York", "weekday": "sun", "at": "18:00"}));
    assert_eq!(span(&w, "2026-03-10T00:00:00Z"), ("2026-03-08T22:00:00Z".into(), "2026-03-15T22:00:00Z".into()));
    assert_eq!(span(&w, "2026-03-08T21:59:59Z"), ("2026-03-01T23:00:00Z".into(), "2026-03-08T22:00:00Z".into()));
}

#[test]
fn quarters_and_years() {
    let w = win("3mo", json!({"timezone": "Europe/Berlin"}));
    assert_eq!(span(&w, "2026-05-20T00:00:00Z"), ("2026-03-31T22:00:00Z".into(), "2026-06-30T22:00:00Z".into()));
    assert_eq!(span(&w, "2026-12-31T22:59:59Z"), ("2026-09-30T22:00:00Z".into(), "2026-12-31T23:00:00Z".into()));
    let w = win("12mo", json!({"day": 1}));
    assert_eq!(span(&w, "2028-07-01T00:00:00Z"), ("2028-01-01T00:00:00Z".into(), "2029-01-01T00:00:00Z".into()));
    assert_eq!(w.period(ns("2028-07-01T00:00")).index, 2028);
    assert_eq!(hours(w.period(ns("2028-07-01T00:00"))), 366.0 * 24.0);
}

#[test]
fn utc_days_are_the_epoch_aligned_days() {
    let w = win("1d", json!({"timezone": "UTC"}));
    for now in [0, 1, DAY - 1, DAY, ns("2026-03-29T01:00"), ns("2028-02-29T23:59:59"), u64::MAX - DAY] {
        let p = w.period(now);
        assert_eq!(p.start_ns, now - now % DAY, "{now}");
        assert_eq!(p.end_ns, p.start_ns + DAY);
        assert_eq!(p.index, now / DAY + 719_528, "days since 0000-01-01");
    }
}

#[test]
fn indexes_count_from_year_zero() {
    assert_eq!(win("1d", json!({})).period(ns("1970-01-01T00:00")).index, 719_528);
    assert_eq!(win("1d", json!({"timezone": "Europe/Berlin"})).period(ns("2026-03-29T12:00")).index, 740_069);
    assert_eq!(win("1mo", json!({})).period(ns("2026-03-15T00:00")).index, 2026 * 12 + 2);
    assert_eq!(win("3mo", json!({})).period(ns("2026-03-15T00:00")).index, 2026 * 4);
    let weekly = win("1w", json!({}));
    let (a, b) = (weekly.period(ns("2026-03-16T00:00")), weekly.period(ns("2026-03-23T00:00")));
    assert_eq!(b.index, a.index + 1);
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads (run natively)")]
fn a_window_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let w = win("1mo", json!({"timezone": "Europe/Berlin"}));
    shared(&w);
    let now = ns("2026-03-29T12:00");
    let expected = w.period(now);
    std::thread::scope(|s| {
        for i in 0..4 {
            let w = &w;
            s.spawn(move || {
                for k in 0..200 {
                    let t = now + (i * 200 + k) * 7 * DAY;
                    assert_eq!(w.period(t), w.compute_period(t));
                }
            });
        }
    });
    assert_eq!(w.period(now), expected);
    assert_eq!(w.clone(), w);
}

#[test]
fn the_ends_of_the_clock() {
    // At 0 ns, east and west of Greenwich: the first period is cut at 0.
    for zone in ["America/New_York", "Asia/Tokyo", "Pacific/Kiritimati", "Etc/GMT+12"] {
        for window in ["1d", "1w", "1mo"] {
            let w = win(window, json!({"timezone": zone, "at": "23:59"}));
            let p = w.period(0);
            assert_eq!(p.start_ns, 0, "{zone} {window}");
            assert!(p.end_ns > 0 && p.end_ns <= 32 * DAY);
            assert_eq!(w.period(p.end_ns).index, p.index + 1);
            // The last period is cut at u64::MAX (2554-07-21T23:34:33Z).
            let last = w.period(u64::MAX);
            assert!(last.start_ns < u64::MAX && last.start_ns > u64::MAX - 32 * DAY);
            assert!(last.end_ns == u64::MAX || last.end_ns > u64::MAX - 32 * DAY);
            assert_eq!(w.reset_after_ns(u64::MAX), last.end_ns - u64::MAX);
        }
    }
}

#[test]
fn reset_after_counts_to_the_true_reset() {
    let w = win("1d", json!({"timezone": "Europe/Berlin"}));
    // 20:00 UTC on the spring-forward day is 22:00 CEST: 2 hours to midnight.
    assert_eq!(w.reset_after_ns(ns("2026-03-29T20:00")), 2 * HOUR);
    // 20:00 UTC on the fall-back day is 21:00 CET: 3 hours to midnight.
    assert_eq!(w.reset_after_ns(ns("2026-10-25T20:00")), 3 * HOUR);
    assert_eq!(w.reset_after_ns(ns("2026-10-25T23:00") - 1), 1);
}

#[test]
fn rfc3339_formats_utc_to_the_second() {
    assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_utc(ns("2026-03-29T01:00")), "2026-03-29T01:00:00Z");
    assert_eq!(rfc3339_utc(ns("2028-02-29T23:59:59")), "2028-02-29T23:59:59Z");
    assert_eq!(rfc3339_utc(1_700_000_000 * SEC), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339_utc(1_700_000_000 * SEC + 1), "2023-11-14T22:13:21Z", "a fraction rounds up");
    assert_eq!(rfc3339_utc(u64::MAX), "2554-07-21T23:34:34Z");
}

// ---------------------------------------------------------------------------------------
// Exhaustive walks and properties

/// Zones with every kind of oddity: DST north and south, 30-minute DST, half-hour and
/// quarter-hour offsets, DST ending at midnight (Beirut: 00:00 -> 23:00 the day before), a
/// skipped day (Apia 2011), no DST, UTC.
const ZONES: [&str; 14] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Beirut",
    "America/Havana",
    "America/Santiago",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Europe/London",
    "Australia/Sydney",
    "America/St_Johns",
];

/// Checks that `p` is the period of `w` containing `now`, and that its start is a reset
/// instant: the first instant whose wall time reaches `at` on a reset date.
fn check_period(w: &CalendarWindow, now: u64, p: Period) {
    assert!(p.start_ns <= now && now < p.end_ns, "{now} not in {p:?}");
    if p.start_ns == 0 {
        return; // cut at the start of the clock
    }
    let zone = w.zone();
    let at = i64::from(w.at_minutes()) * 60;
    let l1 = local_secs(zone, p.start_ns);
    let reset_day = (l1 - at).div_euclid(86_400);
    let reset = reset_day * 86_400 + at;
    assert!(reset <= l1, "{p:?}");
    // Nothing earlier showed that wall time: one second before, and (when the clock was set
    // back within the last 12 hours) every quarter of an hour before, in a fold.
    assert!(local_secs(zone, p.start_ns - SEC) < reset, "{p:?}: a second earlier showed the reset time");
    let start_secs = i64::try_from(p.start_ns / SEC).unwrap();
    if zone.offset_at(start_secs - 12 * 3600) > zone.offset_at(start_secs) {
        for back in (1..=48).map(|k| k * 900) {
            if let Some(t) = p.start_ns.checked_sub(back * SEC) {
                assert!(local_secs(zone, t) < reset, "{p:?}: {back}s earlier showed the reset time already");
            }
        }
    }
    if zone.offset_at(start_secs - 1) == zone.offset_at(start_secs) {
        assert_eq!(l1, reset, "{p:?}: no jump at the start, so the wall time is exactly `at`");
    }
    let (_, m, d) = civil_from_days(reset_day);
    match w.cycle() {
        Cycle::Day => {}
        Cycle::Week => assert_eq!(weekday_from_days(reset_day), w.weekday().number(), "{p:?}"),
        Cycle::Months(n) => {
            assert_eq!(d, w.day(), "{p:?}");
            assert_eq!((m - 1) % n, 0, "{p:?}");
        }
    }
}

/// Walks every period from `from` to `to`, checking each and their tiling.
fn walk(w: &CalendarWindow, from: u64, to: u64) -> usize {
    let mut p = w.period(from);
    check_period(w, from, p);
    let mut count = 1;
    while p.end_ns < to {
        let next = w.period(p.end_ns);
        check_period(w, p.end_ns, next);
        assert_eq!(next.start_ns, p.end_ns, "gap or overlap after {p:?}");
        assert!(next.index > p.index, "{p:?} then {next:?}");
        assert_eq!(w.period(p.end_ns - 1), p);
        p = next;
        count += 1;
    }
    count
}

#[test]
fn every_day_of_a_decade_in_every_zone() {
    let mut periods = 0;
    for zone in ZONES {
        for at in ["00:00", "00:30", "01:30", "02:30", "23:30"] {
            let w = win("1d", json!({"timezone": zone, "at": at}));
            periods += walk(&w, ns("2020-01-01T00:00"), ns("2030-01-01T00:00"));
        }
    }
    assert!(periods > 14 * 5 * 3650);
}

#[test]
fn every_week_and_month_from_1970_to_2100_in_every_zone() {
    for zone in ZONES {
        for (window, reset) in [
            ("1w", json!({"timezone": zone})),
            ("1w", json!({"timezone": zone, "weekday": "sun", "at": "02:30"})),
            ("1mo", json!({"timezone": zone})),
            ("1mo", json!({"timezone": zone, "day": 28, "at": "23:30"})),
            ("3mo", json!({"timezone": zone, "day": 10, "at": "01:00"})),
            ("12mo", json!({"timezone": zone})),
        ] {
            let w = win(window, reset);
            walk(&w, 0, ns("2100-01-01T00:00"));
        }
    }
}

fn any_window() -> impl Strategy<Value = CalendarWindow> {
    let cycle = prop_oneof![
        Just(Cycle::Day),
        Just(Cycle::Week),
        proptest::sample::select(vec![1u32, 2, 3, 4, 6, 12]).prop_map(Cycle::Months)
    ];
    (
        cycle,
        proptest::sample::select(ZONES.to_vec()),
        prop_oneof![0..24 * 60u32, proptest::sample::select(vec![0u32, 60, 90, 120, 150, 180, 1410])],
        1..=28u32,
        proptest::sample::select(Weekday::ALL.to_vec()),
    )
        .prop_map(|(cycle, zone, at, day, weekday)| {
            CalendarWindow::new(cycle, Zone::get(zone).unwrap(), at, day, weekday)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn periods_tile_time(w in any_window(), now in ns("1971-01-01T00:00")..ns("2100-01-01T00:00")) {
        let p = w.period(now);
        check_period(&w, now, p);
        prop_assert_eq!(w.period(p.start_ns), p);
        prop_assert_eq!(w.period(p.end_ns - 1), p);
        let next = w.period(p.end_ns);
        prop_assert_eq!(next.start_ns, p.end_ns);
        prop_assert!(next.index > p.index);
        let prev = w.period(p.start_ns - 1);
        prop_assert_eq!(prev.end_ns, p.start_ns);
        prop_assert!(prev.index < p.index);
        prop_assert_eq!(w.reset_after_ns(now), p.end_ns - now);
    }

    #[test]
    fn the_cache_never_changes_an_answer(w in any_window(), times in proptest::collection::vec(ns("1971-01-01T00:00")..ns("2100-01-01T00:00"), 1..8), near in 0..3 * DAY) {
        for t in times {
            prop_assert_eq!(w.period(t), w.compute_period(t));
            prop_assert_eq!(w.period(t + near), w.compute_period(t + near));
            prop_assert_eq!(w.clone().period(t), w.compute_period(t));
        }
    }

    #[test]
    fn index_grows_with_time(w in any_window(), a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (a.min(b), a.max(b));
        let (pa, pb) = (w.period(a), w.period(b));
        prop_assert!(pa.index <= pb.index);
        prop_assert_eq!(pa.index == pb.index, pa == pb);
    }

    #[test]
    fn rfc3339_matches_the_civil_date(secs in 0..u64::MAX / SEC) {
        let text = rfc3339_utc(secs * SEC);
        prop_assert_eq!(ns(&text), secs * SEC);
    }
}

// ---------------------------------------------------------------------------------------
// Parsing `window` and `reset`

fn parse(window: &str, reset: Option<Value>) -> Result<Option<CalendarWindow>, String> {
    parse_rule_window(window, reset.as_ref(), "rules[3]").map_err(|e| e.to_string())
}

fn err(window: &str, reset: Value) -> String {
    parse(window, Some(reset)).err().unwrap()
}

#[test]
fn ordinary_windows_stay_ordinary() {
    for window in ["1d", "1m", "1h", "7d", "250ms", "30s"] {
        assert!(parse(window, None).unwrap().is_none(), "{window}");
        assert!(parse(window, Some(Value::Null)).unwrap().is_none(), "{window}");
    }
}

#[test]
fn weeks_and_months_without_reset_are_utc_calendar_windows() {
    let w = parse("1w", None).unwrap().unwrap();
    assert_eq!((w.cycle(), w.zone().name(), w.at_minutes(), w.weekday()), (Cycle::Week, "UTC", 0, Weekday::Mon));
    let w = parse("1mo", None).unwrap().unwrap();
    assert_eq!((w.cycle(), w.day()), (Cycle::Months(1), 1));
    assert_eq!(parse("6mo", None).unwrap().unwrap().cycle(), Cycle::Months(6));
}

#[test]
fn reset_fields_are_read() {
    let w = parse("1w", Some(json!({"timezone": "europe/berlin", "at": "06:45", "weekday": "fri"}))).unwrap().unwrap();
    assert_eq!((w.zone().name(), w.at_minutes(), w.weekday()), ("Europe/Berlin", 6 * 60 + 45, Weekday::Fri));
    let w = parse("1mo", Some(json!({"day": 28, "at": "23:59"}))).unwrap().unwrap();
    assert_eq!((w.zone().name(), w.day(), w.at_minutes()), ("UTC", 28, 23 * 60 + 59));
    let w = parse("1d", Some(json!({"at": "12:00"}))).unwrap().unwrap();
    assert_eq!((w.cycle(), w.at_minutes()), (Cycle::Day, 720));
    let w = parse("1d", Some(json!({}))).unwrap().unwrap();
    assert_eq!((w.cycle(), w.zone().name(), w.at_minutes()), (Cycle::Day, "UTC", 0));
}

#[test]
fn windows_describe_themselves() {
    let text = |window: &str, reset: Value| win(window, reset).to_string();
    assert_eq!(text("1d", json!({"timezone": "europe/berlin", "at": "02:30"})), "1d at 02:30 Europe/Berlin");
    assert_eq!(text("1w", json!({})), "1w on mon at 00:00 UTC");
    assert_eq!(
        text("3mo", json!({"day": 15, "at": "06:00", "timezone": "America/New_York"})),
        "3mo on day 15 at 06:00 America/New_York"
    );
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (
            "1d",
            json!({"timezone": "Europe/Berln"}),
            r#"rules[3].reset.timezone: "Europe/Berln" is not an IANA time zone (e.g. "Europe/Berlin")"#,
        ),
        (
            "1d",
            json!({"timezone": "Etc/Unknown"}),
            r#"rules[3].reset.timezone: "Etc/Unknown" is not an IANA time zone (e.g. "Europe/Berlin")"#,
        ),
        (
            "1d",
            json!({"timezone": ""}),
            r#"rules[3].reset.timezone: "" is not an IANA time zone (e.g. "Europe/Berlin")"#,
        ),
        ("1d", json!({"timezone": 1}), "rules[3].reset.timezone: expected a string, got a number"),
        (
            "1d",
            json!({"at": "24:00"}),
            r#"rules[3].reset.at: "24:00" is not a time of day (use "HH:MM", 00:00 to 23:59)"#,
        ),
        (
            "1d",
            json!({"at": "6:00"}),
            r#"rules[3].reset.at: "6:00" is not a time of day (use "HH:MM", 00:00 to 23:59)"#,
        ),
        (
            "1d",
            json!({"at": "06:60"}),
            r#"rules[3].reset.at: "06:60" is not a time of day (use "HH:MM", 00:00 to 23:59)"#,
        ),
        (
            "1d",
            json!({"at": "06:00:00"}),
            r#"rules[3].reset.at: "06:00:00" is not a time of day (use "HH:MM", 00:00 to 23:59)"#,
        ),
        (
            "1mo",
            json!({"weekday": "mon"}),
            r#"rules[3].reset.weekday: applies only to weekly ("1w") windows, not to "1mo""#,
        ),
        (
            "1d",
            json!({"weekday": "mon"}),
            r#"rules[3].reset.weekday: applies only to weekly ("1w") windows, not to "1d""#,
        ),
        ("1w", json!({"day": 1}), r#"rules[3].reset.day: applies only to monthly ("1mo") windows, not to "1w""#),
        (
            "1mo",
            json!({"day": 29}),
            "rules[3].reset.day: expected a day of the month from 1 to 28 (every month has it), got 29",
        ),
        (
            "1mo",
            json!({"day": 0}),
            "rules[3].reset.day: expected a day of the month from 1 to 28 (every month has it), got 0",
        ),
        (
            "1mo",
            json!({"day": "1"}),
            r#"rules[3].reset.day: expected a day of the month from 1 to 28 (every month has it), got "1""#,
        ),
        (
            "1w",
            json!({"weekday": "monday"}),
            r#"rules[3].reset.weekday: "monday" is not one of: mon, tue, wed, thu, fri, sat, sun"#,
        ),
        ("1w", json!({"tz": "UTC"}), "rules[3].reset.tz: unknown field (expected one of: timezone, at, day, weekday)"),
        ("1w", json!("UTC"), "rules[3].reset: expected an object, got a string"),
        (
            "7d",
            json!({}),
            r#"rules[3].window: "7d" cannot reset on the calendar (with "reset" use "1d", "1w" or "1mo")"#,
        ),
        (
            "24h",
            json!({}),
            r#"rules[3].window: "24h" cannot reset on the calendar (with "reset" use "1d", "1w" or "1mo")"#,
        ),
        (
            "5mo",
            json!({}),
            r#"rules[3].window: "5mo": a number of months must divide a year (1mo, 2mo, 3mo, 4mo, 6mo or 12mo)"#,
        ),
        (
            "2w",
            json!({}),
            r#"rules[3].window: "2w" is not a calendar window (weeks: "1w"; months: "1mo", "3mo", "12mo")"#,
        ),
        (
            "0mo",
            json!({}),
            r#"rules[3].window: "0mo" is not a calendar window (weeks: "1w"; months: "1mo", "3mo", "12mo")"#,
        ),
    ];
    for (window, reset, expected) in cases {
        assert_eq!(err(window, reset.clone()), expected, "{window} {reset}");
    }
    assert_eq!(
        parse("2w", None).err().unwrap(),
        r#"rules[3].window: "2w" is not a calendar window (weeks: "1w"; months: "1mo", "3mo", "12mo")"#
    );
    assert!(parse("24mo", None).is_err());
}

#[test]
fn every_bundled_zone_is_accepted_and_tiles_2026() {
    let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
    assert!(names.len() > 500, "{} zones", names.len());
    for name in ["Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT-14", "US/Pacific", "Europe/Kyiv"] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
    for name in &names {
        let zone = Zone::get(name).unwrap_or_else(|| panic!("{name}"));
        assert!(zone.name().eq_ignore_ascii_case(name), "{name} -> {}", zone.name());
        for (cycle, at) in [(Cycle::Day, 150), (Cycle::Week, 0), (Cycle::Months(1), 23 * 60 + 30)] {
            let w = CalendarWindow::new(cycle, zone.clone(), at, 1, Weekday::Sun);
            for month in 1..=12 {
                let now = ns(&format!("2026-{month:02}-10T12:00"));
                let p = w.period(now);
                check_period(&w, now, p);
                assert_eq!(w.period(p.end_ns).start_ns, p.end_ns, "{w}");
                assert_eq!(w.period(p.start_ns - 1).end_ns, p.start_ns, "{w}");
            }
        }
    }
}
