use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{Community, balance, check_invariants, community, new_key, post_with_key};

both_backends!(
    an_activity_from_publication_to_payment,
    capacity_is_never_exceeded,
    completion_pays_once_under_parallel_calls,
    activities_have_rules_for_who_does_what_when
);

/// The test clock starts at 2026-11-27T02:00:00Z; activities start an hour later.
fn activity_body(capacity: Option<i32>) -> Value {
    json!({
        "title": "清理楼道杂物",
        "description": "请自带手套",
        "location": "煤气小区3号楼门口",
        "rule_code": "volunteering",
        "points": 15,
        "starts_at": "2026-11-27T03:00:00Z",
        "ends_at": "2026-11-27T05:00:00Z",
        "capacity": capacity,
        "status": "published"
    })
}

async fn create_activity(app: &TestApp, c: &Community, body: Value) -> Value {
    json_of(expect_status(app.post(&c.path("/activities"), &c.staff, body).await, StatusCode::CREATED).await).await
}

async fn at(app: &TestApp, c: &mut Community, time: &str) {
    app.clock.set(chrono::DateTime::parse_from_rfc3339(time).unwrap().into());
    c.sign_in_again(app).await;
}

async fn complete(app: &TestApp, c: &Community, activity: &str, body: Value) -> reqwest::Response {
    post_with_key(app, &c.path(&format!("/activities/{activity}/completion")), &c.staff, &new_key(), body).await
}

async fn an_activity_from_publication_to_payment(app: &TestApp) {
    let mut c = community(app, "活动", 3).await;
    let activity = create_activity(app, &c, activity_body(Some(10))).await;
    let id = activity["id"].as_str().unwrap().to_owned();
    assert_eq!((activity["status"].clone(), activity["registered"].clone()), (json!("published"), json!(0)));
    assert_eq!(activity["signup_deadline"], activity["starts_at"], "by default sign-up closes at the start");

    // Staff who do not live in the community cannot sign up, whether or not the activity exists.
    for activity_id in [id.clone(), uuid::Uuid::now_v7().to_string()] {
        let sign_up = c.path(&format!("/activities/{activity_id}/registrations"));
        let refused = app.request(Method::POST, &sign_up, Some(&c.staff), None).await;
        expect_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }

    let a = c.residents[0].clone();
    let upcoming = json_of(app.get(&c.path("/activities?when=upcoming"), &a.1).await).await;
    assert_eq!(upcoming["items"][0]["id"], id.as_str());
    let signed = json_of(
        expect_status(
            app.request(Method::POST, &c.path(&format!("/activities/{id}/registrations")), Some(&a.1), None).await,
            StatusCode::CREATED,
        )
        .await,
    )
    .await;
    assert_eq!(signed["registered"], 1);
    assert!(signed["my_registration"]["registered_at"].is_string());
    expect_problem(
        app.request(Method::POST, &c.path(&format!("/activities/{id}/registrations")), Some(&a.1), None).await,
        StatusCode::CONFLICT,
        "already_registered",
    )
    .await;

    // Too early to check in: more than 30 minutes before the start.
    let code = json_of(
        expect_status(app.get(&c.path(&format!("/activities/{id}/check-in-code")), &c.staff).await, StatusCode::OK)
            .await,
    )
    .await;
    let check_in = c.path(&format!("/activities/{id}/check-ins"));
    expect_problem(
        app.post(&check_in, &a.1, json!({"code": code["code"]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "check_in_closed",
    )
    .await;

    at(app, &mut c, "2026-11-27T03:10:00Z").await;
    let (a, b, d) = (c.residents[0].clone(), c.residents[1].clone(), c.residents[2].clone());
    let code = json_of(app.get(&c.path(&format!("/activities/{id}/check-in-code")), &c.staff).await).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(
        app.post(&check_in, &a.1, json!({"code": "WRONG2"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_check_in_code",
    )
    .await;
    let checked = json_of(
        expect_status(app.post(&check_in, &a.1, json!({"code": code.to_lowercase()})).await, StatusCode::CREATED).await,
    )
    .await;
    assert_eq!(checked["check_in_method"], "code");
    expect_problem(app.post(&check_in, &a.1, json!({"code": code})).await, StatusCode::CONFLICT, "already_checked_in")
        .await;
    // The code rotates every five minutes; the previous one still works, older ones do not.
    at(app, &mut c, "2026-11-27T03:16:00Z").await;
    let b_token = c.residents[1].1.clone();
    expect_status(app.post(&check_in, &b_token, json!({"code": code})).await, StatusCode::CREATED).await;
    at(app, &mut c, "2026-11-27T03:26:00Z").await;
    let d_token = c.residents[2].1.clone();
    expect_problem(
        app.post(&check_in, &d_token, json!({"code": code})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_check_in_code",
    )
    .await;
    // Staff check in from the paper sheet; a resident cannot check in someone else.
    expect_problem(app.post(&check_in, &b_token, json!({"user_id": d.0})).await, StatusCode::FORBIDDEN, "forbidden")
        .await;
    let by_staff =
        json_of(expect_status(app.post(&check_in, &c.staff, json!({"user_id": d.0})).await, StatusCode::CREATED).await)
            .await;
    assert_eq!(by_staff["check_in_method"], "staff");

    let completed = json_of(expect_status(complete(app, &c, &id, json!({})).await, StatusCode::OK).await).await;
    assert_eq!(completed["status"], "completed");
    for resident in [&a.0, &b.0, &d.0] {
        assert_eq!(balance(app, &c, resident).await, 15);
    }
    let award = json_of(
        app.get(&c.path(&format!("/transactions/{}", completed["award_transaction_id"].as_str().unwrap())), &c.staff)
            .await,
    )
    .await;
    assert_eq!(
        (award["cause_type"].clone(), award["cause_id"].clone(), award["postings"].as_array().unwrap().len()),
        (json!("activity"), json!(id), 4)
    );
    let participants = json_of(
        expect_status(app.get(&c.path(&format!("/activities/{id}/participants")), &c.staff).await, StatusCode::OK)
            .await,
    )
    .await;
    let items = participants["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|p| p["awarded_points"] == 15 && p["checked_in_at"].is_string()), "{items:?}");
    expect_problem(complete(app, &c, &id, json!({})).await, StatusCode::CONFLICT, "already_completed").await;
    expect_problem(
        app.patch(&c.path(&format!("/activities/{id}")), &c.staff, json!({"title": "x"})).await,
        StatusCode::CONFLICT,
        "activity_closed",
    )
    .await;
    let past = json_of(app.get(&c.path("/activities?when=past"), &c.residents[0].1).await).await;
    assert_eq!(past["items"].as_array().unwrap().len(), 0, "it ends at 05:00; now is 03:26");
    check_invariants(app).await;
}

async fn capacity_is_never_exceeded(app: &TestApp) {
    let c = community(app, "名额", 30).await;
    let activity = create_activity(app, &c, activity_body(Some(10))).await;
    let path = c.path(&format!("/activities/{}/registrations", activity["id"].as_str().unwrap()));
    let responses =
        join_all(c.residents.iter().map(|(_, token)| app.request(Method::POST, &path, Some(token), None))).await;
    let mut signed = 0;
    for response in responses {
        if response.status() == StatusCode::CREATED {
            signed += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "activity_full").await;
        }
    }
    assert_eq!(signed, 10);
    let now =
        json_of(app.get(&c.path(&format!("/activities/{}", activity["id"].as_str().unwrap())), &c.staff).await).await;
    assert_eq!(now["registered"], 10);
    // Withdrawing frees a place for someone else.
    let mut signed_up = Vec::new();
    for (_, token) in &c.residents {
        let mine =
            json_of(app.get(&c.path(&format!("/activities/{}", activity["id"].as_str().unwrap())), token).await).await;
        if mine["my_registration"].is_object() {
            signed_up.push(token.clone());
        }
    }
    assert_eq!(signed_up.len(), 10);
    expect_status(
        app.request(Method::DELETE, &format!("{path}/me"), Some(&signed_up[0]), None).await,
        StatusCode::NO_CONTENT,
    )
    .await;
    expect_problem(
        app.request(Method::DELETE, &format!("{path}/me"), Some(&signed_up[0]), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let waiting = c.residents.iter().find(|(_, token)| !signed_up.contains(token)).unwrap();
    expect_status(app.request(Method::POST, &path, Some(&waiting.1), None).await, StatusCode::CREATED).await;
    expect_problem(
        app.request(Method::POST, &path, Some(&signed_up[0]), None).await,
        StatusCode::CONFLICT,
        "activity_full",
    )
    .await;
}

async fn completion_pays_once_under_parallel_calls(app: &TestApp) {
    let c = community(app, "结项", 2).await;
    let activity = create_activity(app, &c, activity_body(None)).await;
    let id = activity["id"].as_str().unwrap().to_owned();
    let attendees = json!({"attendees": [c.residents[0].0, c.residents[1].0]});
    let responses = join_all((0..10).map(|_| complete(app, &c, &id, attendees.clone()))).await;
    let mut completed = 0;
    for response in responses {
        if response.status() == StatusCode::OK {
            completed += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "already_completed").await;
        }
    }
    assert_eq!(completed, 1);
    for (user, _) in &c.residents {
        assert_eq!(balance(app, &c, user).await, 15, "paid once");
    }
    // A retry of the successful call with its key replays it without paying again.
    let key = new_key();
    let second = create_activity(app, &c, activity_body(None)).await;
    let second_path = c.path(&format!("/activities/{}/completion", second["id"].as_str().unwrap()));
    let first = post_with_key(app, &second_path, &c.staff, &key, attendees.clone()).await.text().await.unwrap();
    let retry = post_with_key(app, &second_path, &c.staff, &key, attendees).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.unwrap(), first);
    assert_eq!(balance(app, &c, &c.residents[0].0).await, 30);
    check_invariants(app).await;
}

async fn activities_have_rules_for_who_does_what_when(app: &TestApp) {
    let mut c = community(app, "规矩", 1).await;
    community(app, "外人", 0).await;
    let resident = c.residents[0].1.clone();
    let mut draft = activity_body(Some(5));
    draft["status"] = json!("draft");
    let draft = create_activity(app, &c, draft).await;
    let draft_id = draft["id"].as_str().unwrap();
    // Residents see no drafts and manage nothing.
    expect_problem(
        app.get(&c.path(&format!("/activities/{draft_id}")), &resident).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(json_of(app.get(&c.path("/activities"), &resident).await).await["items"], json!([]));
    expect_problem(
        app.post(&c.path("/activities"), &resident, activity_body(None)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for path in [format!("/activities/{draft_id}/check-in-code"), format!("/activities/{draft_id}/participants")] {
        expect_problem(app.get(&c.path(&path), &resident).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let completion =
        post_with_key(app, &c.path(&format!("/activities/{draft_id}/completion")), &resident, &new_key(), json!({}))
            .await;
    expect_problem(completion, StatusCode::FORBIDDEN, "forbidden").await;
    // A draft takes no sign-ups until it is published.
    expect_problem(
        app.request(Method::POST, &c.path(&format!("/activities/{draft_id}/registrations")), Some(&resident), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let published = json_of(
        expect_status(
            app.patch(
                &c.path(&format!("/activities/{draft_id}")),
                &c.staff,
                json!({"status": "published", "signup_deadline": "2026-11-27T02:30:00Z"}),
            )
            .await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(published["status"], "published");
    expect_problem(
        app.patch(&c.path(&format!("/activities/{draft_id}")), &c.staff, json!({"status": "draft"})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    // After the deadline, no more sign-ups.
    at(app, &mut c, "2026-11-27T02:31:00Z").await;
    let resident = c.residents[0].1.clone();
    expect_problem(
        app.request(Method::POST, &c.path(&format!("/activities/{draft_id}/registrations")), Some(&resident), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "registration_closed",
    )
    .await;
    // Other communities' staff: 404.
    expect_problem(
        app.get(&c.path(&format!("/activities/{draft_id}")), &app.login("外人.staff", crate::helpers::PASSWORD).await)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Pending residents neither see activities nor sign up for them.
    let code = json_of(app.get(&format!("/api/v1/units/{}", c.id), &c.staff).await).await["join_code"].clone();
    let register =
        json!({"join_code": code, "username": "pending.walker", "password": "a good password", "display_name": "x"});
    expect_status(app.request(Method::POST, "/api/v1/auth/register", None, Some(register)).await, StatusCode::CREATED)
        .await;
    let pending = app.login("pending.walker", "a good password").await;
    let sign_up = c.path(&format!("/activities/{draft_id}/registrations"));
    expect_problem(app.request(Method::POST, &sign_up, Some(&pending), None).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let check_in = c.path(&format!("/activities/{draft_id}/check-ins"));
    expect_problem(app.post(&check_in, &pending, json!({"code": "ABCDEF"})).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    // Staff cannot check in someone who is not an active resident.
    let pending_id = json_of(app.get("/api/v1/me", &pending).await).await["id"].clone();
    let published = create_activity(app, &c, activity_body(None)).await;
    at(app, &mut c, "2026-11-27T03:00:00Z").await;
    let published_check_in = c.path(&format!("/activities/{}/check-ins", published["id"].as_str().unwrap()));
    expect_problem(
        app.post(&published_check_in, &c.staff, json!({"user_id": pending_id})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_not_active",
    )
    .await;
    // Another community's staff, on their own community's path with this activity's id: 404.
    let other_staff = app.login("外人.staff", crate::helpers::PASSWORD).await;
    let other_id = json_of(app.get("/api/v1/units?kind=community", &other_staff).await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = format!("/api/v1/communities/{other_id}/activities/{}", published["id"].as_str().unwrap());
    expect_problem(app.get(&foreign, &other_staff).await, StatusCode::NOT_FOUND, "not_found").await;
    let foreign_completion =
        post_with_key(app, &format!("{foreign}/completion"), &other_staff, &new_key(), json!({})).await;
    expect_problem(foreign_completion, StatusCode::NOT_FOUND, "not_found").await;
    // Lists filter by category of the rule.
    assert_eq!(
        json_of(app.get(&c.path("/activities?category=volunteering"), &c.staff).await).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(json_of(app.get(&c.path("/activities?category=culture"), &c.staff).await).await["items"], json!([]));
    // Bad activities.
    let mut backwards = activity_body(None);
    backwards["ends_at"] = json!("2026-11-27T02:00:00Z");
    expect_problem(
        app.post(&c.path("/activities"), &c.staff, backwards).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let mut wrong_rule = activity_body(None);
    wrong_rule["rule_code"] = json!("littering");
    expect_problem(
        app.post(&c.path("/activities"), &c.staff, wrong_rule).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_rule",
    )
    .await;
    // Cancelled: closed for good.
    expect_status(
        app.patch(&c.path(&format!("/activities/{draft_id}")), &c.staff, json!({"status": "cancelled"})).await,
        StatusCode::OK,
    )
    .await;
    let completion =
        post_with_key(app, &c.path(&format!("/activities/{draft_id}/completion")), &c.staff, &new_key(), json!({}))
            .await;
    expect_problem(completion, StatusCode::CONFLICT, "activity_closed").await;
}
