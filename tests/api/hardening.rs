use std::num::NonZeroU32;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{DASHBOARD_ORIGIN, PASSWORD, TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::community;

both_backends!(
    sign_in_requests_are_limited_per_client_address,
    writes_are_limited_per_user,
    the_client_address_comes_from_trusted_proxies_only,
    every_response_carries_security_headers,
    only_listed_origins_may_call_from_a_browser,
);

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

async fn login_from(app: &TestApp, forwarded_for: Option<&str>, password: &str) -> reqwest::Response {
    let mut request =
        app.client.post(app.url("/api/v1/auth/login")).json(&json!({"username": "admin", "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    request.send().await.unwrap()
}

async fn sign_in_requests_are_limited_per_client_address(app: &TestApp) {
    let limited = app
        .sibling(|settings| {
            settings.rate_limits.auth_per_ip = per_minute(3);
            settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await;
    // Failures and successes count alike.
    for password in ["wrong", "wrong", crate::helpers::ADMIN_PASSWORD] {
        assert_ne!(login_from(&limited, Some("198.51.100.1"), password).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let refused = login_from(&limited, Some("198.51.100.1"), crate::helpers::ADMIN_PASSWORD).await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another client behind the same proxy is not affected; other endpoints neither.
    expect_status(login_from(&limited, Some("198.51.100.2"), crate::helpers::ADMIN_PASSWORD).await, StatusCode::OK)
        .await;
    expect_status(limited.request(Method::GET, "/healthz", None, None).await, StatusCode::OK).await;

    // Without trusting the proxy, a forged X-Forwarded-For does not buy new attempts.
    let untrusting = app.sibling(|settings| settings.rate_limits.auth_per_ip = per_minute(2)).await;
    for n in 0..2 {
        let forged = format!("203.0.113.{n}");
        assert_eq!(login_from(&untrusting, Some(&forged), "wrong").await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = login_from(&untrusting, Some("203.0.113.99"), "wrong").await;
    expect_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    limited.stop().await;
    untrusting.stop().await;
}

async fn writes_are_limited_per_user(app: &TestApp) {
    let c = community(app, "限流", 1).await;
    let limited = app.sibling(|settings| settings.rate_limits.writes_per_user = per_minute(2)).await;
    let rule = |code: &str| json!({"code": code, "name": code, "category": "other", "direction": "earn", "default_points": 1, "min_points": 1, "max_points": 5});
    for code in ["a", "b"] {
        expect_status(limited.post(&c.path("/rules"), &c.staff, rule(code)).await, StatusCode::CREATED).await;
    }
    let refused = limited.post(&c.path("/rules"), &c.staff, rule("c")).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Reading goes on, and other users have their own budget.
    expect_status(limited.get(&c.path("/rules"), &c.staff).await, StatusCode::OK).await;
    let patch = json!({"display_name": "新名字"});
    expect_status(limited.patch("/api/v1/me", &c.residents[0].1, patch).await, StatusCode::OK).await;
    let rules = json_of(limited.get(&c.path("/rules"), &c.staff).await).await;
    assert_eq!(rules["items"].as_array().unwrap().len(), 4, "the refused rule was not created");
    limited.stop().await;
}

async fn the_client_address_comes_from_trusted_proxies_only(app: &TestApp) {
    let behind_proxy = app.sibling(|settings| settings.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    // The right-most address not of a trusted proxy is the client; what it claims before that is not believed.
    login_from(&behind_proxy, Some("192.0.2.66, 203.0.113.7, 127.0.0.2"), PASSWORD).await;
    login_from(app, Some("203.0.113.8"), PASSWORD).await;
    let admin = app.admin().await;
    let page = json_of(app.get("/api/v1/audit-log?action=login&limit=3", &admin).await).await;
    let addresses: Vec<_> = page["items"].as_array().unwrap().iter().map(|r| r["client_ip"].clone()).collect();
    assert_eq!(addresses, [json!("127.0.0.1"), json!("127.0.0.1"), json!("203.0.113.7")]);
    behind_proxy.stop().await;
}

async fn every_response_carries_security_headers(app: &TestApp) {
    let admin = app.admin().await;
    let responses = [
        app.get("/api/v1/me", &admin).await,
        app.request(Method::GET, "/api/v1/no-such-thing", None, None).await,
        app.request(Method::POST, "/api/v1/auth/login", None, Some(json!({}))).await,
        app.request(Method::GET, "/healthz", None, None).await,
    ];
    for response in responses {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers.contains_key("strict-transport-security"));
    }
}

async fn only_listed_origins_may_call_from_a_browser(app: &TestApp) {
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/communities/0193f6a2-5b1c-7d3e-9f00-0a1b2c3d4e5f/awards"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
            .send()
    };
    let allowed = expect_status(preflight(DASHBOARD_ORIGIN).await.unwrap(), StatusCode::OK).await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], DASHBOARD_ORIGIN);
    let allowed_headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed_headers.contains("idempotency-key"), "{allowed_headers}");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    // A simple request from the dashboard exposes the headers clients need.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("Origin", DASHBOARD_ORIGIN)
        .json(&json!({"username": "admin", "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], DASHBOARD_ORIGIN);
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    for header in ["location", "retry-after", "idempotent-replayed", "x-request-id"] {
        assert!(exposed.contains(header), "{exposed}");
    }
    // Same request from another origin: answered, but without CORS headers, so a browser withholds it.
    let foreign = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("Origin", "https://evil.example")
        .json(&json!({"username": "admin", "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(!foreign.headers().contains_key("access-control-allow-origin"));
}
