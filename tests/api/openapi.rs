//! openapi.yaml is the contract: the committed file equals what the code
//! generates, and every documented operation is served.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::TestApp;

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

/// `JIFEN_UPDATE_OPENAPI=1 cargo test openapi` rewrites the committed file.
#[test]
fn committed_openapi_yaml_matches_the_code() {
    let generated = jifen::openapi::spec_yaml().unwrap();
    if std::env::var("JIFEN_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(SPEC_PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(SPEC_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is out of date: run `JIFEN_UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[test]
fn every_operation_is_documented_with_errors() {
    let spec: Value = serde_json::to_value(jifen::openapi::spec()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(operation["summary"].is_string(), "{name} has a summary");
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|status| status.starts_with('2')), "{name} documents its success");
            let protected = operation.get("security").is_some();
            if protected {
                assert!(responses.contains_key("401"), "{name} documents 401");
            }
            for status in ["413", "415"].into_iter().filter(|_| operation.get("requestBody").is_some()) {
                assert!(responses.contains_key(status), "{name} documents {status}");
            }
            assert!(responses.contains_key("500") && responses.contains_key("503"), "{name} documents 500 and 503");
            for (status, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(reference) => &spec["components"]["responses"][reference.rsplit('/').next().unwrap()],
                    None => response,
                };
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{name} {status} is problem+json"
                    );
                }
            }
        }
    }
}

/// Every `$ref` names something the document holds.
#[test]
fn every_reference_resolves() {
    fn check(spec: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference} is local"));
                    assert!(spec.pointer(pointer).is_some(), "{reference} resolves");
                }
                map.values().for_each(|value| check(spec, value));
            }
            Value::Array(items) => items.iter().for_each(|value| check(spec, value)),
            _ => {}
        }
    }
    let spec: Value = serde_json::to_value(jifen::openapi::spec()).unwrap();
    check(&spec, &spec);
}

/// Each operation of the contract, named by method and path.
fn operations(spec: &Value) -> impl Iterator<Item = (String, &Value)> {
    spec["paths"].as_object().unwrap().iter().flat_map(|(path, item)| {
        item.as_object().unwrap().iter().map(move |(method, operation)| (format!("{method} {path}"), operation))
    })
}

const ROLES: [&str; 4] = ["admin", "staff", "auditor", "resident"];

/// Who may call each operation is stated twice, for people (`Role: ...` in the
/// description) and for programs (`x-required-roles`), and the two agree.
#[test]
fn every_operation_states_who_may_call_it() {
    let spec: Value = serde_json::to_value(jifen::openapi::spec()).unwrap();
    for (name, operation) in operations(&spec) {
        let description = operation["description"].as_str().unwrap_or_default();
        let sentence = description.lines().find(|line| line.starts_with("Role: "));
        let sentence = sentence.unwrap_or_else(|| panic!("{name} states its role in a `Role: ` line"));
        let required = operation["x-required-roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} lists x-required-roles"))
            .iter()
            .map(|role| role.as_str().unwrap())
            .collect::<Vec<_>>();
        for role in &required {
            assert!(ROLES.contains(role), "{name}: {role} is a role");
            let named = sentence.contains(role) || sentence.contains("any role");
            assert!(named, "{name}: `{sentence}` names {role}");
        }
        if operation.get("security").is_none() {
            assert!(required.is_empty() && sentence.starts_with("Role: public"), "{name} is public");
        } else {
            assert!(!sentence.contains("public"), "{name} needs a token, so it is not public");
        }
    }
}

/// Every request body and every success answer with a body has an example, on
/// the media type or on the schema it refers to.
#[test]
fn every_operation_has_an_example() {
    let spec: Value = serde_json::to_value(jifen::openapi::spec()).unwrap();
    let has_example = |media: &Value| {
        let mut schema = &media["schema"];
        while let Some(reference) = schema["$ref"].as_str() {
            schema = &spec["components"]["schemas"][reference.rsplit('/').next().unwrap()];
        }
        [media, schema].iter().any(|value| value.get("example").is_some() || value.get("examples").is_some())
    };
    for (name, operation) in operations(&spec) {
        if let Some(content) = operation["requestBody"]["content"].as_object() {
            for (media_type, media) in content {
                assert!(has_example(media), "{name}: the {media_type} request body has an example");
            }
        }
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses.iter().filter(|(status, _)| status.starts_with('2')) {
            for (media_type, media) in response["content"].as_object().into_iter().flatten() {
                assert!(has_example(media), "{name}: the {status} {media_type} answer has an example");
            }
        }
    }
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { segment.to_owned() })
        .collect::<Vec<_>>()
        .join("/")
}

both_backends!(every_documented_operation_is_served);

/// Each documented (path, method) reaches a handler, and every other method on a
/// documented path answers 405: the served routes and the contract are one set.
async fn every_documented_operation_is_served(app: &TestApp) {
    let spec: Value = serde_json::to_value(jifen::openapi::spec()).unwrap();
    let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url = concrete(path);
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            let response = app
                .client
                .request(method.clone(), app.url(&url))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if documented {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served");
                let unrouted = status == StatusCode::NOT_FOUND
                    && body["detail"].as_str().is_some_and(|d| d.starts_with("no resource at"));
                assert!(!unrouted, "{method} {path} is served");
                assert!(!status.is_server_error(), "{method} {path} answered {status}");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not documented, so not served");
            }
        }
    }
}

/// A route registered without going through the contract is not served.
#[actix_web::test]
async fn routes_missing_from_the_contract_are_not_served() {
    use actix_web::middleware::from_fn;
    use actix_web::{App, test, web};

    let spec = jifen::openapi::spec();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(jifen::openapi::RouteTable::new(&spec)))
            .wrap(from_fn(jifen::openapi::only_documented))
            .route("/healthz", web::get().to(|| async { "documented" }))
            .route("/healthz", web::post().to(|| async { "undocumented method" }))
            .route("/api/v1/debug", web::get().to(|| async { "undocumented path" })),
    )
    .await;
    let status = |method: actix_web::http::Method, uri: &'static str| {
        let app = &app;
        async move {
            test::call_service(app, test::TestRequest::default().method(method).uri(uri).to_request()).await.status()
        }
    };
    assert_eq!(status(actix_web::http::Method::GET, "/healthz").await, 200);
    assert_eq!(status(actix_web::http::Method::POST, "/healthz").await, 405);
    assert_eq!(status(actix_web::http::Method::GET, "/api/v1/debug").await, 404);
}
