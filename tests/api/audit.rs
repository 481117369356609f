use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, expect_problem, expect_status, id, json_of};
use crate::ledger_helpers::{award, community, deduct_response, head_sequence, new_key, post_with_key};

both_backends!(
    staff_requests_are_recorded_with_who_what_where_and_how_they_ended,
    sign_ins_are_recorded_whether_they_succeed_or_not,
    auditors_read_the_records_of_their_units_only,
    the_audit_log_cannot_be_altered,
    auditors_can_read_but_never_write,
    parallel_requests_each_get_their_own_record,
    refused_attempts_are_recorded_once_and_floods_not_at_all,
    every_export_is_recorded_whoever_asks,
);

/// The audit log as `token` sees it, with `query` (e.g. `action=award`).
async fn records(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let page =
        json_of(expect_status(app.get(&format!("/api/v1/audit-log?{query}"), token).await, StatusCode::OK).await).await;
    page["items"].as_array().unwrap().clone()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    json_of(expect_status(app.get("/api/v1/me", token).await, StatusCode::OK).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn staff_requests_are_recorded_with_who_what_where_and_how_they_ended(app: &TestApp) {
    let c = community(app, "记录", 2).await;
    let staff_id = user_id(app, &c.staff).await;
    let resident = c.residents[0].0.clone();

    // An award: recorded in its own transaction, naming the transaction it wrote.
    let key = new_key();
    let body = json!({"rule_code": "volunteering", "memo": "扫雪", "awards": [{"user_id": resident, "points": 20}]});
    let response = post_with_key(app, &c.path("/awards"), &c.staff, &key, body.clone()).await;
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let transaction = json_of(expect_status(response, StatusCode::CREATED).await).await;
    let awards = records(app, &c.auditor, "action=award").await;
    assert_eq!(awards.len(), 1, "{awards:?}");
    let record = &awards[0];
    assert_eq!(record["actor"]["id"], staff_id);
    assert_eq!(record["actor"]["username"], "记录.staff");
    assert_eq!(record["target"], json!({"type": "transaction", "id": transaction["id"]}));
    assert_eq!(record["unit_id"], c.id);
    assert_eq!(record["request_id"], request_id);
    assert_eq!(record["client_ip"], "127.0.0.1");
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(record["code"], Value::Null);
    assert_eq!(record["occurred_at"], "2026-11-27T02:00:00Z");

    // A retry with the same key changes nothing and is recorded as a replay.
    let replay = post_with_key(app, &c.path("/awards"), &c.staff, &key, body).await;
    assert_eq!(expect_status(replay, StatusCode::CREATED).await.headers()["idempotent-replayed"], "true");
    let awards = records(app, &c.auditor, "action=award").await;
    assert_eq!(awards.iter().map(|r| r["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["replayed", "succeeded"]);

    // Refusals: for the state of things (kept with the key), and before anything is written.
    expect_problem(deduct_response(app, &c, &resident, 500).await, StatusCode::CONFLICT, "insufficient_points").await;
    expect_problem(
        app.post(
            &c.path("/deductions"),
            &c.staff,
            json!({"user_id": resident, "points": 1, "rule_code": "littering", "memo": "x"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    )
    .await;
    let deductions = records(app, &c.auditor, "action=deduct").await;
    let outcomes: Vec<_> = deductions.iter().map(|r| (r["outcome"].clone(), r["code"].clone())).collect();
    assert_eq!(
        outcomes,
        [(json!("refused"), json!("idempotency_key_required")), (json!("refused"), json!("insufficient_points"))]
    );

    // A change without a key (PATCH) names its target from the path.
    let rules = json_of(expect_status(app.get(&c.path("/rules"), &c.staff).await, StatusCode::OK).await).await;
    let rule_id = rules["items"][0]["id"].as_str().unwrap().to_owned();
    expect_status(
        app.patch(&c.path(&format!("/rules/{rule_id}")), &c.staff, json!({"name": "志愿"})).await,
        StatusCode::OK,
    )
    .await;
    let updates = records(app, &c.auditor, "action=update_rule").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["target"], json!({"type": "rule", "id": rule_id}));
    assert_eq!(updates[0]["outcome"], "succeeded");

    // Residents' own requests are theirs, not staff actions: they are not recorded.
    let claim =
        json!({"rule_code": "volunteering", "description": "帮邻居搬家", "occurred_at": "2026-11-26T08:00:00Z"});
    expect_status(app.post(&c.path("/claims"), &c.residents[0].1, claim).await, StatusCode::CREATED).await;
    assert!(records(app, &c.auditor, "action=create_claim").await.is_empty());
    let resident_records = records(app, &c.admin, &format!("actor={resident}")).await;
    assert!(resident_records.iter().all(|r| r["action"] == "login"), "{resident_records:?}");

    // Reads are not recorded; staff probing another community's ids are.
    expect_status(app.get(&c.path("/rules"), &c.staff).await, StatusCode::OK).await;
    let other = community(app, "别处", 0).await;
    expect_problem(
        app.patch(&other.path(&format!("/rules/{rule_id}")), &c.staff, json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let probes = records(app, &other.auditor, &format!("actor={staff_id}")).await;
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!((probes[0]["action"].as_str(), probes[0]["code"].as_str()), (Some("update_rule"), Some("not_found")));
    let mine = records(app, &c.auditor, &format!("actor={staff_id}")).await;
    assert!(mine.iter().all(|r| r["unit_id"] == c.id), "{mine:?}");
    assert!(mine.iter().all(|r| r["action"] != "list_rules"));
}

async fn sign_ins_are_recorded_whether_they_succeed_or_not(app: &TestApp) {
    let c = community(app, "登录", 0).await;
    expect_status(app.login_response("登录.staff", PASSWORD).await, StatusCode::OK).await;
    expect_problem(
        app.login_response("登录.staff", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    expect_problem(app.login_response("nobody", PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // Residents' sign-ins too: every sign-in is recorded.
    let resident = app.add_member(&c.admin, &c.id, "登录.resident", &["resident"]).await;
    app.login("登录.resident", PASSWORD).await;

    let sign_ins = records(app, &c.admin, "action=login&limit=4").await;
    let summary: Vec<_> = sign_ins
        .iter()
        .map(|r| (r["actor"]["username"].clone(), r["target"].clone(), r["outcome"].clone(), r["code"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (json!("登录.resident"), Value::Null, json!("succeeded"), Value::Null),
            (Value::Null, json!({"type": "username", "id": "nobody"}), json!("refused"), json!("invalid_credentials")),
            (json!("登录.staff"), Value::Null, json!("refused"), json!("invalid_credentials")),
            (json!("登录.staff"), Value::Null, json!("succeeded"), Value::Null),
        ]
    );
    assert_eq!(sign_ins[0]["actor"]["id"], resident["user"]["id"]);
    // Sign-ins belong to no unit: a street's auditor does not see them.
    assert!(records(app, &c.auditor, "action=login").await.is_empty());
}

async fn auditors_read_the_records_of_their_units_only(app: &TestApp) {
    let c = community(app, "东", 1).await;
    let admin = c.admin.clone();
    // A second community under the same street, and one under another street.
    let street_id = json_of(
        expect_status(app.get(&format!("/api/v1/units/{}", c.id), &admin).await, StatusCode::OK).await,
    )
    .await["parent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sibling = app.create_unit(&admin, "community", "西社区", Some(&street_id)).await;
    let elsewhere = community(app, "北", 1).await;
    let staff_id = user_id(app, &c.staff).await;
    award(app, &c, &[(&c.residents[0].0, 5)]).await;
    award(app, &elsewhere, &[(&elsewhere.residents[0].0, 5)]).await;
    let unit_ids =
        |list: &[Value]| list.iter().map(|r| r["unit_id"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();

    // The street auditor sees its communities (the admin creating the sibling included), not the other street's.
    let seen = records(app, &c.auditor, "limit=200").await;
    assert!(unit_ids(&seen).contains(&c.id));
    assert!(unit_ids(&seen).contains(&id(&sibling).to_owned()));
    assert!(!unit_ids(&seen).contains(&elsewhere.id), "{seen:?}");
    assert!(seen.iter().all(|r| r["unit_id"].is_string()), "nothing tied to no unit");
    // The platform admin sees everything.
    let everything = records(app, &admin, "limit=200").await;
    assert!(unit_ids(&everything).contains(&elsewhere.id));

    // Filters: unit (its subtree), actor, action, time; pages.
    let of_community = records(app, &c.auditor, &format!("unit={}&limit=200", c.id)).await;
    assert!(!of_community.is_empty() && of_community.iter().all(|r| r["unit_id"] == c.id));
    let by_staff = records(app, &c.auditor, &format!("actor={staff_id}")).await;
    assert_eq!(
        by_staff.iter().map(|r| r["action"].as_str().unwrap()).collect::<Vec<_>>(),
        ["award", "create_rule", "create_rule"]
    );
    let first = json_of(
        expect_status(
            app.get(&format!("/api/v1/audit-log?actor={staff_id}&limit=2"), &c.auditor).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = records(app, &c.auditor, &format!("actor={staff_id}&limit=2&cursor={cursor}")).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"], by_staff[2]["id"]);
    app.clock.advance(chrono::Duration::hours(1));
    let mut c = c;
    c.sign_in_again(app).await;
    award(app, &c, &[(&c.residents[0].0, 5)]).await;
    let later = records(app, &c.auditor, "action=award&from=2026-11-27T02:30:00Z").await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["occurred_at"], "2026-11-27T03:00:00Z");
    assert_eq!(records(app, &c.auditor, "action=award&to=2026-11-27T02:30:00Z").await.len(), 1);

    // Who may read: auditors and admins; another street's unit is out of sight.
    for token in [&c.staff, &c.residents[0].1] {
        expect_problem(app.get("/api/v1/audit-log", token).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
    expect_problem(
        app.get(&format!("/api/v1/audit-log?unit={}", elsewhere.id), &c.auditor).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.get(&format!("/api/v1/audit-log?unit={}", c.id), &c.staff).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for bad in
        ["actor=x", "from=yesterday", "limit=0", "cursor=nope", "from=2026-11-28T00:00:00Z&to=2026-11-27T00:00:00Z"]
    {
        let response = app.get(&format!("/api/v1/audit-log?{bad}"), &c.auditor).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn the_audit_log_cannot_be_altered(app: &TestApp) {
    let c = community(app, "不改", 0).await;
    assert!(!records(app, &c.admin, "").await.is_empty());
    let mut conn = app.database().blocking_connection().unwrap();
    use jifen::db::schema::audit_records;
    let update = diesel::update(audit_records::table).set(audit_records::outcome.eq("failed")).execute(&mut *conn);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = diesel::delete(audit_records::table).execute(&mut *conn);
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

/// Every write of the API, as the contract describes it, is refused to an auditor
/// (403, or 404 where only one's own things can be acted on) and changes nothing.
async fn auditors_can_read_but_never_write(app: &TestApp) {
    let c = community(app, "只读", 1).await;
    let resident = c.residents[0].0.clone();
    let transaction = award(app, &c, &[(&resident, 50)]).await;
    let spec = serde_json::to_value(jifen::openapi::spec()).unwrap();
    // Existing things of the community, to name in paths.
    let first_id = |list: Value| list["items"][0]["id"].as_str().unwrap().to_owned();
    let rule_id = first_id(json_of(app.get(&c.path("/rules"), &c.staff).await).await);
    let reward = json!({"name": "肥皂", "cost": 10});
    let reward_id = id(&json_of(app.post(&c.path("/rewards"), &c.staff, reward).await).await).to_owned();
    let order = json!({"reward_id": reward_id, "quantity": 1});
    let order_id =
        id(&json_of(post_with_key(app, &c.path("/redemptions"), &c.residents[0].1, &new_key(), order).await).await)
            .to_owned();
    let claim = json!({"rule_code": "volunteering", "description": "捡垃圾", "occurred_at": "2026-11-26T08:00:00Z"});
    let claim_id = id(&json_of(app.post(&c.path("/claims"), &c.residents[0].1, claim).await).await).to_owned();
    let activity = json!({"rule_code": "volunteering", "title": "扫雪", "points": 10,
        "starts_at": "2026-11-28T01:00:00Z", "ends_at": "2026-11-28T03:00:00Z"});
    let activity_id = id(&json_of(app.post(&c.path("/activities"), &c.staff, activity).await).await).to_owned();
    let publish = json!({"status": "published"});
    expect_status(app.patch(&c.path(&format!("/activities/{activity_id}")), &c.staff, publish).await, StatusCode::OK)
        .await;
    let ids = [
        ("community_id", c.id.clone()),
        ("unit_id", c.id.clone()),
        ("user_id", resident.clone()),
        ("transaction_id", transaction["id"].as_str().unwrap().to_owned()),
        ("rule_id", rule_id),
        ("reward_id", reward_id),
        ("redemption_id", order_id),
        ("claim_id", claim_id),
        ("activity_id", activity_id),
    ];
    let unit =
        json_of(expect_status(app.get(&format!("/api/v1/units/{}", c.id), &c.auditor).await, StatusCode::OK).await);
    let street_id = unit.await["parent_id"].as_str().unwrap().to_owned();
    let sequence = head_sequence(app, &c).await;

    let mut tried = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if path.starts_with("/api/v1/auth/") || path.starts_with("/api/v1/me") {
            continue; // one's own account and session, not the community's data
        }
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if [Method::GET, Method::HEAD].contains(&method) {
                continue;
            }
            let url = ids.iter().fold(path.clone(), |url, (name, value)| url.replace(&format!("{{{name}}}"), value));
            assert!(!url.contains('{'), "no id for a parameter of {url}");
            let mut body = request_example(&spec, operation);
            if body.get("parent_id").is_some() {
                body["parent_id"] = json!(street_id);
            }
            let response = app
                .client
                .request(method.clone(), app.url(&url))
                .bearer_auth(&c.auditor)
                .header("Idempotency-Key", new_key())
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let own_things_only = url.ends_with("/registrations/me") || url.ends_with("/cancellation");
            let expected = if own_things_only { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
            assert_eq!(status, expected, "{method} {url} with {body}: {}", response.text().await.unwrap());
            tried += 1;
        }
    }
    assert!(tried >= 20, "only {tried} write operations found");
    assert_eq!(head_sequence(app, &c).await, sequence, "an auditor changed the ledger");
}

/// The example of an operation's JSON request body, from the contract.
fn request_example(spec: &Value, operation: &Value) -> Value {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let Some(reference) = schema["$ref"].as_str() else { return json!({}) };
    let name = reference.rsplit('/').next().unwrap();
    let schema = &spec["components"]["schemas"][name];
    schema.get("example").or_else(|| schema["examples"].get(0)).cloned().unwrap_or_else(|| json!({}))
}

async fn parallel_requests_each_get_their_own_record(app: &TestApp) {
    let c = community(app, "并发", 3).await;
    let shared_key = new_key();
    let requests = (0..30).map(|n| {
        let (resident, key) =
            if n < 20 { (&c.residents[n % 3].0, new_key()) } else { (&c.residents[0].0, shared_key.clone()) };
        let body = json!({"rule_code": "volunteering", "memo": "并发", "awards": [{"user_id": resident, "points": 1}]});
        let path = c.path("/awards");
        let (staff, key) = (c.staff.clone(), key);
        async move {
            let response = post_with_key(app, &path, &staff, &key, body).await;
            let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
            (response.status(), request_id)
        }
    });
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::CREATED), "{answers:?}");
    let awards = records(app, &c.auditor, "action=award&limit=100").await;
    assert_eq!(awards.len(), 30);
    let mut recorded: Vec<_> = awards.iter().map(|r| r["request_id"].as_str().unwrap().to_owned()).collect();
    let mut sent: Vec<_> = answers.into_iter().map(|(_, request_id)| request_id).collect();
    recorded.sort();
    sent.sort();
    assert_eq!(recorded, sent, "one record per request, under its own request id");
    let succeeded = awards.iter().filter(|r| r["outcome"] == "succeeded").count();
    let transactions = json_of(app.get(&c.path("/transactions?kind=award&limit=100"), &c.staff).await).await;
    assert_eq!(succeeded, transactions["items"].as_array().unwrap().len());
    assert_eq!(succeeded, 21, "20 distinct keys and one shared key");
    assert_eq!(awards.iter().filter(|r| r["outcome"] == "replayed").count(), 9);
}

async fn refused_attempts_are_recorded_once_and_floods_not_at_all(app: &TestApp) {
    let c = community(app, "拒绝", 1).await;
    let (resident, resident_token) = c.residents[0].clone();
    award(app, &c, &[(&resident, 50)]).await;
    let reward = json_of(app.post(&c.path("/rewards"), &c.staff, json!({"name": "抽纸", "cost": 20})).await).await;
    let order = json!({"reward_id": reward["id"], "quantity": 1});
    let order = json_of(post_with_key(app, &c.path("/redemptions"), &resident_token, &new_key(), order).await).await;
    let fulfil = c.path(&format!("/redemptions/{}/fulfilment", order["id"].as_str().unwrap()));
    let wrong = post_with_key(app, &fulfil, &c.staff, &new_key(), json!({"pickup_code": "AAAAAAAA"})).await;
    expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "invalid_pickup_code").await;
    let password = json!({"current_password": "not it", "new_password": "a new good password"});
    let refused = app.request(Method::PUT, "/api/v1/me/password", Some(&c.staff), Some(password)).await;
    expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "current_password_incorrect").await;

    let staff_id = user_id(app, &c.staff).await;
    let refusals: Vec<_> = records(app, &c.admin, &format!("actor={staff_id}"))
        .await
        .into_iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r["code"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        refusals,
        [
            ("change_password".to_owned(), "current_password_incorrect".to_owned()),
            ("fulfil".to_owned(), "invalid_pickup_code".to_owned()),
        ]
    );

    let limited = app.sibling(|settings| settings.rate_limits.writes_per_user = std::num::NonZeroU32::MIN).await;
    let rule = json!({"name": "志愿"});
    let rules = json_of(app.get(&c.path("/rules"), &c.staff).await).await;
    let rule_path = c.path(&format!("/rules/{}", rules["items"][0]["id"].as_str().unwrap()));
    expect_status(limited.patch(&rule_path, &c.staff, rule.clone()).await, StatusCode::OK).await;
    for _ in 0..3 {
        expect_problem(
            limited.patch(&rule_path, &c.staff, rule.clone()).await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        )
        .await;
    }
    let updates = records(app, &c.admin, "action=update_rule").await;
    assert_eq!(updates.len(), 1, "only the change itself: {updates:?}");
    limited.stop().await;
}

async fn every_export_is_recorded_whoever_asks(app: &TestApp) {
    let c = community(app, "导出", 1).await;
    let auditor_id = user_id(app, &c.auditor).await;
    let street = json_of(app.get(&format!("/api/v1/units/{}", c.id), &c.auditor).await).await["parent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, token) in [
        (c.path("/exports/ledger.csv"), &c.auditor),
        (c.path("/exports/redemptions.csv?bom=false"), &c.staff),
        (format!("/api/v1/units/{street}/exports/ledger.csv"), &c.auditor),
    ] {
        let response = expect_status(app.get(&path, token).await, StatusCode::OK).await;
        response.bytes().await.unwrap();
    }
    expect_problem(
        app.get(&c.path("/exports/ledger.csv"), &c.residents[0].1).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let exports: Vec<_> = records(app, &c.admin, "limit=200")
        .await
        .into_iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("export_"))
        .map(|r| (r["action"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        exports,
        [
            ("export_community_ledger".to_owned(), "refused".to_owned()),
            ("export_unit_ledger".to_owned(), "succeeded".to_owned()),
            ("export_redemptions".to_owned(), "succeeded".to_owned()),
            ("export_community_ledger".to_owned(), "succeeded".to_owned()),
        ]
    );
    let by_auditor = records(app, &c.admin, &format!("actor={auditor_id}&action=export_unit_ledger")).await;
    assert_eq!(by_auditor[0]["unit_id"], street);
}
