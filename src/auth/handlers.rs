//! HTTP endpoints of sign-in, registration and the caller's own profile.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, get, patch, post, put, web};

use crate::auth::api::{
    ChangePasswordRequest, LoginRequest, LogoutRequest, MeResponse, RefreshRequest, RegisterRequest, TokenResponse,
    UpdateMeRequest,
};
use crate::auth::principal::Principal;
use crate::auth::service;
use crate::error::{ApiResult, Problem};
use crate::startup::AppState;

/// Sign in with username and password.
///
/// Unknown user, wrong password and locked account get the same answer. After 10
/// consecutive failures an account is locked for 15 minutes.
///
/// Role: public (no token).
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "`invalid_body`, `validation_failed` (password over 128 characters)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub async fn login(state: web::Data<AppState>, body: web::Json<LoginRequest>) -> ApiResult<HttpResponse> {
    let LoginRequest { username, password } = body.into_inner();
    Ok(tokens(service::login(&state, username, password).await?))
}

/// Token responses must not be cached anywhere (RFC 6749 §5.1).
fn tokens(tokens: TokenResponse) -> HttpResponse {
    HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::NoStore])).json(tokens)
}

/// Exchange a refresh token for a new token pair.
///
/// Each refresh token works once. Presenting it again within 30 seconds (a retry
/// after a lost response) returns the same new pair; later, it revokes the whole
/// session.
///
/// Role: public (no token); the refresh token is the credential.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, description = "`invalid_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_refresh_token`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    Ok(web::Json(service::refresh(&state, &body.refresh_token).await?))
}

/// End a session: its refresh token and the access tokens issued with it stop working.
///
/// Role: public (no token); the refresh token is the credential.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "auth",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "Signed out (also when the token was already dead)"),
        (status = 400, description = "`invalid_body`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, body: web::Json<LogoutRequest>) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A resident signs up with their community's join code.
///
/// The membership is `pending` until staff set it `active`. A pending resident can
/// sign in and see their profile.
///
/// Role: public (no token); the join code names the community.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; membership pending", body = MeResponse),
        (status = 400, description = "`invalid_body`, `validation_failed` (among others: a `username` of characters other than letters, digits and `. _ - @`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_join_code`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/register")]
pub async fn register(state: web::Data<AppState>, body: web::Json<RegisterRequest>) -> ApiResult<HttpResponse> {
    let profile = service::register(&state, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(profile))
}

/// The caller's profile and role grants.
///
/// Role: any signed-in user.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/me")]
pub async fn me(principal: Principal) -> web::Json<MeResponse> {
    web::Json(MeResponse::new(principal.user, principal.memberships))
}

/// Change the caller's display name, phone number or whether leaderboards name them.
///
/// Role: any signed-in user, for their own account.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated profile", body = MeResponse),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<UpdateMeRequest>,
) -> ApiResult<HttpResponse> {
    service::update_me(&state, principal, body.into_inner()).await
}

/// Change the caller's password. Every session of the user ends: sign in again.
///
/// Role: any signed-in user, for their own account.
#[utoipa::path(
    extensions(("x-required-roles" = json!([]))),
    tag = "me",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; all sessions revoked"),
        (status = 400, description = "`invalid_body`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`current_password_incorrect`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    body: web::Json<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    service::change_password(&state, principal, body.into_inner()).await
}
