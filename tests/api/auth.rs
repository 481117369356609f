use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{ADMIN_PASSWORD, PASSWORD, TestApp, expect_problem, expect_status, json_of};

both_backends!(
    login_returns_a_token_pair,
    failed_logins_look_the_same_whatever_the_reason,
    ten_failures_lock_the_account_for_fifteen_minutes,
    refresh_rotates_and_tolerates_one_quick_retry,
    reusing_a_refresh_token_late_revokes_the_session,
    concurrent_refreshes_with_one_token_get_one_pair,
    logout_ends_the_session,
    password_change_ends_every_session,
    weak_password_hashes_are_upgraded_at_login,
    profile_can_be_read_and_changed,
);

async fn login_returns_a_token_pair(app: &TestApp) {
    let response = expect_status(app.login_response("admin", ADMIN_PASSWORD).await, StatusCode::OK).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = json_of(response).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(tokens["refresh_token"].as_str().unwrap().len() > 40);
    let me = json_of(
        expect_status(app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await, StatusCode::OK).await,
    )
    .await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["memberships"][0]["roles"], json!(["admin"]));
    assert_eq!(me["memberships"][0]["unit"]["kind"], "platform");
    // Usernames are case-insensitive.
    app.login("ADMIN", ADMIN_PASSWORD).await;
}

async fn failed_logins_look_the_same_whatever_the_reason(app: &TestApp) {
    let unknown = expect_problem(
        app.login_response("nobody", "whatever password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let wrong = expect_problem(
        app.login_response("admin", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(unknown, wrong);
    // Over-long passwords are refused before any hashing.
    expect_problem(
        app.login_response("admin", &"x".repeat(10_000)).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
}

async fn ten_failures_lock_the_account_for_fifteen_minutes(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "锁").await;
    app.add_member(&admin, crate::helpers::id(&tree.community), "locked.out", &["resident"]).await;
    let wrong = expect_problem(
        app.login_response("locked.out", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    for _ in 1..10 {
        expect_status(app.login_response("locked.out", "wrong password").await, StatusCode::UNAUTHORIZED).await;
    }
    // Locked: even the right password fails, with the very same answer.
    let locked = expect_problem(
        app.login_response("locked.out", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(locked, wrong);
    // Other accounts are unaffected.
    app.admin().await;
    app.clock.advance(Duration::minutes(14));
    expect_status(app.login_response("locked.out", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    app.clock.advance(Duration::minutes(1) + Duration::seconds(1));
    app.login("locked.out", PASSWORD).await;
    // The count starts afresh after a success: nine failures do not lock.
    for _ in 0..9 {
        expect_status(app.login_response("locked.out", "wrong password").await, StatusCode::UNAUTHORIZED).await;
    }
    app.login("locked.out", PASSWORD).await;
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh_token}))).await
}

async fn refresh_rotates_and_tolerates_one_quick_retry(app: &TestApp) {
    let first = app.login_tokens("admin", ADMIN_PASSWORD).await;
    app.clock.advance(Duration::minutes(1));
    let second =
        json_of(expect_status(refresh(app, first["refresh_token"].as_str().unwrap()).await, StatusCode::OK).await)
            .await;
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    expect_status(app.get("/api/v1/me", second["access_token"].as_str().unwrap()).await, StatusCode::OK).await;

    // The phone lost the answer and retries within 30 s: the same pair again.
    app.clock.advance(Duration::seconds(29));
    let retried =
        json_of(expect_status(refresh(app, first["refresh_token"].as_str().unwrap()).await, StatusCode::OK).await)
            .await;
    assert_eq!(retried, second);

    // The new refresh token works once.
    let third =
        json_of(expect_status(refresh(app, second["refresh_token"].as_str().unwrap()).await, StatusCode::OK).await)
            .await;
    expect_status(app.get("/api/v1/me", third["access_token"].as_str().unwrap()).await, StatusCode::OK).await;

    // Garbage and forged tokens are refused.
    expect_problem(refresh(app, "not-a-token").await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let forged = format!("{}.AAAA", third["refresh_token"].as_str().unwrap().split('.').next().unwrap());
    expect_problem(refresh(app, &forged).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

async fn reusing_a_refresh_token_late_revokes_the_session(app: &TestApp) {
    let first = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let second =
        json_of(expect_status(refresh(app, first["refresh_token"].as_str().unwrap()).await, StatusCode::OK).await)
            .await;
    app.clock.advance(Duration::seconds(31));
    // Replayed after the grace period: theft. The whole family dies.
    expect_problem(
        refresh(app, first["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    expect_problem(
        refresh(app, second["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    expect_problem(
        app.get("/api/v1/me", second["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Other sessions of the same user live on.
    app.admin().await;
}

async fn concurrent_refreshes_with_one_token_get_one_pair(app: &TestApp) {
    let first = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let token = first["refresh_token"].as_str().unwrap();
    let responses = futures::future::join_all((0..10).map(|_| refresh(app, token))).await;
    let mut pairs = Vec::new();
    for response in responses {
        pairs.push(json_of(expect_status(response, StatusCode::OK).await).await);
    }
    assert!(pairs.iter().all(|pair| *pair == pairs[0]), "every retry gets the same pair");
}

async fn logout_ends_the_session(app: &TestApp) {
    let tokens = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let response = app.request(Method::POST, "/api/v1/auth/logout", None, Some(body.clone())).await;
    expect_status(response, StatusCode::NO_CONTENT).await;
    expect_problem(
        refresh(app, tokens["refresh_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    expect_problem(
        app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Logging out again is harmless.
    expect_status(app.request(Method::POST, "/api/v1/auth/logout", None, Some(body)).await, StatusCode::NO_CONTENT)
        .await;
}

async fn password_change_ends_every_session(app: &TestApp) {
    let phone = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let laptop = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let access = laptop["access_token"].as_str().unwrap();
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    let response =
        app.request(Method::PUT, "/api/v1/me/password", Some(access), Some(change("wrong", "new password 1"))).await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "current_password_incorrect").await;
    let response =
        app.request(Method::PUT, "/api/v1/me/password", Some(access), Some(change(ADMIN_PASSWORD, "short"))).await;
    expect_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    let response = app
        .request(Method::PUT, "/api/v1/me/password", Some(access), Some(change(ADMIN_PASSWORD, "new password 1")))
        .await;
    expect_status(response, StatusCode::NO_CONTENT).await;

    for session in [&phone, &laptop] {
        expect_status(app.get("/api/v1/me", session["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED)
            .await;
        expect_status(refresh(app, session["refresh_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED).await;
    }
    expect_status(app.login_response("admin", ADMIN_PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    app.login("admin", "new password 1").await;
}

both_backends!(guessing_the_current_password_locks_the_account);

/// A stolen access token is no way around the lock.
async fn guessing_the_current_password_locks_the_account(app: &TestApp) {
    let token = app.admin().await;
    let guess = json!({"current_password": "a wrong guess", "new_password": "new password 1"});
    for _ in 0..10 {
        let response = app.request(Method::PUT, "/api/v1/me/password", Some(&token), Some(guess.clone())).await;
        expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "current_password_incorrect").await;
    }
    let right = json!({"current_password": ADMIN_PASSWORD, "new_password": "new password 1"});
    let response = app.request(Method::PUT, "/api/v1/me/password", Some(&token), Some(right)).await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "current_password_incorrect").await;
    expect_status(app.login_response("admin", ADMIN_PASSWORD).await, StatusCode::UNAUTHORIZED).await;
}

async fn weak_password_hashes_are_upgraded_at_login(app: &TestApp) {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    use diesel::prelude::*;
    use jifen::db::schema::users;

    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(ADMIN_PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
    .unwrap()
    .to_string();
    let db = app.database();
    let stored_hash = move |set: Option<String>| {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = db.blocking_connection().unwrap();
                if let Some(hash) = set {
                    diesel::update(users::table.filter(users::username.eq("admin")))
                        .set(users::password_hash.eq(hash))
                        .execute(&mut *conn)
                        .unwrap();
                }
                users::table
                    .filter(users::username.eq("admin"))
                    .select(users::password_hash)
                    .first::<String>(&mut *conn)
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    assert!(stored_hash(Some(weak)).await.contains("m=4096,t=1,p=1"));
    app.login("admin", ADMIN_PASSWORD).await;
    assert!(stored_hash(None).await.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    app.login("admin", ADMIN_PASSWORD).await;
}

async fn profile_can_be_read_and_changed(app: &TestApp) {
    let admin = app.admin().await;
    let me = json_of(
        expect_status(
            app.patch("/api/v1/me", &admin, json!({"display_name": " 管理员 ", "phone": "13800138000"})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(me["display_name"], "管理员");
    assert_eq!(me["phone"], "13800138000");
    let me =
        json_of(expect_status(app.patch("/api/v1/me", &admin, json!({"phone": null})).await, StatusCode::OK).await)
            .await;
    assert_eq!(me["phone"], json!(null));
    assert_eq!(me["display_name"], "管理员");
    expect_problem(
        app.patch("/api/v1/me", &admin, json!({"phone": "call me"})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    // Roles cannot be assigned through the profile.
    expect_problem(
        app.patch("/api/v1/me", &admin, json!({"roles": ["admin"]})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
}

both_backends!(parallel_registrations_of_one_username_create_one_user, parallel_failures_all_count_towards_the_lock);

async fn parallel_registrations_of_one_username_create_one_user(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "并发").await;
    let body = json!({"join_code": tree.community["join_code"], "username": "same.name", "password": "a good password", "display_name": "x"});
    let responses = futures::future::join_all(
        (0..10).map(|_| app.request(Method::POST, "/api/v1/auth/register", None, Some(body.clone()))),
    )
    .await;
    let mut created = 0;
    for response in responses {
        if response.status() == StatusCode::CREATED {
            created += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "username_taken").await;
        }
    }
    assert_eq!(created, 1);
}

async fn parallel_failures_all_count_towards_the_lock(app: &TestApp) {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, "并锁").await;
    app.add_member(&admin, crate::helpers::id(&tree.community), "many.tries", &["resident"]).await;
    let responses =
        futures::future::join_all((0..10).map(|_| app.login_response("many.tries", "wrong password"))).await;
    assert!(responses.iter().all(|response| response.status() == StatusCode::UNAUTHORIZED));
    expect_problem(app.login_response("many.tries", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
}
