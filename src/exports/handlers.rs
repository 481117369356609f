//! HTTP endpoints of the CSV exports.
//!
//! Access and parameters are checked before the response starts, so a refusal is a
//! problem, never a truncated file. Once rows flow, a failure can only abort the body
//! (the connection closes before the end of the chunked body); it is logged under the
//! request id.

use actix_web::{HttpResponse, get, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::exports::api::{ExportQuery, LEDGER_CSV_EXAMPLE, PARTICIPATION_CSV_EXAMPLE, REDEMPTIONS_CSV_EXAMPLE};
use crate::exports::service;
use crate::startup::AppState;

/// The community's ledger as CSV, one row per posting, in chain order (staff, auditors, admins).
///
/// Columns: `community_id`, `community_name`, `sequence`, `transaction_id`, `created_at` (local time
/// with offset), `created_at_utc` (exactly as hashed), `kind`, `rule_code`, `memo`, `actor_id`, `actor_name`,
/// `cause_type`, `cause_id`, `reverses_id`, `line`, `account_id`, `account_kind`, `holder_id`, `holder_name`
/// (the resident holding the account), `amount` (signed), `previous_hash`, `hash`. An empty cell is an
/// absent value. The file alone lets an auditor recompute every hash (docs/ledger-hash-chain.md).
///
/// The rows and the chain head in `X-Jifen-Chain-Sequence` / `X-Jifen-Chain-Hash` come from one
/// snapshot: the file holds exactly the transactions up to that head (within `from`/`to`).
/// A text cell starting with `=`, `+`, `-`, `@`, tab, CR, LF or `'` has one `'` put in front
/// (against formula injection); remove it to get the stored text. RFC 4180, CRLF line ends.
///
/// Role: staff, auditor or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "exports",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ExportQuery),
    responses(
        (status = 200, description = "The CSV file, streamed", body = String, content_type = "text/csv", headers(
            ("Content-Disposition" = String, description = "`attachment; filename=\"jifen-ledger-<community id>-<yyyymmdd>.csv\"`"),
            ("X-Jifen-Chain-Sequence" = i64, description = "Sequence of the chain head the file was read at"),
            ("X-Jifen-Chain-Hash" = String, description = "Hash of that head"),
        ), example = json!(LEDGER_CSV_EXAMPLE)),
        (status = 400, description = "`validation_failed`: a bad `from`, `to` or `bom`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not staff, auditor or admin of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/exports/ledger.csv")]
pub async fn export_community_ledger(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    service::community_ledger(&state, principal, path.into_inner().to_string(), query.into_inner()).await
}

/// The community's orders in the points shop as CSV, oldest first (staff, auditors, admins).
///
/// Columns: `redemption_id`, `created_at`, `resident_id`, `resident_name`, `reward_id`, `reward_name`,
/// `quantity`, `points`, `status`, `ordered_by`, `resolved_by`, `resolved_at`, `hold_transaction_id`,
/// `settle_transaction_id`. Never the pickup codes. `from`/`to` select by order time.
///
/// Role: staff, auditor or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "exports",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ExportQuery),
    responses(
        (status = 200, description = "The CSV file, streamed", body = String, content_type = "text/csv", headers(
            ("Content-Disposition" = String, description = "`attachment; filename=\"jifen-redemptions-<community id>-<yyyymmdd>.csv\"`"),
        ), example = json!(REDEMPTIONS_CSV_EXAMPLE)),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not staff, auditor or admin of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/exports/redemptions.csv")]
pub async fn export_redemptions(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    service::redemptions(&state, principal, path.into_inner().to_string(), query.into_inner()).await
}

/// The community's activity registrations as CSV, by activity (staff, auditors, admins).
///
/// Columns: `activity_id`, `activity_title`, `starts_at`, `ends_at`, `activity_points`, `activity_status`,
/// `resident_id`, `resident_name`, `registered_at`, `checked_in_at`, `check_in_method`.
/// `from`/`to` select by registration time.
///
/// Role: staff, auditor or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "exports",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ExportQuery),
    responses(
        (status = 200, description = "The CSV file, streamed", body = String, content_type = "text/csv", headers(
            ("Content-Disposition" = String, description = "`attachment; filename=\"jifen-participation-<community id>-<yyyymmdd>.csv\"`"),
        ), example = json!(PARTICIPATION_CSV_EXAMPLE)),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not staff, auditor or admin of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/exports/participation.csv")]
pub async fn export_participation(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    service::participation(&state, principal, path.into_inner().to_string(), query.into_inner()).await
}

/// The ledgers of every community at or below a unit (e.g. a street or district) as one CSV
/// (auditors and admins of the unit or above).
///
/// The columns of the community ledger export, communities one after the other (in unit-path
/// order), each in chain order and up to its head at the moment of the export; every row names
/// its community. No chain headers: each community's head is its last transaction's `sequence` and `hash`.
///
/// Role: auditor or admin of the unit.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "auditor"]))),
    tag = "exports",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The street, district or other unit"), ExportQuery),
    responses(
        (status = 200, description = "The CSV file, streamed", body = String, content_type = "text/csv", headers(
            ("Content-Disposition" = String, description = "`attachment; filename=\"jifen-ledger-<unit id>-<yyyymmdd>.csv\"`"),
        ), example = json!(LEDGER_CSV_EXAMPLE)),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an auditor or admin of the unit", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such unit in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/units/{unit_id}/exports/ledger.csv")]
pub async fn export_unit_ledger(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> ApiResult<HttpResponse> {
    service::unit_ledger(&state, principal, path.into_inner().to_string(), query.into_inner()).await
}
