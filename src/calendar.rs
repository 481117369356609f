//! A community's local calendar: where days, weeks (from Monday), months, quarters and years begin.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    /// Calendar quarters: January, April, July and October to the end of the third month.
    Quarter,
    Year,
}

impl Period {
    /// The local dates of the period containing `date`: its first day, and the first day of the next.
    pub fn bounds(self, date: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        let first_day = match self {
            Period::Day => date,
            Period::Week => date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))?,
            Period::Month => date.with_day(1)?,
            Period::Quarter => NaiveDate::from_ymd_opt(date.year(), (date.month() - 1) / 3 * 3 + 1, 1)?,
            Period::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
        };
        let next = match self {
            Period::Day => first_day.checked_add_days(Days::new(1))?,
            Period::Week => first_day.checked_add_days(Days::new(7))?,
            Period::Month => first_day.checked_add_months(Months::new(1))?,
            Period::Quarter => first_day.checked_add_months(Months::new(3))?,
            Period::Year => first_day.checked_add_months(Months::new(12))?,
        };
        Some((first_day, next))
    }
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
    let (first_day, _) = period.bounds(now.with_timezone(&timezone).date_naive())?;
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
        assert_eq!(start(Period::Quarter), "2026-09-30 16:00:00");
        assert_eq!(start(Period::Year), "2025-12-31 16:00:00");
    }

    #[test]
    fn periods_end_where_the_next_begins() {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let bounds = |period: Period, day: &str| {
            let (first, next) = period.bounds(date(day)).unwrap();
            (first.to_string(), next.to_string())
        };
        assert_eq!(bounds(Period::Day, "2026-12-31"), ("2026-12-31".into(), "2027-01-01".into()));
        assert_eq!(bounds(Period::Week, "2026-12-31"), ("2026-12-28".into(), "2027-01-04".into()));
        assert_eq!(bounds(Period::Month, "2027-01-31"), ("2027-01-01".into(), "2027-02-01".into()));
        assert_eq!(bounds(Period::Quarter, "2026-11-27"), ("2026-10-01".into(), "2027-01-01".into()));
        assert_eq!(bounds(Period::Quarter, "2026-03-31"), ("2026-01-01".into(), "2026-04-01".into()));
        assert_eq!(bounds(Period::Year, "2026-07-04"), ("2026-01-01".into(), "2027-01-01".into()));
    }

    #[test]
    fn a_midnight_skipped_by_daylight_saving_starts_the_day_after_the_gap() {
        // Chile moved its clocks from 00:00 to 01:00 on 2024-09-08.
        let santiago = chrono_tz::America::Santiago;
        let day = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        assert_eq!(local_midnight(day, santiago).unwrap().to_string(), "2024-09-08 04:00:00");
    }
}
