//! When points expire: a community's policy, applied at local midnight.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, Utc};

use crate::calendar::local_midnight;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::units::model::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum ExpiryPolicy {
    /// Points never expire (the default).
    Never,
    /// Points earned on a local date D expire at the local midnight that ends day D + `days`.
    Days {
        /// 1 to 3650.
        #[schema(minimum = 1, maximum = 3650)]
        days: i32,
    },
    /// Points earned in local year Y expire at the end of year Y + 1 (a common 积分 rule).
    YearEnd,
}

impl ExpiryPolicy {
    pub fn of(community: &Unit) -> Self {
        match (community.expiry_policy.as_deref(), community.expiry_days) {
            (Some("days"), Some(days)) => ExpiryPolicy::Days { days },
            (Some("year_end"), _) => ExpiryPolicy::YearEnd,
            _ => ExpiryPolicy::Never,
        }
    }

    /// The (expiry_policy, expiry_days) columns.
    pub fn columns(self) -> (String, Option<i32>) {
        match self {
            ExpiryPolicy::Never => ("never".to_owned(), None),
            ExpiryPolicy::Days { days } => ("days".to_owned(), Some(days)),
            ExpiryPolicy::YearEnd => ("year_end".to_owned(), None),
        }
    }

    pub fn is_valid(self) -> bool {
        !matches!(self, ExpiryPolicy::Days { days } if !(1..=3650).contains(&days))
    }

    /// When points earned at `earned_at` expire (UTC), or None if they never do.
    pub fn expires_at(self, earned_at: DateTime<Utc>, timezone: Tz) -> Option<NaiveDateTime> {
        let earned_on = earned_at.with_timezone(&timezone).date_naive();
        let expiry_date = match self {
            ExpiryPolicy::Never => return None,
            ExpiryPolicy::Days { days } => earned_on.checked_add_days(Days::new(u64::try_from(days).ok()? + 1))?,
            ExpiryPolicy::YearEnd => NaiveDate::from_ymd_opt(earned_on.year() + 2, 1, 1)?,
        };
        local_midnight(expiry_date, timezone)
    }
}

pub fn timezone_of(community: &Unit) -> Tz {
    community.timezone.as_deref().and_then(|tz| tz.parse().ok()).unwrap_or(chrono_tz::Asia::Shanghai)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn days_count_from_the_local_date_and_end_at_local_midnight() {
        let shanghai = chrono_tz::Asia::Shanghai;
        let policy = ExpiryPolicy::Days { days: 30 };
        // 2026-03-01 23:30 in Shanghai is still March 1st there (15:30 UTC).
        assert_eq!(
            policy.expires_at(utc("2026-03-01T15:30:00Z"), shanghai).unwrap().to_string(),
            "2026-03-31 16:00:00"
        );
        // Half an hour later it is March 2nd in Shanghai: one more day.
        assert_eq!(
            policy.expires_at(utc("2026-03-01T16:00:00Z"), shanghai).unwrap().to_string(),
            "2026-04-01 16:00:00"
        );
        assert_eq!(ExpiryPolicy::Never.expires_at(utc("2026-03-01T16:00:00Z"), shanghai), None);
    }

    #[test]
    fn year_end_means_the_end_of_the_following_year() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // Earned on 2026-12-31 23:59 local: expires at 2028-01-01 00:00 local.
        assert_eq!(
            ExpiryPolicy::YearEnd.expires_at(utc("2026-12-31T15:59:00Z"), shanghai).unwrap().to_string(),
            "2027-12-31 16:00:00"
        );
        // A minute later it is 2027 locally: a year more.
        assert_eq!(
            ExpiryPolicy::YearEnd.expires_at(utc("2026-12-31T16:00:00Z"), shanghai).unwrap().to_string(),
            "2028-12-31 16:00:00"
        );
    }
}
