//! HTTP endpoints of point rules, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::rules::api::{CreateRuleRequest, RuleListQuery, RuleResponse, UpdateRuleRequest};
use crate::rules::service;
use crate::startup::AppState;

/// The community's point rules (everyone in the community), in code order.
///
/// Role: any role on the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "rules",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), RuleListQuery),
    responses(
        (status = 200, description = "A page of rules", body = Page<RuleResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/rules")]
pub async fn list_rules(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<RuleListQuery>,
) -> ApiResult<web::Json<Page<RuleResponse>>> {
    Ok(web::Json(service::list(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// Add a rule (staff).
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "rules",
    security(("bearer" = [])),
    params(
        ("community_id" = Uuid, Path, description = "The community"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$"),
    ),
    request_body = CreateRuleRequest,
    responses(
        (status = 201, description = "Created", body = RuleResponse, headers(("Location" = String, description = "URL of the rule"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`rule_code_taken`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/rules")]
pub async fn create_rule(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<CreateRuleRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::create(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// Change a rule (staff). Its code stays; past transactions keep citing it.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "rules",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("rule_id" = Uuid, Path, description = "The rule")),
    request_body = UpdateRuleRequest,
    responses(
        (status = 200, description = "The updated rule", body = RuleResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/communities/{community_id}/rules/{rule_id}")]
pub async fn update_rule(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<UpdateRuleRequest>,
) -> ApiResult<HttpResponse> {
    let (community_id, rule_id) = path.into_inner();
    service::update(&state, principal, community_id.to_string(), rule_id.to_string(), body.into_inner()).await
}
