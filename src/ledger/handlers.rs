//! HTTP endpoints of the ledger, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::ledger::api::{
    AccountResponse, AwardRequest, DeductionRequest, ReversalRequest, TransactionListQuery, TransactionResponse,
    VerifyResponse,
};
use crate::ledger::service;
use crate::pagination::Page;
use crate::startup::AppState;

/// Award points to one or more active residents (staff), in one transaction.
///
/// Requires `Idempotency-Key`: a retry with the same key and body replays the first answer
/// (`Idempotent-Replayed: true`) and awards nothing twice.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = AwardRequest,
    responses(
        (status = 201, description = "Awarded", body = TransactionResponse, headers(("Location" = String, description = "URL of the transaction"), ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not staff of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community in the caller's reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`resident_not_active` (nothing is written), `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/awards")]
pub async fn award(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<AwardRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    service::award(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// Deduct points from a resident for breaking the convention (staff). Never takes a balance below zero.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = DeductionRequest,
    responses(
        (status = 201, description = "Deducted", body = TransactionResponse, headers(("Location" = String, description = "URL of the transaction"), ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_points`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`resident_not_active`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/deductions")]
pub async fn deduct(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<DeductionRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    service::deduct(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// Reverse an award or a deduction with a linked compensating transaction (staff).
///
/// Reversing an award takes back what is left of those very points first, then from the
/// rest of the balance; if the balance cannot cover it, nothing happens (409 `insufficient_points`).
/// A transaction is reversed at most once; a reversal cannot itself be reversed.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("transaction_id" = Uuid, Path, description = "The transaction to reverse"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = ReversalRequest,
    responses(
        (status = 201, description = "Reversed", body = TransactionResponse, headers(("Location" = String, description = "URL of the reversal"), ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community or transaction", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_reversed`, `insufficient_points`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`not_reversible`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/transactions/{transaction_id}/reversal")]
pub async fn reverse(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<ReversalRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    let (community_id, transaction_id) = path.into_inner();
    service::reverse(&state, principal, scope, community_id.to_string(), transaction_id.to_string(), body.into_inner())
        .await
}

/// The community's transactions, newest first (staff and auditors: all; residents: their own).
///
/// Role: any role on the community: staff, auditors and admins see every transaction, a resident only their own.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), TransactionListQuery),
    responses(
        (status = 200, description = "A page of transactions", body = Page<TransactionResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a resident asking for someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/transactions")]
pub async fn list_transactions(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<TransactionListQuery>,
) -> ApiResult<web::Json<Page<TransactionResponse>>> {
    Ok(web::Json(
        service::list_transactions(&state, principal, path.into_inner().to_string(), query.into_inner()).await?,
    ))
}

/// One transaction with its postings, chain sequence and hash.
///
/// Role: any role on the community: staff, auditors and admins see every transaction, a resident only those of their own account.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("transaction_id" = Uuid, Path, description = "The transaction")),
    responses(
        (status = 200, description = "The transaction", body = TransactionResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for a resident asking about another resident's)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/transactions/{transaction_id}")]
pub async fn get_transaction(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<TransactionResponse>> {
    let (community_id, transaction_id) = path.into_inner();
    Ok(web::Json(
        service::get_transaction(&state, principal, community_id.to_string(), transaction_id.to_string()).await?,
    ))
}

/// The caller's own points in this community.
///
/// Role: resident of the community (the caller's own account; without one the answer is 404).
#[utoipa::path(
    extensions(("x-required-roles" = json!(["resident"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community")),
    responses(
        (status = 200, description = "The caller's account", body = AccountResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community, or no account in it", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/accounts/me")]
pub async fn my_account(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<AccountResponse>> {
    Ok(web::Json(service::account(&state, principal, path.into_inner().to_string(), None).await?))
}

/// A resident's points (the resident themself, staff and auditors).
///
/// Role: staff, auditor or admin of the community for any resident; a resident for their own account only.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("user_id" = Uuid, Path, description = "The resident")),
    responses(
        (status = 200, description = "The resident's account", body = AccountResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community or account in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/accounts/{user_id}")]
pub async fn account(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<AccountResponse>> {
    let (community_id, user_id) = path.into_inner();
    Ok(web::Json(service::account(&state, principal, community_id.to_string(), Some(user_id.to_string())).await?))
}

/// Recompute the community's hash chain (auditors and admins).
///
/// Reports whether every transaction still matches its hash, the first that does not,
/// and the head (sequence and hash): the checkpoint to write down and compare next time.
///
/// Role: auditor or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "auditor"]))),
    tag = "ledger",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community")),
    responses(
        (status = 200, description = "The verification result", body = VerifyResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an auditor or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/ledger/verify")]
pub async fn verify(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<VerifyResponse>> {
    Ok(web::Json(service::verify(&state, principal, path.into_inner().to_string()).await?))
}
