use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::community;

both_backends!(the_catalogue_is_managed_by_staff_and_shows_residents_what_is_on_offer);

async fn the_catalogue_is_managed_by_staff_and_shows_residents_what_is_on_offer(app: &TestApp) {
    let c = community(app, "超市", 1).await;
    let other = community(app, "别的超市", 0).await;
    let resident = c.residents[0].1.clone();
    let rewards = c.path("/rewards");
    let create = |body: Value| app.post(&rewards, &c.staff, body);
    let soap = json!({"name": "洗衣液 2kg", "description": "蓝月亮", "cost": 120, "stock": 30, "limit_per_resident": {"count": 1, "period": "month"}});
    let soap = json_of(expect_status(create(soap).await, StatusCode::CREATED).await).await;
    assert_eq!(soap["limit_per_resident"], json!({"count": 1, "period": "month"}));
    let haircut =
        json_of(expect_status(create(json!({"name": "义剪", "cost": 30})).await, StatusCode::CREATED).await).await;
    assert_eq!(haircut["stock"], Value::Null, "a service has no stock");
    // Not yet on offer (from tomorrow), and withdrawn from sale.
    expect_status(
        create(json!({"name": "春联", "cost": 10, "available_from": "2026-11-28T00:00:00Z"})).await,
        StatusCode::CREATED,
    )
    .await;
    expect_status(create(json!({"name": "旧货", "cost": 10, "active": false})).await, StatusCode::CREATED).await;

    let names = |page: &Value| {
        page["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let for_staff = json_of(expect_status(app.get(&c.path("/rewards"), &c.staff).await, StatusCode::OK).await).await;
    assert_eq!(names(&for_staff), ["洗衣液 2kg", "义剪", "春联", "旧货"]);
    let for_resident =
        json_of(expect_status(app.get(&c.path("/rewards"), &resident).await, StatusCode::OK).await).await;
    assert_eq!(names(&for_resident), ["洗衣液 2kg", "义剪"]);
    let hidden = for_staff["items"][3]["id"].as_str().unwrap().to_owned();
    expect_problem(
        app.get(&c.path(&format!("/rewards/{hidden}")), &resident).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(app.get(&c.path(&format!("/rewards/{hidden}")), &c.staff).await, StatusCode::OK).await;

    let soap_path = c.path(&format!("/rewards/{}", soap["id"].as_str().unwrap()));
    let changed = json_of(
        expect_status(
            app.patch(&soap_path, &c.staff, json!({"stock": 50, "cost": 100, "limit_per_resident": null})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(
        (changed["stock"].clone(), changed["cost"].clone(), changed["limit_per_resident"].clone()),
        (json!(50), json!(100), Value::Null)
    );
    expect_status(app.patch(&soap_path, &c.staff, json!({"active": false})).await, StatusCode::OK).await;
    expect_problem(app.get(&soap_path, &resident).await, StatusCode::NOT_FOUND, "not_found").await;

    // Residents and other communities manage nothing here.
    expect_problem(
        app.post(&c.path("/rewards"), &resident, json!({"name": "x", "cost": 1})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(app.patch(&soap_path, &resident, json!({"stock": 1})).await, StatusCode::FORBIDDEN, "forbidden")
        .await;
    expect_problem(app.get(&soap_path, &other.staff).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        app.post(&c.path("/rewards"), &other.staff, json!({"name": "x", "cost": 1})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Bad rewards.
    for bad in [
        json!({"name": "x", "cost": 0}),
        json!({"name": "x", "cost": 1_000_001}),
        json!({"name": "x", "cost": 1, "stock": -1}),
        json!({"name": "x", "cost": 1, "limit_per_resident": {"count": 0, "period": "week"}}),
        json!({"name": "x", "cost": 1, "image_url": "javascript:alert(1)"}),
        json!({"name": "x", "cost": 1, "available_from": "2026-12-01T00:00:00Z", "available_until": "2026-11-30T00:00:00Z"}),
        json!({"name": " ", "cost": 1}),
    ] {
        expect_problem(create(bad).await, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    expect_problem(
        create(json!({"name": "x", "cost": 1, "limit_per_resident": {"count": 1, "period": "decade"}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
}
