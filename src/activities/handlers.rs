//! HTTP endpoints of activities, under /api/v1/communities/{community_id}.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use uuid::Uuid;

use crate::activities::api::{
    ActivityListQuery, ActivityResponse, CheckInCodeResponse, CheckInRequest, CompletionRequest, CreateActivityRequest,
    ParticipantListQuery, ParticipantResponse, UpdateActivityRequest,
};
use crate::activities::service;
use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::startup::AppState;

/// Activities in start order: residents see published and completed ones, staff all.
///
/// Role: any role on the community; drafts and cancelled activities are shown to staff and admins only.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ActivityListQuery),
    responses(
        (status = 200, description = "A page of activities", body = Page<ActivityResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/activities")]
pub async fn list_activities(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ActivityListQuery>,
) -> ApiResult<web::Json<Page<ActivityResponse>>> {
    Ok(web::Json(service::list(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// Create an activity (staff), as a draft or published at once.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CreateActivityRequest,
    responses(
        (status = 201, description = "Created", body = ActivityResponse, headers(("Location" = String, description = "URL of the activity"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_rule`, `points_out_of_range`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/activities")]
pub async fn create_activity(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<CreateActivityRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::create(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// One activity, with the caller's own sign-up.
///
/// Role: any role on the community; drafts and cancelled activities are shown to staff and admins only.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity")),
    responses(
        (status = 200, description = "The activity", body = ActivityResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also drafts and cancelled activities for residents)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/activities/{activity_id}")]
pub async fn get_activity(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<ActivityResponse>> {
    let (community_id, activity_id) = path.into_inner();
    Ok(web::Json(service::get(&state, principal, community_id.to_string(), activity_id.to_string()).await?))
}

/// Change an activity, publish or cancel it (staff). Completed and cancelled activities do not change.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity")),
    request_body = UpdateActivityRequest,
    responses(
        (status = 200, description = "The updated activity", body = ActivityResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`activity_closed`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`points_out_of_range`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/communities/{community_id}/activities/{activity_id}")]
pub async fn update_activity(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<UpdateActivityRequest>,
) -> ApiResult<HttpResponse> {
    let (community_id, activity_id) = path.into_inner();
    service::update(&state, principal, community_id.to_string(), activity_id.to_string(), body.into_inner()).await
}

/// Sign up for a published activity (an active resident, for themself), within its capacity.
///
/// Role: resident of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["resident"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    responses(
        (status = 201, description = "Signed up; `my_registration` shows it", body = ActivityResponse, headers(("Location" = String, description = "URL of the sign-up"))),
        (status = 400, description = "`invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not a resident of the community", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for pending residents)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`activity_full`, `already_registered`, `activity_closed`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`registration_closed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/activities/{activity_id}/registrations")]
pub async fn sign_up(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &());
    let (community_id, activity_id) = path.into_inner();
    service::sign_up(&state, principal, scope, community_id.to_string(), activity_id.to_string()).await
}

/// Withdraw the caller's sign-up (not after checking in).
///
/// Role: resident of the community, for their own sign-up.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["resident"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity")),
    responses(
        (status = 204, description = "Withdrawn; the place is free again"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such activity or sign-up", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_checked_in`, `activity_closed`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/communities/{community_id}/activities/{activity_id}/registrations/me")]
pub async fn withdraw(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (community_id, activity_id) = path.into_inner();
    service::withdraw(&state, principal, community_id.to_string(), activity_id.to_string()).await
}

/// The current check-in code (staff), to show on screen or as a QR code.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity")),
    responses(
        (status = 200, description = "The code and when it stops working", body = CheckInCodeResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/activities/{activity_id}/check-in-code")]
pub async fn check_in_code(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<CheckInCodeResponse>> {
    let (community_id, activity_id) = path.into_inner();
    Ok(web::Json(service::check_in_code(&state, principal, community_id.to_string(), activity_id.to_string()).await?))
}

/// Check in: a resident with the code on the screen, or staff for a resident (paper sheets).
///
/// A resident who did not sign up is signed up on the spot, within the capacity. One check-in per resident.
///
/// Role: resident of the community with the code; staff or admin of the community with `user_id`.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "resident"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity"), ("Idempotency-Key" = Option<String>, Header, description = "Optional; a retry with the same key replays the first answer", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CheckInRequest,
    responses(
        (status = 201, description = "Checked in", body = ParticipantResponse, headers(("Location" = String, description = "URL of the participant list"))),
        (status = 400, description = "`invalid_body`, `validation_failed`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_checked_in`, `activity_full`, `activity_closed`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_check_in_code`, `check_in_closed`, `resident_not_active`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/activities/{activity_id}/check-ins")]
pub async fn check_in(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<CheckInRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    let (community_id, activity_id) = path.into_inner();
    service::check_in(&state, principal, scope, community_id.to_string(), activity_id.to_string(), body.into_inner())
        .await
}

/// Complete the activity (staff): pays its points to every checked-in resident, or to the
/// given attendees, in one ledger transaction linked to the activity. Pays nobody twice.
///
/// Requires `Idempotency-Key`.
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity"), ("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID; reuse it when retrying", min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "Completed; `award_transaction_id` names the award", body = ActivityResponse),
        (status = 400, description = "`invalid_body`, `idempotency_key_required`, `invalid_idempotency_key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_completed`, `activity_closed`, `idempotency_in_progress`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`resident_not_active`, `rule_cap_exceeded`, `points_out_of_range`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/communities/{community_id}/activities/{activity_id}/completion")]
pub async fn complete(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<CompletionRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, Some(key.required()?), &request, &*body);
    let (community_id, activity_id) = path.into_inner();
    service::complete(&state, principal, scope, community_id.to_string(), activity_id.to_string(), body.into_inner())
        .await
}

/// Each resident's sign-up, check-in and award (staff).
///
/// Role: staff or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "activities",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), ("activity_id" = Uuid, Path, description = "The activity"), ParticipantListQuery),
    responses(
        (status = 200, description = "A page of participants", body = Page<ParticipantResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/activities/{activity_id}/participants")]
pub async fn participants(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<ParticipantListQuery>,
) -> ApiResult<web::Json<Page<ParticipantResponse>>> {
    let (community_id, activity_id) = path.into_inner();
    Ok(web::Json(
        service::participants(&state, principal, community_id.to_string(), activity_id.to_string(), query.into_inner())
            .await?,
    ))
}
