//! HTTP endpoints of leaderboards (评比) and dashboard statistics.

use actix_web::{get, web};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::error::{ApiResult, Problem};
use crate::reports::api::{LeaderboardQuery, LeaderboardResponse, StatsQuery, StatsResponse};
use crate::reports::service;
use crate::startup::AppState;

/// The community's leaderboard (any active member): residents, buildings or compounds ranked
/// by points earned in a month, quarter or year of the community's calendar.
///
/// Earned means awarded less reversals of awards, both counted when made; deductions are shown
/// separately and never lower it. Equal points share a rank (1, 1, 3). Residents who opted out
/// (`PATCH /me`) are masked (e.g. 张**) to other residents, not to staff, auditors or themselves.
///
/// Role: any role on the community; residents see those who opted out masked, and no phone numbers or households.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor", "resident"]))),
    tag = "reports",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), LeaderboardQuery),
    responses(
        (status = 200, description = "The ranking, best first", body = LeaderboardResponse),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/leaderboard")]
pub async fn leaderboard(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<LeaderboardQuery>,
) -> ApiResult<web::Json<LeaderboardResponse>> {
    Ok(web::Json(service::leaderboard(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// A community's figures per day, week or month of its calendar, for the staff dashboard
/// (staff, auditors, admins).
///
/// Role: staff, auditor or admin of the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "reports",
    security(("bearer" = [])),
    params(("community_id" = Uuid, Path, description = "The community"), StatsQuery),
    responses(
        (status = 200, description = "The figures, bucket by bucket", body = StatsResponse),
        (status = 400, description = "`validation_failed`: bad dates, `to` before `from`, or more than 400 buckets", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: residents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such community in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/communities/{community_id}/stats")]
pub async fn community_stats(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<StatsQuery>,
) -> ApiResult<web::Json<StatsResponse>> {
    Ok(web::Json(service::community_stats(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}

/// The same figures summed over every community of a street or district (staff, auditors, admins of it).
///
/// Buckets follow the communities' time zone if they share one, else UTC. Top rules and
/// rewards are per community (codes and catalogues are each community's own).
///
/// Role: staff, auditor or admin of the unit.
#[utoipa::path(
    extensions(("x-required-roles" = json!(["admin", "staff", "auditor"]))),
    tag = "reports",
    security(("bearer" = [])),
    params(("unit_id" = Uuid, Path, description = "The street or district (a community gives its own figures)"), StatsQuery),
    responses(
        (status = 200, description = "The figures, bucket by bucket", body = StatsResponse),
        (status = 400, description = "`validation_failed`: bad dates, `to` before `from`, or more than 400 buckets", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: residents", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such unit in the caller's reach", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/units/{unit_id}/stats")]
pub async fn unit_stats(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<StatsQuery>,
) -> ApiResult<web::Json<StatsResponse>> {
    Ok(web::Json(service::unit_stats(&state, principal, path.into_inner().to_string(), query.into_inner()).await?))
}
