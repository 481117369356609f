//! What each export contains, who may have it, and how its rows are written.

use actix_web::HttpResponse;
use actix_web::http::header::HeaderName;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat};
use chrono_tz::Tz;

use crate::auth::principal::Principal;
use crate::calendar::local_midnight;
use crate::db::{DbConnection, prefer_index_order};
use crate::error::{ApiError, ApiResult};
use crate::exports::api::{ExportOptions, ExportQuery};
use crate::exports::model::{
    self, LedgerParties, LedgerRow, ParticipationRow, RedemptionRow, TimeRange, each_ledger_row,
    each_participation_row, each_redemption_row,
};
use crate::exports::stream::{self, Cell, CsvFile, CsvOut, StreamError};
use crate::ledger::chain::canonical_time;
use crate::ledger::expiry::timezone_of;
use crate::ledger::model::LedgerHead;
use crate::ledger::service::{community_to_read, is_reader};
use crate::startup::AppState;
use crate::units::model::Unit;

pub const CHAIN_SEQUENCE: HeaderName = HeaderName::from_static("x-jifen-chain-sequence");
pub const CHAIN_HASH: HeaderName = HeaderName::from_static("x-jifen-chain-hash");

/// Bounds for a range left open: before and after any stored time, and within what both
/// backends can store.
const EARLIEST: NaiveDateTime = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(date) => NaiveDateTime::new(date, NaiveTime::MIN),
    None => panic!("0001-01-01 is a date"),
};
const LATEST: NaiveDateTime = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(date) => NaiveDateTime::new(date, NaiveTime::MIN),
    None => panic!("9999-12-31 is a date"),
};

/// One row per posting. `created_at_utc` is the time exactly as the hash chain covers it;
/// with the ids, `memo`, `line`, `account_id`, `amount` and `previous_hash` it is all an auditor
/// needs to recompute every `hash` (see docs/ledger-hash-chain.md).
pub const LEDGER_COLUMNS: [&str; 22] = [
    "community_id",
    "community_name",
    "sequence",
    "transaction_id",
    "created_at",
    "created_at_utc",
    "kind",
    "rule_code",
    "memo",
    "actor_id",
    "actor_name",
    "cause_type",
    "cause_id",
    "reverses_id",
    "line",
    "account_id",
    "account_kind",
    "holder_id",
    "holder_name",
    "amount",
    "previous_hash",
    "hash",
];

pub const REDEMPTION_COLUMNS: [&str; 14] = [
    "redemption_id",
    "created_at",
    "resident_id",
    "resident_name",
    "reward_id",
    "reward_name",
    "quantity",
    "points",
    "status",
    "ordered_by",
    "resolved_by",
    "resolved_at",
    "hold_transaction_id",
    "settle_transaction_id",
];

pub const PARTICIPATION_COLUMNS: [&str; 11] = [
    "activity_id",
    "activity_title",
    "starts_at",
    "ends_at",
    "activity_points",
    "activity_status",
    "resident_id",
    "resident_name",
    "registered_at",
    "checked_in_at",
    "check_in_method",
];

/// The stored times from the local date `from` to the end of the local date `to`.
fn time_range(options: &ExportOptions, timezone: Tz) -> TimeRange {
    // The query checked the dates' years, so a given date always has a local midnight.
    let midnight = |date: NaiveDate| local_midnight(date, timezone);
    TimeRange {
        from: options.from.and_then(midnight).unwrap_or(EARLIEST),
        until: options.to.and_then(|to| to.succ_opt()).and_then(midnight).unwrap_or(LATEST),
    }
}

/// RFC 3339 in the community's timezone, with its offset.
fn local_time(time: NaiveDateTime, timezone: Tz) -> String {
    time.and_utc().with_timezone(&timezone).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn file_name(state: &AppState, export: &str, unit: &Unit) -> String {
    let today = state.clock.now().with_timezone(&timezone_of(unit)).format("%Y%m%d");
    format!("jifen-{export}-{}-{today}.csv", unit.id)
}

/// The community, if the caller is its staff, auditor or admin, with the checked options.
async fn readable_community(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ExportQuery,
) -> ApiResult<(Unit, ExportOptions)> {
    let options = query.validate()?;
    let community = state
        .db
        .read(move |conn| {
            let (community, _) = community_to_read(conn, &principal, &community_id, is_reader, "export its records")?;
            Ok(community)
        })
        .await?;
    Ok((community, options))
}

pub async fn community_ledger(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ExportQuery,
) -> ApiResult<HttpResponse> {
    let (community, options) = readable_community(state, principal, community_id, query).await?;
    let file = CsvFile { filename: file_name(state, "ledger", &community), bom: options.bom, columns: &LEDGER_COLUMNS };
    let prepare = move |conn: &mut _| {
        let head = LedgerHead::read(conn, &community.id)?;
        let headers = vec![(CHAIN_SEQUENCE, head.sequence.to_string()), (CHAIN_HASH, head.hash)];
        Ok(((community, head.sequence), headers))
    };
    stream::respond(&state.db, file, prepare, move |conn, (community, head_sequence), out| {
        write_ledger(conn, out, &community, head_sequence, &options)
    })
    .await
}

/// The ledgers of every community at or below a street or district (auditors and admins
/// of the unit or above). Each community's chain head is its last row: one pair of headers
/// cannot hold many heads.
pub async fn unit_ledger(
    state: &AppState,
    principal: Principal,
    unit_id: String,
    query: ExportQuery,
) -> ApiResult<HttpResponse> {
    let options = query.validate()?;
    let unit = state
        .db
        .read(move |conn| {
            let unit = Unit::find(conn, &unit_id)?.ok_or_else(|| ApiError::not_found("unit"))?;
            principal.authorize(
                &unit,
                |roles| roles.auditor || roles.admin,
                "export the ledgers of its communities",
            )?;
            Ok(unit)
        })
        .await?;
    let file = CsvFile { filename: file_name(state, "ledger", &unit), bom: options.bom, columns: &LEDGER_COLUMNS };
    let prepare = move |conn: &mut _| Ok((model::communities_within(conn, &unit)?, Vec::new()));
    stream::respond(&state.db, file, prepare, move |conn, communities, out| {
        for (community, head) in communities {
            write_ledger(conn, out, &community, head.sequence, &options)?;
        }
        Ok(())
    })
    .await
}

fn write_ledger(
    conn: &mut DbConnection,
    out: &mut CsvOut,
    community: &Unit,
    head_sequence: i64,
    options: &ExportOptions,
) -> Result<(), StreamError> {
    let timezone = timezone_of(community);
    let parties = LedgerParties::read(conn, &community.id)?;
    // The postings of one transaction share its times: format them once per transaction.
    let mut times: Option<(i64, String, String)> = None;
    prefer_index_order(conn)?;
    each_ledger_row(conn, &community.id, head_sequence, time_range(options, timezone), |row: LedgerRow| {
        let transaction = &row.transaction;
        let (_, created_at, created_at_utc) = match &mut times {
            Some(formatted) if formatted.0 == transaction.sequence => formatted,
            slot => slot.insert((
                transaction.sequence,
                local_time(transaction.created_at, timezone),
                canonical_time(transaction.created_at),
            )),
        };
        let (account_kind, holder_id) = parties.account(&row.account_id).ok_or_else(|| {
            StreamError::Inconsistent(format!(
                "posting {}/{} is on account {}, which is not of community {}",
                transaction.id, row.line, row.account_id, community.id
            ))
        })?;
        let cells: [Cell; LEDGER_COLUMNS.len()] = [
            Cell::Text(&community.id),
            Cell::Text(&community.name),
            Cell::Number(transaction.sequence),
            Cell::Text(&transaction.id),
            Cell::Text(created_at),
            Cell::Text(created_at_utc),
            Cell::Text(&transaction.kind),
            Cell::optional(transaction.rule_code.as_deref()),
            Cell::Text(&transaction.memo),
            Cell::optional(transaction.actor_id.as_deref()),
            Cell::optional(parties.name(transaction.actor_id.as_deref())),
            Cell::optional(transaction.cause_type.as_deref()),
            Cell::optional(transaction.cause_id.as_deref()),
            Cell::optional(transaction.reverses_id.as_deref()),
            Cell::Number(i64::from(row.line)),
            Cell::Text(&row.account_id),
            Cell::Text(account_kind),
            Cell::optional(holder_id),
            Cell::optional(parties.name(holder_id)),
            Cell::Number(row.amount),
            Cell::Text(&transaction.previous_hash),
            Cell::Text(&transaction.hash),
        ];
        out.row(&cells)
    })
}

/// A community export without chain headers, whose rows `write` writes.
async fn community_export(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ExportQuery,
    (export, columns): (&str, &'static [&'static str]),
    write: fn(&mut DbConnection, &Unit, TimeRange, Tz, &mut CsvOut) -> Result<(), StreamError>,
) -> ApiResult<HttpResponse> {
    let (community, options) = readable_community(state, principal, community_id, query).await?;
    let file = CsvFile { filename: file_name(state, export, &community), bom: options.bom, columns };
    let prepare = move |_: &mut _| Ok((community, Vec::new()));
    stream::respond(&state.db, file, prepare, move |conn, community, out| {
        let timezone = timezone_of(&community);
        write(conn, &community, time_range(&options, timezone), timezone, out)
    })
    .await
}

pub async fn redemptions(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ExportQuery,
) -> ApiResult<HttpResponse> {
    let export = ("redemptions", &REDEMPTION_COLUMNS[..]);
    community_export(state, principal, community_id, query, export, write_redemptions).await
}

fn write_redemptions(
    conn: &mut DbConnection,
    community: &Unit,
    range: TimeRange,
    timezone: Tz,
    out: &mut CsvOut,
) -> Result<(), StreamError> {
    each_redemption_row(conn, &community.id, range, |row: RedemptionRow| {
        let created_at = local_time(row.created_at, timezone);
        let resolved_at = row.resolved_at.map(|at| local_time(at, timezone));
        let cells: [Cell; REDEMPTION_COLUMNS.len()] = [
            Cell::Text(&row.id),
            Cell::Text(&created_at),
            Cell::Text(&row.user_id),
            Cell::Text(&row.user_name),
            Cell::Text(&row.reward_id),
            Cell::Text(&row.reward_name),
            Cell::Number(i64::from(row.quantity)),
            Cell::Number(row.points),
            Cell::Text(&row.status),
            Cell::Text(&row.ordered_by),
            Cell::optional(row.resolved_by.as_deref()),
            Cell::optional(resolved_at.as_deref()),
            Cell::Text(&row.hold_transaction_id),
            Cell::optional(row.settle_transaction_id.as_deref()),
        ];
        out.row(&cells)
    })
}

pub async fn participation(
    state: &AppState,
    principal: Principal,
    community_id: String,
    query: ExportQuery,
) -> ApiResult<HttpResponse> {
    let export = ("participation", &PARTICIPATION_COLUMNS[..]);
    community_export(state, principal, community_id, query, export, write_participation).await
}

fn write_participation(
    conn: &mut DbConnection,
    community: &Unit,
    range: TimeRange,
    timezone: Tz,
    out: &mut CsvOut,
) -> Result<(), StreamError> {
    each_participation_row(conn, &community.id, range, |row: ParticipationRow| {
        let [starts_at, ends_at, registered_at] =
            [row.starts_at, row.ends_at, row.registered_at].map(|time| local_time(time, timezone));
        let checked_in_at = row.checked_in_at.map(|at| local_time(at, timezone));
        let cells: [Cell; PARTICIPATION_COLUMNS.len()] = [
            Cell::Text(&row.activity_id),
            Cell::Text(&row.title),
            Cell::Text(&starts_at),
            Cell::Text(&ends_at),
            Cell::Number(row.points),
            Cell::Text(&row.status),
            Cell::Text(&row.user_id),
            Cell::Text(&row.user_name),
            Cell::Text(&registered_at),
            Cell::optional(checked_in_at.as_deref()),
            Cell::optional(row.check_in_method.as_deref()),
        ];
        out.row(&cells)
    })
}
