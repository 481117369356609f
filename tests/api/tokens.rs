//! Attacks on access tokens (RFC 8725): each must get 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use jifen::clock::Clock;

use crate::both_backends;
use crate::helpers::{ADMIN_PASSWORD, JWT_SECRET, TestApp, expect_problem, expect_status};

both_backends!(tampered_and_foreign_tokens_are_refused, expired_tokens_are_refused);

/// The signing key the server derives from its secret (see src/auth/tokens.rs):
/// with it the tests forge tokens that differ from real ones in one respect only.
fn signing_key() -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(b"jifen access token signing key v1");
    mac.finalize().into_bytes().to_vec()
}

fn sign(header: &Header, claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(key)).unwrap()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn expect_unauthorized(app: &TestApp, token: &str, what: &str) {
    let response = app.get("/api/v1/me", token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what} must be refused");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn tampered_and_foreign_tokens_are_refused(app: &TestApp) {
    let tokens = app.login_tokens("admin", ADMIN_PASSWORD).await;
    let real = tokens["access_token"].as_str().unwrap();
    let parts: Vec<&str> = real.split('.').collect();
    let claims = decode_part(parts[1]);
    let key = signing_key();
    let mut at_jwt = Header::new(Algorithm::HS256);
    at_jwt.typ = Some("at+jwt".to_owned());

    // The forging works: the real claims re-signed with the derived key pass.
    expect_status(app.get("/api/v1/me", &sign(&at_jwt, &claims, &key)).await, StatusCode::OK).await;

    let with = |field: &str, value: Value| {
        let mut claims = claims.clone();
        claims[field] = value;
        claims
    };
    let without = |field: &str| {
        let mut claims = claims.clone();
        claims.as_object_mut().unwrap().remove(field);
        claims
    };
    let now = app.clock.now().timestamp();
    let cases: Vec<(&str, String)> = vec![
        ("no token at all", String::new()),
        ("a garbage token", "not.a.jwt".to_owned()),
        ("a token signed with another key", sign(&at_jwt, &claims, b"another key of thirty-two bytes!!")),
        ("a tampered signature", format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode([0u8; 32]))),
        (
            "a tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(with("sub", json!("someone-else")).to_string()),
                parts[2]
            ),
        ),
        ("alg none", format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#), parts[1])),
        (
            "HS512 with the right key",
            sign(
                &{
                    let mut h = Header::new(Algorithm::HS512);
                    h.typ = Some("at+jwt".into());
                    h
                },
                &claims,
                &key,
            ),
        ),
        ("a wrong audience", sign(&at_jwt, &with("aud", json!("other-service")), &key)),
        ("a wrong issuer", sign(&at_jwt, &with("iss", json!("someone")), &key)),
        ("a numeric issuer", sign(&at_jwt, &with("iss", json!(123)), &key)),
        ("no subject", sign(&at_jwt, &without("sub"), &key)),
        ("no expiry", sign(&at_jwt, &without("exp"), &key)),
        ("no audience", sign(&at_jwt, &without("aud"), &key)),
        ("an expiry given as a string (CVE-2026-25537)", sign(&at_jwt, &with("exp", json!("99999999999")), &key)),
        ("a not-before in the future", sign(&at_jwt, &with("nbf", json!(now + 3600)), &key)),
        ("an expired token", sign(&at_jwt, &with("exp", json!(now - 120)), &key)),
        ("a refresh token used as an access token", sign(&at_jwt, &with("token_use", json!("refresh")), &key)),
        ("a token without the at+jwt type", sign(&Header::new(Algorithm::HS256), &claims, &key)),
        ("an unknown session id", sign(&at_jwt, &with("jti", json!(uuid::Uuid::now_v7().to_string())), &key)),
        ("the refresh token itself", tokens["refresh_token"].as_str().unwrap().to_owned()),
    ];
    for (what, token) in cases {
        expect_unauthorized(app, &token, what).await;
    }
    // Within the 30 s leeway an almost-expired token still works.
    expect_status(app.get("/api/v1/me", &sign(&at_jwt, &with("exp", json!(now - 10)), &key)).await, StatusCode::OK)
        .await;
}

async fn expired_tokens_are_refused(app: &TestApp) {
    let token = app.login("admin", ADMIN_PASSWORD).await;
    app.clock.advance(Duration::minutes(15));
    expect_status(app.get("/api/v1/me", &token).await, StatusCode::OK).await;
    app.clock.advance(Duration::seconds(31));
    expect_unauthorized(app, &token, "an access token older than 15 minutes and the leeway").await;
}
