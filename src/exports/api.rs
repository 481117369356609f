//! Query parameters of the exports.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Dates outside these years are refused: no record is that old or that new.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=9998;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First local date to include (`YYYY-MM-DD`, in the community's timezone); default: from the beginning.
    pub from: Option<NaiveDate>,
    /// Last local date to include (`YYYY-MM-DD`, inclusive); default: up to the moment of the export.
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
