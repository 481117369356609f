//! HTTP endpoints of orders in the points shop, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::redemptions::api::{FulfilmentRequest, OrderRequest, RedemptionListQuery, RedemptionResponse};
use crate::redemptions::service;
use crate::startup::AppState;

/// Order a reward: its points are held (out of the soonest-expiring lots) until the handover.
///
/// An active resident orders for themself; staff may order for a resident (`user_id`). Requires `Idempotency-Key`.
///
/// Role: resident of the community, for themself; staff or admin of the community, for a resident (`user_id`).
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "resident"]))),
    tag = "redemptions",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = OrderRequest,
    responses(
        (status = 201, description = "Ordered; pending, with its pickup code", body = RedemptionResponse, headers(("Location" = String, description = "URL of the order"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_points`, `out_of_stock`, `limit_reached`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reward_unavailable`, `resident_not_active`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/redemptions")]
pub async fn order(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<OrderRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    service::order(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// Orders, oldest first: staff and auditors see all (and look one up by `pickup_code`), residents their own.
///
/// Role: any role on the community: staff, auditors and admins see every order, a resident their own.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "redemptions",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), RedemptionListQuery),
    responses(
        (status = 200, description = "A page of orders", body = Page<RedemptionResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a resident asking for someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/redemptions")]
pub async fn list_redemptions(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<RedemptionListQuery>,
) -> ApiResult<web::Json<Page<RedemptionResponse>>> {
    Ok(web::Json(service::list(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// One order (staff and auditors; residents their own).
///
/// Role: any role on the community: staff, auditors and admins see every order, a resident their own.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "redemptions",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("redemption_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = RedemptionResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/redemptions/{redemption_id}")]
pub async fn get_redemption(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<RedemptionResponse>> {
    let (community_id, redemption_id) = path.into_inner();
    Ok(web::Json(service::get(&state, principal, community_id.to_string(), redemption_id.to_string()).await?))
}

/// Hand the reward over (staff), checking the resident's pickup code: the held points are spent.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "redemptions",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("redemption_id" = Uuid, Path, description = "The order"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = FulfilmentRequest,
    responses(
        (status = 200, description = "Fulfilled", body = RedemptionResponse),
        (status = 400, description = "`invalid_body`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`redemption_not_pending`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_pickup_code`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_pickup_attempts`: five wrong codes in a row lock the order's handover for 15 minutes", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/redemptions/{redemption_id}/fulfilment")]
pub async fn fulfil(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<FulfilmentRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    let (community_id, redemption_id) = path.into_inner();
    service::fulfil(&state, principal, scope, community_id.to_string(), redemption_id.to_string(), body.into_inner())
        .await
}

/// Cancel a pending order (the resident, or staff): the points go back to the lots they came from, and the stock back to the shelf.
///
/// Role: staff or admin of the community, or the resident who ordered.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "resident"]))),
    tag = "redemptions",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("redemption_id" = Uuid, Path, description = "The order"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    responses(
        (status = 200, description = "Cancelled", body = RedemptionResponse),
        (status = 400, description = "`invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`redemption_not_pending`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/redemptions/{redemption_id}/cancellation")]
pub async fn cancel(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &());
    let (community_id, redemption_id) = path.into_inner();
    service::cancel(&state, principal, scope, community_id.to_string(), redemption_id.to_string()).await
}
