//! A community's local calendar: where days, weeks (from Monday), months and years begin.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Year,
}

/// The UTC instant a local date starts: the earliest, should a time change make midnight
/// ambiguous, or the first instant after the gap, should midnight not exist (clocks that
/// jump forward at midnight, as in Santiago or Havana).
pub fn local_midnight(date: NaiveDate, timezone: Tz) -> Option<NaiveDateTime> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    (0..=180)
        .map(|minutes| midnight + chrono::Duration::minutes(minutes))
        .find_map(|local| timezone.from_local_datetime(&local).earliest())
        .map(|local| local.naive_utc())
}

/// When the local period containing `now` began, in UTC.
pub fn period_start(now: DateTime<Utc>, timezone: Tz, period: Period) -> Option<NaiveDateTime> {
    let today = now.with_timezone(&timezone).date_naive();
    let first_day = match period {
        Period::Day => today,
        Period::Week => today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))?,
        Period::Month => NaiveDate::from_ymd_opt(today.year(), today.month(), 1)?,
        Period::Year => NaiveDate::from_ymd_opt(today.year(), 1, 1)?,
    };
    local_midnight(first_day, timezone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_local_midnight() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // Tuesday 2026-12-01 01:00 in Shanghai.
        let now = DateTime::parse_from_rfc3339("2026-11-30T17:00:00Z").unwrap().with_timezone(&Utc);
        let start = |period| period_start(now, shanghai, period).unwrap().to_string();
        assert_eq!(start(Period::Day), "2026-11-30 16:00:00");
        assert_eq!(start(Period::Week), "2026-11-29 16:00:00");
        assert_eq!(start(Period::Month), "2026-11-30 16:00:00");
        assert_eq!(start(Period::Year), "2025-12-31 16:00:00");
    }

    #[test]
    fn a_midnight_skipped_by_daylight_saving_starts_the_day_after_the_gap() {
        // Chile moved its clocks from 00:00 to 01:00 on 2024-09-08.
        let santiago = chrono_tz::America::Santiago;
        let day = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        assert_eq!(local_midnight(day, santiago).unwrap().to_string(), "2024-09-08 04:00:00");
    }
}
