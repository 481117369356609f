use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::helpers::{TestApp, expect_status, json_of};
use crate::ledger_helpers::{award, community};

both_backends!(
    health_and_readiness_answer,
    the_interactive_reference_is_self_contained,
    request_ids_are_echoed_or_generated,
    metrics_describe_requests_pools_ledger_and_background_work
);

async fn health_and_readiness_answer(app: &TestApp) {
    for path in ["/healthz", "/readyz"] {
        let response = expect_status(app.request(Method::GET, path, None, None).await, StatusCode::OK).await;
        assert_eq!(json_of(response).await["status"], "ok");
    }
    let spec = expect_status(app.request(Method::GET, "/openapi.yaml", None, None).await, StatusCode::OK).await;
    assert_eq!(spec.headers()["content-type"], "application/yaml");
    assert!(spec.text().await.unwrap().starts_with("openapi: 3.1"));
}

/// The reference page and its script come from the server itself, not from a CDN.
async fn the_interactive_reference_is_self_contained(app: &TestApp) {
    let page = expect_status(app.request(Method::GET, "/docs", None, None).await, StatusCode::OK).await;
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("http"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"src="/docs/scalar.js""#) && html.contains("/openapi.yaml"), "{html}");
    assert!(!html.contains("https://"), "no outside address: {html}");
    let script = expect_status(app.request(Method::GET, "/docs/scalar.js", None, None).await, StatusCode::OK).await;
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.bytes().await.unwrap().len() > 100_000);
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

/// The value of the one sample of `metric` whose labels include all of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn metrics_describe_requests_pools_ledger_and_background_work(app: &TestApp) {
    let c = community(app, "指标", 2).await;
    award(app, &c, &[(&c.residents[0].0, 5), (&c.residents[1].0, 5)]).await;
    award(app, &c, &[(&c.residents[0].0, 5)]).await;
    let metrics = || async {
        let response = expect_status(app.request(Method::GET, "/metrics", None, None).await, StatusCode::OK).await;
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        response.text().await.unwrap()
    };
    let text = metrics().await;
    let awards = [r#"route="/api/v1/communities/{community_id}/awards""#, r#"method="POST""#, r#"status="201""#];
    assert_eq!(sample(&text, "jifen_http_request_duration_seconds_count", &awards), Some(2.0), "{text}");
    assert!(sample(&text, "jifen_http_request_duration_seconds_bucket", &[awards[0], r#"le="+Inf""#]).is_some());
    assert_eq!(sample(&text, "jifen_ledger_transactions", &[r#"kind="award""#]), Some(2.0));
    for pool in ["readers", "writers"] {
        let pool = format!(r#"pool="{pool}""#);
        assert!(sample(&text, "jifen_db_pool_connections", &[&pool, r#"state="idle""#]).is_some(), "{text}");
    }
    // The background task runs once at start-up.
    let mut runs = None;
    for _ in 0..100 {
        runs = sample(&metrics().await, "jifen_background_runs_total", &[r#"task="maintenance""#, r#"outcome="ok""#]);
        if runs.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(runs, Some(1.0));
}
