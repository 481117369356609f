//! Liveness, readiness and the API description.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use actix_web::{HttpResponse, get, web};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, Problem};
use crate::startup::AppState;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
///
/// Role: public (no token).
#[utoipa::path(extensions(("x-required-roles" = json!([]))), tag = "system", responses((status = 200, description = "Up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// The database answers.
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
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
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "system",
    responses(
        (status = 200, description = "OpenAPI 3.1 YAML", content_type = "application/yaml", body = String,
         example = "openapi: 3.1.0\ninfo:\n  title: jifen API\n  version: 0.1.0\npaths:\n  /healthz:\n    get:\n      summary: The process is up.\n"),
    )
)]
#[get("/openapi.yaml")]
pub async fn openapi_yaml(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(state.openapi_yaml.clone())
}

/// The reference page may run its own script and styles, and nothing from elsewhere.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// An interactive reference of this API (Scalar), with everything it needs served by
/// this binary: it works offline and behind firewalls that block CDNs.
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "system",
    responses(
        (status = 200, description = "The reference page", content_type = "text/html", body = String,
         example = "<!doctype html>\n<html>\n<head><title>Scalar API Reference</title></head>\n<body><script id=\"api-reference\"></script><script src=\"/docs/scalar.js\"></script></body>\n</html>\n"),
    )
)]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    let configuration = serde_json::json!({
        "url": "/openapi.yaml",
        "withDefaultFonts": false,
        "hideClientButton": true,
        "showDeveloperTools": "never",
    });
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((CONTENT_SECURITY_POLICY, DOCS_CONTENT_SECURITY_POLICY))
        .body(scalar_api_reference::scalar_html(&configuration, Some("/docs/scalar.js")))
}

/// The script of the reference page, built into the binary.
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "system",
    responses(
        (status = 200, description = "JavaScript", content_type = "text/javascript", body = String,
         example = "/* Scalar API reference */\n(function () { /* ... */ })();\n"),
        (status = 500, description = "`internal_error`: the build lacks the script", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/docs/scalar.js")]
pub async fn docs_script() -> ApiResult<HttpResponse> {
    let script = scalar_api_reference::get_asset("scalar.js")
        .ok_or_else(|| ApiError::internal("the API reference script is missing from the build"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=86400"))
        .body(script))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(openapi_yaml)
        .service(docs)
        .service(docs_script)
        .service(crate::metrics::metrics);
}
