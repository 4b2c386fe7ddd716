//! Proleptic Gregorian civil dates as day counts, without a date crate (H. Hinnant's
//! `days_from_civil` / `civil_from_days`). Every function is total: out-of-range input is
//! clamped (years to ±1,000,000,000, months to 1..=12, days to 1..=31), so no arithmetic
//! here can overflow.

/// Day numbers are counted from 1970-01-01 (day 0; earlier dates are negative).
const MAX_YEAR: i64 = 1_000_000_000;
const MAX_DAYS: i64 = 366 * MAX_YEAR;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (y, m, d) = (y.clamp(-MAX_YEAR, MAX_YEAR), m.clamp(1, 12), d.clamp(1, 31));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month 1..=12, day 1..=31)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.clamp(-MAX_DAYS, MAX_DAYS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // doy in 0..=365 and mp in 0..=11: both fit a u32.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap_year(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of the week of a day count since 1970-01-01: 0 = Monday .. 6 = Sunday
/// (1970-01-01 was a Thursday).
pub fn weekday_from_days(z: i64) -> u32 {
    u32::try_from(z.saturating_add(3).rem_euclid(7)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2028, 2, 29) + 1, days_from_civil(2028, 3, 1));
        assert_eq!(weekday_from_days(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(weekday_from_days(days_from_civil(2026, 3, 30)), 0, "2026-03-30 is a Monday");
        assert_eq!(weekday_from_days(-1), 2);
    }

    #[test]
    fn every_day_round_trips_from_1900_to_2600() {
        let (from, to) = (days_from_civil(1900, 1, 1), days_from_civil(2600, 12, 31));
        let mut expected = (1900, 1, 1);
        for z in from..=to {
            let (y, m, d) = civil_from_days(z);
            assert_eq!((y, m, d), expected, "day {z}");
            assert_eq!(days_from_civil(y, m, d), z);
            expected = if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn extreme_input_is_clamped_not_overflowed() {
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
        let _ = days_from_civil(i64::MAX, u32::MAX, u32::MAX);
        let _ = days_from_civil(i64::MIN, 0, 0);
        let _ = weekday_from_days(i64::MIN);
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000) && is_leap_year(2028) && !is_leap_year(1900) && !is_leap_year(2100));
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2027, 2), 28);
        assert_eq!(days_in_month(2026, 4), 30);
        assert_eq!(days_in_month(2026, 1), 31);
    }
}
