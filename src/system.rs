//! Liveness, readiness and the API description.

use actix_web::{HttpResponse, get, web};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, Problem};
use crate::startup::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(tag = "system", responses((status = 200, description = "Up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// The database answers.
#[utoipa::path(
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "`service_unavailable`: the database does not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Health>> {
    state
        .db
        .read(|conn| {
            conn.batch_execute("SELECT 1").map_err(|err| {
                tracing::warn!(error = %err, "readiness check failed");
                ApiError::new(crate::error::ErrorCode::ServiceUnavailable, "the database does not answer")
            })
        })
        .await?;
    Ok(web::Json(Health { status: "ok" }))
}

/// This API's OpenAPI description.
#[utoipa::path(tag = "system", responses((status = 200, description = "OpenAPI 3.1 YAML", content_type = "application/yaml", body = String)))]
#[get("/openapi.yaml")]
pub async fn openapi_yaml(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(state.openapi_yaml.clone())
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(openapi_yaml).service(crate::metrics::metrics);
}
