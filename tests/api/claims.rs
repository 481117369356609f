use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{Community, balance, check_invariants, community, new_key, post_with_key};

both_backends!(
    residents_claim_and_staff_decide_once,
    staff_cannot_approve_for_themselves_or_their_household,
    residents_have_a_limited_number_of_open_claims,
    parallel_approvals_award_once,
    claims_are_checked_and_kept_private,
);

fn claim_body(description: &str) -> Value {
    json!({"rule_code": "volunteering", "description": description, "occurred_at": "2026-11-26T09:30:00+08:00", "evidence": ["邻居王先生可作证"]})
}

async fn file(app: &TestApp, c: &Community, token: &str, description: &str) -> reqwest::Response {
    app.post(&c.path("/claims"), token, claim_body(description)).await
}

async fn approve(app: &TestApp, c: &Community, token: &str, claim_id: &str, body: Value) -> reqwest::Response {
    post_with_key(app, &c.path(&format!("/claims/{claim_id}/approval")), token, &new_key(), body).await
}

async fn residents_claim_and_staff_decide_once(app: &TestApp) {
    let c = community(app, "申报", 1).await;
    let (a, a_token) = (&c.residents[0].0, &c.residents[0].1);
    let response = expect_status(file(app, &c, a_token, "帮李奶奶扛米上五楼").await, StatusCode::CREATED).await;
    let claim = json_of(response).await;
    assert_eq!(claim["status"], "pending");
    assert_eq!(claim["user_id"], a.as_str());
    assert_eq!(claim["occurred_at"], "2026-11-26T01:30:00Z");
    assert_eq!(claim["evidence"], json!(["邻居王先生可作证"]));
    let id = claim["id"].as_str().unwrap();

    let queue =
        json_of(expect_status(app.get(&c.path("/claims?status=pending"), &c.staff).await, StatusCode::OK).await).await;
    assert_eq!(queue["items"][0]["id"], id);
    let approved = json_of(expect_status(approve(app, &c, &c.staff, id, json!({})).await, StatusCode::OK).await).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["points"], 10, "the rule's default");
    assert_eq!(balance(app, &c, a).await, 10);
    let award = json_of(
        app.get(&c.path(&format!("/transactions/{}", approved["transaction_id"].as_str().unwrap())), &c.staff).await,
    )
    .await;
    assert_eq!((award["cause_type"].clone(), award["cause_id"].clone()), (json!("claim"), json!(id)));

    expect_problem(approve(app, &c, &c.staff, id, json!({})).await, StatusCode::CONFLICT, "claim_already_decided")
        .await;
    let reject = app.post(&c.path(&format!("/claims/{id}/rejection")), &c.staff, json!({"reason": "x"})).await;
    expect_problem(reject, StatusCode::CONFLICT, "claim_already_decided").await;
    assert_eq!(balance(app, &c, a).await, 10, "paid once");

    // Rejection, with a reason the resident reads.
    let second = json_of(file(app, &c, a_token, "捡到钱包交还失主").await).await;
    let second_id = second["id"].as_str().unwrap();
    let rejected = json_of(
        expect_status(
            app.post(&c.path(&format!("/claims/{second_id}/rejection")), &c.staff, json!({"reason": "未能核实"})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    let seen =
        json_of(expect_status(app.get(&c.path(&format!("/claims/{second_id}")), a_token).await, StatusCode::OK).await)
            .await;
    assert_eq!(seen["decision_reason"], "未能核实");
    expect_problem(
        approve(app, &c, &c.staff, second_id, json!({})).await,
        StatusCode::CONFLICT,
        "claim_already_decided",
    )
    .await;
    // Points within the rule's range.
    let third = json_of(file(app, &c, a_token, "third").await).await;
    expect_problem(
        approve(app, &c, &c.staff, third["id"].as_str().unwrap(), json!({"points": 0})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    check_invariants(app).await;
}

async fn staff_cannot_approve_for_themselves_or_their_household(app: &TestApp) {
    let c = community(app, "回避", 0).await;
    let home = json!({"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301"});
    // A staff member who also lives in the community, a neighbour in the same flat, and a second staff member.
    let add = |username: &str, roles: Value, household: Value| json!({"new_user": {"username": username, "display_name": username, "password": crate::helpers::PASSWORD}, "roles": roles, "household": household});
    for (username, roles) in [("staff.home", json!(["staff", "resident"])), ("same.flat", json!(["resident"]))] {
        expect_status(
            app.add_member_raw(&c.admin, &c.id, add(username, roles, home.clone())).await,
            StatusCode::CREATED,
        )
        .await;
    }
    let staff_home = app.login("staff.home", crate::helpers::PASSWORD).await;
    let same_flat = app.login("same.flat", crate::helpers::PASSWORD).await;
    let own = json_of(expect_status(file(app, &c, &staff_home, "own deed").await, StatusCode::CREATED).await).await;
    let flatmate =
        json_of(expect_status(file(app, &c, &same_flat, "flatmate's deed").await, StatusCode::CREATED).await).await;
    for claim in [&own, &flatmate] {
        expect_problem(
            approve(app, &c, &staff_home, claim["id"].as_str().unwrap(), json!({})).await,
            StatusCode::FORBIDDEN,
            "conflict_of_interest",
        )
        .await;
    }
    // Other staff decide them.
    for claim in [&own, &flatmate] {
        expect_status(
            approve(app, &c, &c.staff, claim["id"].as_str().unwrap(), json!({"points": 3})).await,
            StatusCode::OK,
        )
        .await;
    }
    check_invariants(app).await;
}

async fn residents_have_a_limited_number_of_open_claims(app: &TestApp) {
    let c = community(app, "上限", 1).await;
    let a_token = &c.residents[0].1;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            json_of(expect_status(file(app, &c, a_token, &format!("deed {n}")).await, StatusCode::CREATED).await).await
                ["id"]
                .clone(),
        );
    }
    expect_problem(file(app, &c, a_token, "one too many").await, StatusCode::TOO_MANY_REQUESTS, "too_many_open_claims")
        .await;
    // Deciding one frees a place.
    let id = ids[0].as_str().unwrap();
    expect_status(
        app.post(&c.path(&format!("/claims/{id}/rejection")), &c.staff, json!({"reason": "重复"})).await,
        StatusCode::OK,
    )
    .await;
    expect_status(file(app, &c, a_token, "now it fits").await, StatusCode::CREATED).await;
    // The limit is the community's to set; parallel filings respect it.
    let unit = json_of(
        expect_status(
            app.patch(&format!("/api/v1/units/{}", c.id), &c.admin, json!({"max_open_claims": 7})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(unit["max_open_claims"], 7);
    let path = c.path("/claims");
    let responses = join_all(
        (0..6).map(|n| app.request(Method::POST, &path, Some(a_token), Some(claim_body(&format!("parallel {n}"))))),
    )
    .await;
    let created = responses.iter().filter(|response| response.status() == StatusCode::CREATED).count();
    assert_eq!(created, 2, "5 open + 2 = 7");
}

async fn parallel_approvals_award_once(app: &TestApp) {
    let c = community(app, "并审", 1).await;
    let claim = json_of(file(app, &c, &c.residents[0].1, "deed").await).await;
    let id = claim["id"].as_str().unwrap();
    let responses = join_all((0..10).map(|_| approve(app, &c, &c.staff, id, json!({"points": 7})))).await;
    let mut approved = 0;
    for response in responses {
        if response.status() == StatusCode::OK {
            approved += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "claim_already_decided").await;
        }
    }
    assert_eq!(approved, 1);
    assert_eq!(balance(app, &c, &c.residents[0].0).await, 7);
    check_invariants(app).await;
}

async fn claims_are_checked_and_kept_private(app: &TestApp) {
    let c = community(app, "私申", 2).await;
    let other = community(app, "他申", 0).await;
    let (a_token, b_token) = (&c.residents[0].1, &c.residents[1].1);
    let claim = json_of(file(app, &c, a_token, "mine").await).await;
    let id = claim["id"].as_str().unwrap();
    // Another resident: neither sees nor decides it; lists show only their own.
    expect_problem(app.get(&c.path(&format!("/claims/{id}")), b_token).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(json_of(app.get(&c.path("/claims"), b_token).await).await["items"], json!([]));
    expect_problem(approve(app, &c, b_token, id, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    // The role is checked before the claim is looked for: no claim by that id answers the same.
    let no_claim = uuid::Uuid::now_v7().to_string();
    expect_problem(approve(app, &c, b_token, &no_claim, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    expect_problem(approve(app, &c, &c.auditor, id, json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    // Other communities' staff: 404.
    expect_problem(app.get(&c.path(&format!("/claims/{id}")), &other.staff).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    expect_problem(approve(app, &c, &other.staff, id, json!({})).await, StatusCode::NOT_FOUND, "not_found").await;
    // Staff without a resident role file nothing.
    expect_problem(file(app, &c, &c.staff, "x").await, StatusCode::FORBIDDEN, "forbidden").await;
    // Bad claims.
    let mut future = claim_body("x");
    future["occurred_at"] = json!("2027-01-01T00:00:00Z");
    let mut deduct_rule = claim_body("x");
    deduct_rule["rule_code"] = json!("littering");
    let mut too_much = claim_body("x");
    too_much["evidence"] = json!(vec!["note"; 11]);
    expect_problem(app.post(&c.path("/claims"), a_token, future).await, StatusCode::BAD_REQUEST, "validation_failed")
        .await;
    expect_problem(app.post(&c.path("/claims"), a_token, too_much).await, StatusCode::BAD_REQUEST, "validation_failed")
        .await;
    expect_problem(
        app.post(&c.path("/claims"), a_token, deduct_rule).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
    // A pending resident cannot claim: the community is out of their reach.
    let code = json_of(app.get(&format!("/api/v1/units/{}", c.id), &c.staff).await).await["join_code"].clone();
    let register =
        json!({"join_code": code, "username": "pending.claimant", "password": "a good password", "display_name": "x"});
    expect_status(app.request(Method::POST, "/api/v1/auth/register", None, Some(register)).await, StatusCode::CREATED)
        .await;
    let pending = app.login("pending.claimant", "a good password").await;
    expect_problem(file(app, &c, &pending, "x").await, StatusCode::NOT_FOUND, "not_found").await;
}
