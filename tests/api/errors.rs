//! Bad input of every kind gets a precise problem+json 4xx, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, id};

both_backends!(
    bad_bodies_are_refused_precisely,
    unknown_routes_methods_and_ids,
    bad_paging_parameters,
    nul_characters_never_reach_the_database
);

/// PostgreSQL rejects NUL in text with an error; every entry point must refuse it first.
async fn nul_characters_never_reach_the_database(app: &TestApp) {
    let admin = app.admin().await;
    let login = json!({"username": "ad\u{0}min", "password": "whatever password"});
    expect_problem(
        app.request(Method::POST, "/api/v1/auth/login", None, Some(login)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let register = json!({"join_code": "AB\u{0}CDEFG", "username": "nul.user", "password": "a good password", "display_name": "x"});
    expect_problem(
        app.request(Method::POST, "/api/v1/auth/register", None, Some(register)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_join_code",
    )
    .await;
    let unit = json!({"kind": "district", "name": "a\u{0}b"});
    expect_problem(app.post("/api/v1/units", &admin, unit).await, StatusCode::BAD_REQUEST, "validation_failed").await;
    // A cursor that decodes to a string with a NUL in it.
    expect_problem(app.get("/api/v1/units?cursor=IgAi", &admin).await, StatusCode::BAD_REQUEST, "invalid_cursor").await;
    let me = json!({"display_name": "x\u{0}"});
    expect_problem(app.patch("/api/v1/me", &admin, me).await, StatusCode::BAD_REQUEST, "validation_failed").await;
}

async fn bad_bodies_are_refused_precisely(app: &TestApp) {
    let admin = app.admin().await;
    let send = |body: String, content_type: &'static str| {
        let request = app
            .client
            .post(app.url("/api/v1/units"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body);
        async move { request.send().await.unwrap() }
    };
    let json_type = "application/json";
    for (body, what) in [
        ("{\"kind\": \"district\", \"name\": ", "truncated JSON"),
        ("not json at all", "no JSON"),
        ("{\"kind\": \"district\", \"name\": 42}", "a wrong type"),
        ("{\"kind\": \"district\"}", "a missing field"),
        ("{\"kind\": \"district\", \"name\": \"x\", \"owner\": \"me\"}", "an unknown field"),
        ("{\"kind\": \"village\", \"name\": \"x\"}", "an unknown enum value"),
        ("[]", "an array"),
        ("", "an empty body"),
    ] {
        let problem =
            expect_problem(send(body.to_owned(), json_type).await, StatusCode::BAD_REQUEST, "invalid_body").await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    let problem = expect_problem(
        send(format!("{{\"kind\": \"district\", \"name\": \"{}\"}}", "x".repeat(70 * 1024)), json_type).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("65536"));
    expect_problem(
        send("{}".to_owned(), "text/plain").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Nothing was half-written: only the platform exists.
    let units = crate::helpers::json_of(app.get("/api/v1/units", &admin).await).await;
    assert_eq!(units["items"].as_array().unwrap().len(), 1);
}

async fn unknown_routes_methods_and_ids(app: &TestApp) {
    let admin = app.admin().await;
    expect_problem(app.get("/api/v1/nothing-here", &admin).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(app.request(Method::GET, "/", None, None).await, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.request(Method::DELETE, "/api/v1/units", Some(&admin), None).await;
    assert_eq!(response.headers()["allow"], "GET, POST");
    expect_problem(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    expect_problem(
        app.request(Method::GET, "/api/v1/auth/login", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    // Ids that are not UUIDs, or UUIDs of nothing: 404.
    expect_problem(app.get("/api/v1/units/not-a-uuid", &admin).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        app.get(&format!("/api/v1/units/{}", uuid::Uuid::now_v7()), &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let tree = app.community_tree(&admin, "错").await;
    expect_problem(
        app.patch(
            &format!("/api/v1/units/{}/members/{}", id(&tree.community), uuid::Uuid::now_v7()),
            &admin,
            json!({"status": "active"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Unauthenticated calls to protected routes: 401, not 404 or 500.
    expect_problem(
        app.request(Method::GET, "/api/v1/units", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn bad_paging_parameters(app: &TestApp) {
    let admin = app.admin().await;
    for query in ["limit=0", "limit=201", "limit=-1", "limit=ten", "kind=village", "parent_id=123", "colour=red"] {
        expect_problem(
            app.get(&format!("/api/v1/units?{query}"), &admin).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
    }
    for cursor in ["garbage", "e30", "%00"] {
        expect_problem(
            app.get(&format!("/api/v1/units?cursor={cursor}"), &admin).await,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
}
