//! HTTP endpoints of the points shop's catalogue, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::rewards::api::{CreateRewardRequest, RewardListQuery, RewardResponse, UpdateRewardRequest};
use crate::rewards::service;
use crate::startup::AppState;

/// The catalogue: staff see all of it, residents what is active and available now.
///
/// Role: any role on the community; residents and auditors see only the rewards on offer now.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "rewards",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), RewardListQuery),
    responses(
        (status = 200, description = "A page of rewards, in the order they were added", body = Page<RewardResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/rewards")]
pub async fn list_rewards(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<RewardListQuery>,
) -> ApiResult<web::Json<Page<RewardResponse>>> {
    Ok(web::Json(service::list(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// Add a reward to the catalogue (staff).
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "rewards",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CreateRewardRequest,
    responses(
        (status = 201, description = "Added", body = RewardResponse, headers(("Location" = String, description = "URL of the reward"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/rewards")]
pub async fn create_reward(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<CreateRewardRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::create(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// One reward (residents: only while it is on offer).
///
/// Role: any role on the community; residents and auditors see only the rewards on offer now.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "rewards",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("reward_id" = Uuid, Path, description = "The reward")),
    responses(
        (status = 200, description = "The reward", body = RewardResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/rewards/{reward_id}")]
pub async fn get_reward(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<RewardResponse>> {
    let (community_id, reward_id) = path.into_inner();
    Ok(web::Json(service::get(&state, principal, community_id.to_string(), reward_id.to_string()).await?))
}

/// Change a reward: price, stock, limits, availability (staff).
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "rewards",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("reward_id" = Uuid, Path, description = "The reward")),
    request_body = UpdateRewardRequest,
    responses(
        (status = 200, description = "The updated reward", body = RewardResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/communities/{community_id}/rewards/{reward_id}")]
pub async fn update_reward(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<UpdateRewardRequest>,
) -> ApiResult<HttpResponse> {
    let (community_id, reward_id) = path.into_inner();
    service::update(&state, principal, community_id.to_string(), reward_id.to_string(), body.into_inner()).await
}
