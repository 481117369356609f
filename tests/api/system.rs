use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::helpers::{TestApp, expect_status, json_of};

both_backends!(health_and_readiness_answer, request_ids_are_echoed_or_generated);

async fn health_and_readiness_answer(app: &TestApp) {
    for path in ["/healthz", "/readyz"] {
        let response = expect_status(app.request(Method::GET, path, None, None).await, StatusCode::OK).await;
        assert_eq!(json_of(response).await["status"], "ok");
    }
    let spec = expect_status(app.request(Method::GET, "/openapi.yaml", None, None).await, StatusCode::OK).await;
    assert_eq!(spec.headers()["content-type"], "application/yaml");
    assert!(spec.text().await.unwrap().starts_with("openapi: 3.1"));
}

async fn request_ids_are_echoed_or_generated(app: &TestApp) {
    let response = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    let generated = app.request(Method::GET, "/healthz", None, None).await;
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    // An id that could smuggle log lines is replaced.
    let response = app.client.get(app.url("/nowhere")).header("x-request-id", "a b").send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"], "a b");
}
