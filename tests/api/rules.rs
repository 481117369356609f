use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{
    balance, check_invariants, community, head_sequence, new_key, post_with_key, reverse_response,
};

both_backends!(
    staff_manage_rules_and_everyone_reads_them,
    awards_and_deductions_must_cite_a_fitting_rule,
    caps_hold_under_parallel_awards_and_reset_at_local_midnight
);

async fn create_rule(app: &TestApp, c: &crate::ledger_helpers::Community, body: Value) -> reqwest::Response {
    app.post(&c.path("/rules"), &c.staff, body).await
}

async fn staff_manage_rules_and_everyone_reads_them(app: &TestApp) {
    let c = community(app, "细则", 1).await;
    let resident = &c.residents[0].1;
    let body = json!({"code": "corridor_cleanup", "name": "清理楼道杂物", "category": "environment", "direction": "earn", "default_points": 10, "min_points": 5, "max_points": 20, "daily_cap": 1});
    let response = expect_status(create_rule(app, &c, body.clone()).await, StatusCode::CREATED).await;
    let rule = json_of(response).await;
    assert_eq!(rule["monthly_cap"], Value::Null);
    assert_eq!(rule["active"], true);
    expect_problem(create_rule(app, &c, body).await, StatusCode::CONFLICT, "rule_code_taken").await;
    for bad in [
        json!({"code": "Bad Code", "name": "x", "category": "other", "direction": "earn", "default_points": 1}),
        json!({"code": "x", "name": "x", "category": "other", "direction": "earn", "default_points": 0}),
        json!({"code": "y", "name": "x", "category": "other", "direction": "earn", "default_points": 5, "min_points": 6}),
        json!({"code": "z", "name": "x", "category": "other", "direction": "earn", "default_points": 5, "daily_cap": 0}),
    ] {
        expect_problem(create_rule(app, &c, bad).await, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    expect_problem(
        create_rule(
            app,
            &c,
            json!({"code": "q", "name": "x", "category": "fun", "direction": "earn", "default_points": 5}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;

    // Residents read the rules, and change none.
    let listed =
        json_of(expect_status(app.get(&c.path("/rules?direction=earn"), resident).await, StatusCode::OK).await).await;
    let codes: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["corridor_cleanup", "volunteering"]);
    let paged = json_of(app.get(&c.path("/rules?limit=1"), resident).await).await;
    let next = json_of(
        app.get(&c.path(&format!("/rules?limit=1&cursor={}", paged["next_cursor"].as_str().unwrap())), resident).await,
    )
    .await;
    assert_eq!(next["items"][0]["code"], "littering");
    let rule_path = c.path(&format!("/rules/{}", rule["id"].as_str().unwrap()));
    expect_problem(app.patch(&rule_path, resident, json!({"active": false})).await, StatusCode::FORBIDDEN, "forbidden")
        .await;

    let changed = json_of(
        expect_status(
            app.patch(&rule_path, &c.staff, json!({"default_points": 12, "daily_cap": null, "active": false})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(
        (changed["default_points"].clone(), changed["daily_cap"].clone(), changed["active"].clone()),
        (json!(12), Value::Null, json!(false))
    );
    expect_problem(
        app.patch(&rule_path, &c.staff, json!({"max_points": 10})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    // Another community's staff cannot change it through their own community's path.
    let other = community(app, "细则乙", 0).await;
    let foreign = other.path(&format!("/rules/{}", rule["id"].as_str().unwrap()));
    expect_problem(
        app.patch(&foreign, &other.staff, json!({"active": true})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let inactive = json_of(app.get(&c.path("/rules?active=false"), resident).await).await;
    assert_eq!(inactive["items"].as_array().unwrap().len(), 1);
}

async fn awards_and_deductions_must_cite_a_fitting_rule(app: &TestApp) {
    let c = community(app, "引用", 1).await;
    let a = c.residents[0].0.clone();
    let award = |rule: &str, points: Value| json!({"rule_code": rule, "memo": "x", "awards": [{"user_id": a, "points": points}]});
    let awards = c.path("/awards");
    expect_status(create_rule(app, &c, json!({"code": "reading", "name": "家长共读", "category": "culture", "direction": "earn", "default_points": 8, "min_points": 5, "max_points": 10})).await, StatusCode::CREATED).await;
    let before = head_sequence(app, &c).await;

    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), json!({"memo": "x", "awards": [{"user_id": a}]})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), award("no_such_rule", json!(5))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), award("littering", json!(5))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), award("reading", json!(11))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "points_out_of_range",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), award("reading", json!(4))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "points_out_of_range",
    )
    .await;
    let deduction = json!({"user_id": a, "points": 1, "rule_code": "reading", "memo": "x"});
    expect_problem(
        post_with_key(app, &c.path("/deductions"), &c.staff, &new_key(), deduction).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
    assert_eq!(head_sequence(app, &c).await, before, "nothing written");

    // Without points, the rule's default applies.
    let awarded = json_of(
        expect_status(
            post_with_key(app, &awards, &c.staff, &new_key(), award("reading", Value::Null)).await,
            StatusCode::CREATED,
        )
        .await,
    )
    .await;
    assert_eq!(awarded["rule_code"], "reading");
    assert_eq!(balance(app, &c, &a).await, 8);
    // An inactive rule can no longer be cited.
    let rules = json_of(app.get(&c.path("/rules"), &c.staff).await).await;
    let reading = rules["items"].as_array().unwrap().iter().find(|r| r["code"] == "reading").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_status(
        app.patch(&c.path(&format!("/rules/{reading}")), &c.staff, json!({"active": false})).await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), award("reading", json!(5))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
}

async fn caps_hold_under_parallel_awards_and_reset_at_local_midnight(app: &TestApp) {
    let mut c = community(app, "封顶", 2).await;
    let (a, b) = (c.residents[0].0.clone(), c.residents[1].0.clone());
    expect_status(create_rule(app, &c, json!({"code": "cleanup", "name": "清理楼道", "category": "environment", "direction": "earn", "default_points": 10, "daily_cap": 3, "weekly_cap": 4})).await, StatusCode::CREATED).await;
    let awards = c.path("/awards");
    let one = |user: &str| json!({"rule_code": "cleanup", "memo": "清理楼道", "awards": [{"user_id": user}]});

    let keys: Vec<String> = (0..20).map(|_| new_key()).collect();
    let responses = join_all(keys.iter().map(|key| post_with_key(app, &awards, &c.staff, key, one(&a)))).await;
    let mut created = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created.push(json_of(response).await),
            _ => {
                expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "rule_cap_exceeded").await;
            }
        }
    }
    assert_eq!(created.len(), 3, "a daily cap of 3");
    assert_eq!(balance(app, &c, &a).await, 30);
    // A batch in which one resident is over the cap writes nothing at all.
    let batch = json!({"rule_code": "cleanup", "memo": "x", "awards": [{"user_id": b}, {"user_id": a}]});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), batch).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_cap_exceeded",
    )
    .await;
    assert_eq!(balance(app, &c, &b).await, 0);
    // A reversed award does not count.
    expect_status(reverse_response(app, &c, created[0]["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    expect_status(post_with_key(app, &awards, &c.staff, &new_key(), one(&a)).await, StatusCode::CREATED).await;

    // 23:59:59 in Shanghai on the same local day (the test clock starts at 10:00 local on 27 November): still capped.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-27T15:59:59Z").unwrap().into());
    c.sign_in_again(app).await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), one(&a)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_cap_exceeded",
    )
    .await;
    // Local midnight: a new day, but the weekly cap of 4 (three unreversed this week) allows one more.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-27T16:00:00Z").unwrap().into());
    c.sign_in_again(app).await;
    expect_status(post_with_key(app, &awards, &c.staff, &new_key(), one(&a)).await, StatusCode::CREATED).await;
    let over_week = post_with_key(app, &awards, &c.staff, &new_key(), one(&a)).await;
    let problem = expect_problem(over_week, StatusCode::UNPROCESSABLE_ENTITY, "rule_cap_exceeded").await;
    assert!(problem["detail"].as_str().unwrap().contains("per week"), "{problem}");
    // Monday 30 November, local: a new week.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-29T16:00:00Z").unwrap().into());
    c.sign_in_again(app).await;
    expect_status(post_with_key(app, &awards, &c.staff, &new_key(), one(&a)).await, StatusCode::CREATED).await;
    check_invariants(app).await;
}
