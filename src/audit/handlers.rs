//! HTTP endpoint of the audit log.

use actix_web::{get, web};

use crate::audit::api::{AuditLogQuery, AuditRecordResponse};
use crate::audit::service;
use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::pagination::Page;
use crate::startup::AppState;

/// The audit log (auditors and admins): every state-changing request by staff or admins,
/// every sign-in and every export, newest first, limited to the caller's units.
///
/// A record is written in the same transaction as the change it describes; a refused or
/// failed request is recorded just after it is answered. Records are never changed or deleted.
///
/// Role: auditor or admin of a unit: the records of the units where the caller holds that role, and of those below.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "auditor"]))),
    tag = "audit",
    security(("bearer" = [])),
    params(AuditLogQuery),
    responses(
        (status = 200, description = "A page of records, newest first", body = Page<AuditRecordResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an auditor or admin (of `unit`, when given)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: `unit` is not in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/audit-log")]
pub async fn audit_log(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditLogQuery>,
) -> ApiResult<web::Json<Page<AuditRecordResponse>>> {
    Ok(web::Json(service::list(&state, principal, query.into_inner()).await?))
}
