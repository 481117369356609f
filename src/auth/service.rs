//! Sign-in, token rotation, registration and the caller's own account.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use chrono::{DateTime, Duration, Utc};

use crate::audit::Trail;
use crate::auth::api::{ChangePasswordRequest, MeResponse, RegisterRequest, TokenResponse, UpdateMeRequest};
use crate::auth::model::{RefreshToken, User, UserChanges};
use crate::auth::password::{self, Verification};
use crate::auth::principal::Principal;
use crate::auth::tokens::{ACCESS_TOKEN_TTL, REFRESH_TOKEN_TTL, TokenKeys};
use crate::codes::{is_code, normalize_code};
use crate::db::{DbConnection, new_id};
use crate::error::{ApiError, ApiResult, ErrorCode, unique_violation_as};
use crate::idempotency::{self, Reply, Scope};
use crate::startup::AppState;
use crate::units::model::{Membership, MembershipStatus, Roles, Unit};
use crate::validation;

/// A client that lost the answer to a refresh may retry with the same refresh
/// token for this long and gets the same new pair; later reuse means theft.
pub const REFRESH_RETRY_GRACE: Duration = Duration::seconds(30);

pub const USERNAME_TAKEN: &str = "this username is taken";

fn invalid_credentials() -> ApiError {
    // One answer for unknown user, wrong password and locked account.
    ApiError::new(ErrorCode::InvalidCredentials, "the username or password is incorrect, or the account is locked")
}

fn invalid_refresh_token() -> ApiError {
    ApiError::new(ErrorCode::InvalidRefreshToken, "the refresh token is invalid, expired or revoked; sign in again")
}

fn token_response(keys: &TokenKeys, token: &RefreshToken) -> ApiResult<TokenResponse> {
    Ok(TokenResponse {
        access_token: keys.issue_access(&token.user_id, &token.access_jti, token.issued_at.and_utc())?,
        token_type: "Bearer".to_owned(),
        expires_in: ACCESS_TOKEN_TTL.num_seconds(),
        refresh_token: keys.refresh_token(&token.id),
    })
}

fn new_refresh_token(user_id: &str, family_id: Option<&str>, now: DateTime<Utc>) -> RefreshToken {
    let id = new_id();
    RefreshToken {
        family_id: family_id.map_or_else(|| id.clone(), str::to_owned),
        id,
        user_id: user_id.to_owned(),
        access_jti: new_id(),
        issued_at: now.naive_utc(),
        expires_at: (now + REFRESH_TOKEN_TTL).naive_utc(),
        used_at: None,
        replaced_by: None,
        revoked_at: None,
    }
}

pub async fn login(state: &AppState, username: String, password: String) -> ApiResult<TokenResponse> {
    if password.chars().count() > password::MAX_PASSWORD_CHARS {
        return Err(ApiError::validation(format!(
            "password must be at most {} characters",
            password::MAX_PASSWORD_CHARS
        )));
    }
    // A name no account can have (e.g. with control characters) is an unknown user.
    let valid_username = validation::username(&username).ok();
    let user = match valid_username.clone() {
        Some(username) => state.db.read(move |conn| Ok(User::find_by_username(conn, &username)?)).await?,
        None => None,
    };
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    // Verify (and, when the stored hash is weaker than today's parameters, re-hash)
    // off the async workers; unknown users cost the same as known ones.
    let (verification, upgraded_hash) = actix_web::web::block(move || match stored_hash {
        None => {
            password::verify_dummy(&password);
            (Verification::Mismatch, None)
        }
        Some(stored) => match password::verify(&password, &stored) {
            Verification::Match { needs_rehash: true } => {
                (Verification::Match { needs_rehash: true }, password::hash(&password).ok())
            }
            other => (other, None),
        },
    })
    .await?;
    // Every attempt is recorded in the audit log, in the transaction that counts it,
    // so an unknown user costs one write, as a wrong password does.
    let trail = Trail::current();
    let Some(user) = user else {
        if let Some(username) = valid_username {
            trail.set_target("username", &username);
        }
        state.db.write("", move |conn| Ok(trail.append_error(conn, &invalid_credentials())?)).await?;
        return Err(invalid_credentials());
    };
    trail.set_actor(&user.id);
    let now = state.clock.now();
    let user_id = user.id.clone();
    if let Verification::Mismatch = verification {
        state
            .db
            .write("", move |conn| {
                User::record_failed_login(conn, &user_id, now)?;
                Ok(trail.append_error(conn, &invalid_credentials())?)
            })
            .await?;
        return Err(invalid_credentials());
    }
    let token = state
        .db
        .write("", move |conn| {
            if !User::record_successful_login(conn, &user_id, now)? {
                trail.append_error(conn, &invalid_credentials())?;
                return Ok(None);
            }
            if let Some(hash) = upgraded_hash {
                User::set_password_hash(conn, &user_id, &hash)?;
            }
            let token = new_refresh_token(&user_id, None, now);
            token.insert(conn)?;
            trail.append(conn, StatusCode::OK, None, None)?;
            Ok(Some(token))
        })
        .await?
        .ok_or_else(invalid_credentials)?;
    token_response(&state.tokens, &token)
}

enum Rotation {
    Issued(RefreshToken),
    Invalid,
    Reused,
}

pub async fn refresh(state: &AppState, refresh_token: &str) -> ApiResult<TokenResponse> {
    let id = state.tokens.parse_refresh_token(refresh_token).ok_or_else(invalid_refresh_token)?;
    let now = state.clock.now();
    let rotation = state.db.write("", move |conn| rotate(conn, &id, now)).await?;
    match rotation {
        Rotation::Issued(token) => token_response(&state.tokens, &token),
        Rotation::Invalid => Err(invalid_refresh_token()),
        Rotation::Reused => {
            tracing::warn!("a used refresh token was presented again; its token family is revoked");
            Err(invalid_refresh_token())
        }
    }
}

fn rotate(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> ApiResult<Rotation> {
    let Some(token) = RefreshToken::find(conn, id)? else {
        return Ok(Rotation::Invalid);
    };
    // Token writes of one user go one at a time, so a revocation (logout, password
    // change, theft) can never miss a successor a concurrent rotation is inserting.
    User::lock_for_update(conn, &token.user_id)?;
    let successor = new_refresh_token(&token.user_id, Some(&token.family_id), now);
    if RefreshToken::claim(conn, id, &successor.id, now.naive_utc())? {
        successor.insert(conn)?;
        return Ok(Rotation::Issued(successor));
    }
    // Someone used it first: re-read what they did (under READ COMMITTED this
    // statement sees their commit).
    let Some(token) = RefreshToken::find(conn, id)? else {
        return Ok(Rotation::Invalid);
    };
    if token.revoked_at.is_some() || token.expires_at <= now.naive_utc() {
        return Ok(Rotation::Invalid);
    }
    if let (Some(used_at), Some(successor_id)) = (token.used_at, &token.replaced_by)
        && now.naive_utc() - used_at <= REFRESH_RETRY_GRACE
    {
        return Ok(match RefreshToken::find(conn, successor_id)? {
            Some(successor) if successor.revoked_at.is_none() => Rotation::Issued(successor),
            _ => Rotation::Invalid,
        });
    }
    RefreshToken::revoke_family(conn, &token.family_id, now.naive_utc())?;
    Ok(Rotation::Reused)
}

pub async fn logout(state: &AppState, refresh_token: &str) -> ApiResult<()> {
    // Logging out twice, or with a token that is already dead, is not an error.
    let Some(id) = state.tokens.parse_refresh_token(refresh_token) else {
        return Ok(());
    };
    let now = state.clock.now().naive_utc();
    state
        .db
        .write("", move |conn| {
            if let Some(token) = RefreshToken::find(conn, &id)? {
                User::lock_for_update(conn, &token.user_id)?;
                RefreshToken::revoke_family(conn, &token.family_id, now)?;
            }
            Ok(())
        })
        .await
}

pub async fn register(state: &AppState, request: RegisterRequest) -> ApiResult<MeResponse> {
    let username = validation::username(&request.username)?;
    password::validate_new_password(&request.password)?;
    let display_name = validation::text("display_name", &request.display_name, validation::MAX_NAME_CHARS)?;
    let phone = validation::phone(request.phone.as_deref())?;
    let household = validation::household(request.household)?;
    let join_code = normalize_code(&request.join_code);
    if !is_code(&join_code) {
        return Err(ApiError::new(ErrorCode::InvalidJoinCode, "no community has this join code"));
    }
    let password = request.password;
    let password_hash = actix_web::web::block(move || password::hash(&password)).await??;
    let now = state.clock.now().naive_utc();
    state
        .db
        .write("", move |conn| {
            let community = Unit::find_by_join_code(conn, &join_code)?
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidJoinCode, "no community has this join code"))?;
            if User::username_exists(conn, &username)? {
                return Err(ApiError::new(ErrorCode::UsernameTaken, USERNAME_TAKEN));
            }
            let user = User::new(username, display_name, phone, password_hash, now);
            user.insert(conn).map_err(unique_violation_as(ErrorCode::UsernameTaken, USERNAME_TAKEN))?;
            let resident = Roles { resident: true, ..Roles::default() };
            let mut membership = Membership::new(&community.id, &user.id, resident, MembershipStatus::Pending, now);
            membership.set_household(household);
            membership.insert(conn)?;
            Ok(MeResponse::new(user, vec![(membership, community)]))
        })
        .await
}

pub async fn update_me(state: &AppState, principal: Principal, request: UpdateMeRequest) -> ApiResult<HttpResponse> {
    let mut changes = UserChanges {
        display_name: request
            .display_name
            .as_deref()
            .map(|name| validation::text("display_name", name, validation::MAX_NAME_CHARS))
            .transpose()?,
        phone: request.phone.map(|phone| validation::phone(phone.as_deref())).transpose()?,
        updated_at: Some(state.clock.now().naive_utc()),
        search_text: None,
        show_on_leaderboard: request.show_on_leaderboard,
    };
    let Principal { user, memberships } = principal;
    idempotency::write(&state.db, Scope::unkeyed(""), state.clock.now(), move |conn| {
        let user = User::update(conn, &user, &mut changes)?;
        Reply::ok(&MeResponse::new(user, memberships))
    })
    .await
}

fn current_password_incorrect() -> ApiError {
    ApiError::new(
        ErrorCode::CurrentPasswordIncorrect,
        "the current password is not correct, or the account is locked after too many attempts",
    )
}

pub async fn change_password(
    state: &AppState,
    principal: Principal,
    request: ChangePasswordRequest,
) -> ApiResult<HttpResponse> {
    password::validate_new_password(&request.new_password)?;
    let now = state.clock.now();
    let user = principal.user;
    let locked = user.is_locked(now);
    let stored = user.password_hash.clone();
    // A stolen access token must not become an unlimited password oracle: wrong
    // current passwords count towards the account lock, as failed sign-ins do.
    let (current_ok, new_hash) = actix_web::web::block(move || {
        let current_ok = matches!(password::verify(&request.current_password, &stored), Verification::Match { .. });
        (current_ok, (current_ok && !locked).then(|| password::hash(&request.new_password)))
    })
    .await?;
    let user_id = user.id;
    let new_hash = match new_hash {
        Some(hash) => hash?,
        None => {
            if !current_ok {
                let trail = Trail::current();
                state
                    .db
                    .write("", move |conn| {
                        User::record_failed_login(conn, &user_id, now)?;
                        Ok(trail.append_error(conn, &current_password_incorrect())?)
                    })
                    .await?;
            }
            return Err(current_password_incorrect());
        }
    };
    idempotency::write(&state.db, Scope::unkeyed(""), now, move |conn| {
        User::set_password(conn, &user_id, &new_hash, now.naive_utc())?;
        RefreshToken::revoke_all_of_user(conn, &user_id, now.naive_utc())?;
        Ok(Reply::no_content())
    })
    .await
}
