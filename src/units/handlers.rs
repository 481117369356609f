//! HTTP endpoints of organisation units and memberships.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{IdempotencyKey, Scope};
use crate::pagination::Page;
use crate::startup::AppState;
use crate::units::api::{
    AddMemberRequest, CreateUnitRequest, MemberListQuery, MemberResponse, UnitListQuery, UnitResponse,
    UpdateMemberRequest, UpdateUnitRequest,
};
use crate::units::service;

/// Create a district, street or community (admins of the parent unit).
///
/// Role: admin of the parent unit (of the platform, for a district).
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin"]))),
    tag = "units",
    security(("bearer" = [])),
    request_body = CreateUnitRequest,
    responses(
        (status = 201, description = "Created", body = UnitResponse, headers(("Location" = String, description = "URL of the new unit"))),
        (status = 400, description = "`invalid_body`, `validation_failed` (among others: a `timezone` that is not a known IANA time zone name)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin of the parent", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the parent is not visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`name_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_parent`: wrong kind of parent", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/units")]
pub async fn create_unit(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    body: web::Json<CreateUnitRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::create_unit(&state, principal, scope, body.into_inner()).await
}

/// The units the caller can see: those they hold a role on, and every unit below them.
///
/// Role: any signed-in user; the list holds the units on which the caller has a role, and the units below them.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "units",
    security(("bearer" = [])),
    params(UnitListQuery),
    responses(
        (status = 200, description = "A page of units, in creation order", body = Page<UnitResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/units")]
pub async fn list_units(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<UnitListQuery>,
) -> ApiResult<web::Json<Page<UnitResponse>>> {
    Ok(web::Json(service::list_units(&state, principal, query.into_inner()).await?))
}

/// One unit.
///
/// Role: any role on the unit.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "units",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The unit")),
    responses(
        (status = 200, description = "The unit", body = UnitResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such unit, or not visible to the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/units/{unit_id}")]
pub async fn get_unit(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<UnitResponse>> {
    Ok(web::Json(service::get_unit(&state, principal, path.into_inner().to_string()).await?))
}

/// Rename a unit, change a community's time zone or issue it a new join code (admins of the parent unit).
///
/// Role: admin of the unit's parent (an admin of the unit itself is not enough; the platform is changed by its own admins).
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin"]))),
    tag = "units",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The unit")),
    request_body = UpdateUnitRequest,
    responses(
        (status = 200, description = "The updated unit", body = UnitResponse),
        (status = 400, description = "`invalid_body`, `validation_failed` (among others: a `timezone` that is not a known IANA time zone name)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`name_taken`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/units/{unit_id}")]
pub async fn update_unit(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: web::Json<UpdateUnitRequest>,
) -> ApiResult<HttpResponse> {
    service::update_unit(&state, principal, path.into_inner().to_string(), body.into_inner()).await
}

/// Add a new or existing user to a unit with roles (staff: residents only; admins: any role).
///
/// Members added here are active at once.
///
/// Role: staff or admin of the unit; staff may add residents only.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "members",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The unit")),
    request_body = AddMemberRequest,
    responses(
        (status = 201, description = "Added", body = MemberResponse, headers(("Location" = String, description = "URL of the membership"))),
        (status = 400, description = "`invalid_body`, `validation_failed` (among others: a `new_user.username` of characters other than letters, digits and `. _ - @`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such unit or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_member`, `already_resident_elsewhere`, `username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_role_for_unit`: residents belong to a community", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/units/{unit_id}/members")]
pub async fn add_member(
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<AddMemberRequest>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::new(&principal.user.id, key.optional(), &request, &*body);
    service::add_member(&state, principal, scope, path.into_inner().to_string(), body.into_inner()).await
}

/// The members of a unit (staff, admins and auditors).
///
/// Role: staff, auditor or admin of the unit.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "members",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The unit"), MemberListQuery),
    responses(
        (status = 200, description = "A page of members, in the order they joined", body = Page<MemberResponse>),
        (status = 400, description = "`validation_failed`, `invalid_cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/units/{unit_id}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<MemberListQuery>,
) -> ApiResult<web::Json<Page<MemberResponse>>> {
    Ok(web::Json(service::list_members(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// Change a member's roles (admins), status or household (staff: residents only).
///
/// Role: staff or admin of the unit; staff may change resident-only memberships only, and nobody changes their own roles or status.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff"]))),
    tag = "members",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The unit"), ("user_id" = Uuid, Path, description = "The member's user id")),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, description = "The updated membership", body = MemberResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such unit or member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_resident_elsewhere`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_role_for_unit`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/units/{unit_id}/members/{user_id}")]
pub async fn update_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<UpdateMemberRequest>,
) -> ApiResult<HttpResponse> {
    let (unit_id, user_id) = path.into_inner();
    service::update_member(&state, principal, unit_id.to_string(), user_id.to_string(), body.into_inner()).await
}
