//! HTTP endpoints of residents' claims, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::claims::api::{ApprovalRequest, ClaimListQuery, ClaimResponse, CreateClaimRequest, RejectionRequest};
use crate::claims::service;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::startup::AppState;

/// File a claim for a good deed (an active resident of the community).
///
/// Role: resident of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["resident"]))),
    tag = "claims",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = CreateClaimRequest,
    responses(
        (status = 201, description = "Filed; pending", body = ClaimResponse, headers(("Location" = String, description = "URL of the claim"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a resident of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for pending residents)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_rule`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_open_claims`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/claims")]
pub async fn create_claim(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<CreateClaimRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::create(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// Claims, oldest first: staff and auditors see the community's (the review queue), residents their own.
///
/// Role: any role on the community: staff, auditors and admins see every claim, a resident their own.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "claims",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ClaimListQuery),
    responses(
        (status = 200, description = "A page of claims", body = Page<ClaimResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a resident asking for someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/claims")]
pub async fn list_claims(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ClaimListQuery>,
) -> ApiResult<web::Json<Page<ClaimResponse>>> {
    Ok(web::Json(service::list(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// One claim (staff and auditors; residents their own).
///
/// Role: any role on the community: staff, auditors and admins see every claim, a resident their own.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "claims",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("claim_id" = Uuid, Path, description = "The claim")),
    responses(
        (status = 200, description = "The claim", body = ClaimResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/claims/{claim_id}")]
pub async fn get_claim(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<ClaimResponse>> {
    let (community_id, claim_id) = path.into_inner();
    Ok(web::Json(service::get(&state, principal, community_id.to_string(), claim_id.to_string()).await?))
}

/// Approve a claim (staff): awards its points through the ledger, exactly once.
///
/// Requires `Idempotency-Key`. Staff may not approve their own claims or their household's.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "claims",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("claim_id" = Uuid, Path, description = "The claim"),
        ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = ApprovalRequest,
    responses(
        (status = 200, description = "Approved; `transaction_id` names the award", body = ClaimResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, `conflict_of_interest`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`claim_already_decided`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_rule`, `points_out_of_range`, `rule_cap_exceeded`, `resident_not_active`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/claims/{claim_id}/approval")]
pub async fn approve_claim(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<ApprovalRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    let (community_id, claim_id) = path.into_inner();
    service::approve(&state, principal, scope, community_id.to_string(), claim_id.to_string(), body.into_inner()).await
}

/// Reject a claim with a reason the resident will see (staff).
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "claims",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("claim_id" = Uuid, Path, description = "The claim"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = RejectionRequest,
    responses(
        (status = 200, description = "Rejected", body = ClaimResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`claim_already_decided`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/claims/{claim_id}/rejection")]
pub async fn reject_claim(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<RejectionRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    let (community_id, claim_id) = path.into_inner();
    service::reject(&state, principal, scope, community_id.to_string(), claim_id.to_string(), body.into_inner()).await
}
