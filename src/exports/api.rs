//! Query parameters of the exports.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// What the files look like (header and first rows of the demo community's), for the contract.
pub const LEDGER_CSV_EXAMPLE: &str = "\
community_id,community_name,sequence,transaction_id,created_at,created_at_utc,kind,rule_code,memo,actor_id,actor_name,\
cause_type,cause_id,reverses_id,line,account_id,account_kind,holder_id,holder_name,amount,previous_hash,hash\r\n\
01a21c13-7045-708a-8d76-afd3b2e72d3b,福寓苑社区,1,01a21c13-80c5-7760-a028-5ebbad4f9a08,2026-10-25T12:00:00+08:00,\
2026-10-25T04:00:00.000000Z,award,corridor_cleanup,活动: 清理楼道杂物,01a21c13-7089-757e-93f8-d6d96beba982,张桂兰,activity,\
01a21c13-7aa8-762b-8ca6-53f1476820f3,,1,01a21c13-7045-708a-8d76-afd497388bf1,issuance,,,-10,\
0000000000000000000000000000000000000000000000000000000000000000,\
aa2f541113cb92fcd4e659f75048f170a58432eae2e6a98eff779c3d4de7a45d\r\n\
01a21c13-7045-708a-8d76-afd3b2e72d3b,福寓苑社区,1,01a21c13-80c5-7760-a028-5ebbad4f9a08,2026-10-25T12:00:00+08:00,\
2026-10-25T04:00:00.000000Z,award,corridor_cleanup,活动: 清理楼道杂物,01a21c13-7089-757e-93f8-d6d96beba982,张桂兰,activity,\
01a21c13-7aa8-762b-8ca6-53f1476820f3,,2,01a21c13-713a-76e3-b47c-ad488bc505b9,resident,01a21c13-7139-73c6-a655-747d652ab53b,\
张秀英,10,0000000000000000000000000000000000000000000000000000000000000000,\
aa2f541113cb92fcd4e659f75048f170a58432eae2e6a98eff779c3d4de7a45d\r\n";

pub const REDEMPTIONS_CSV_EXAMPLE: &str = "\
redemption_id,created_at,resident_id,resident_name,reward_id,reward_name,quantity,points,status,ordered_by,resolved_by,\
resolved_at,hold_transaction_id,settle_transaction_id\r\n\
01a21c13-829d-70b8-b8ea-b940f8285e61,2026-10-26T08:00:00+08:00,01a21c13-7216-731b-9cfd-e6f113668538,刘志强,\
01a21c13-7a1c-72fe-8842-01c010d84d3a,抽纸一提,1,20,fulfilled,01a21c13-7216-731b-9cfd-e6f113668538,\
01a21c13-7089-757e-93f8-d6d96beba982,2026-10-26T08:00:00+08:00,01a21c13-829d-70b8-b8ea-b941433ada6b,\
01a21c13-82db-7485-87dd-37bbabd49fa4\r\n";

pub const PARTICIPATION_CSV_EXAMPLE: &str = "\
activity_id,activity_title,starts_at,ends_at,activity_points,activity_status,resident_id,resident_name,registered_at,\
checked_in_at,check_in_method\r\n\
01a21c13-7aa8-762b-8ca6-53f1476820f3,清理楼道杂物,2026-10-25T09:00:00+08:00,2026-10-25T11:00:00+08:00,10,completed,\
01a21c13-7139-73c6-a655-747d652ab53b,张秀英,2026-10-23T09:00:00+08:00,2026-10-25T09:30:00+08:00,staff\r\n";

/// Dates outside these years are refused: no record is that old or that new.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=9998;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First local date to include (`YYYY-MM-DD`, in the community's timezone, years 2000 to 9998); default: from the beginning.
    #[param(pattern = r"^(?:2[0-9]{3}|[3-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<NaiveDate>,
    /// Last local date to include (`YYYY-MM-DD`, inclusive, years 2000 to 9998); default: up to the moment of the export.
    #[param(pattern = r"^(?:2[0-9]{3}|[3-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<NaiveDate>,
    /// Start the file with a UTF-8 byte-order mark, which Excel on Windows needs to show Chinese text (default `true`).
    pub bom: Option<bool>,
}

/// What an export was asked for, checked.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub bom: bool,
}

impl ExportQuery {
    pub fn validate(self) -> ApiResult<ExportOptions> {
        for date in [self.from, self.to].into_iter().flatten() {
            if !YEARS.contains(&date.year()) {
                return Err(ApiError::validation(format!(
                    "from and to must be dates in the years {} to {}",
                    YEARS.start(),
                    YEARS.end()
                )));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(ApiError::validation("from must not be after to"));
        }
        Ok(ExportOptions { from: self.from, to: self.to, bom: self.bom.unwrap_or(true) })
    }
}
