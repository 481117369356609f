use diesel::prelude::*;
use jifen::db::schema::{activities, refresh_tokens, users};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, expect_status, id, json_of};
use crate::ledger_helpers::{award, community, new_key, post_with_key};

both_backends!(no_response_leaks_secrets);

/// Every GET of the contract, by every kind of caller, in a community with some life in it:
/// no answer holds a password (hash), a token, a refresh-token id or an activity's check-in secret.
async fn no_response_leaks_secrets(app: &TestApp) {
    let c = community(app, "保密", 2).await;
    let (resident, resident_token) = c.residents[0].clone();
    let transaction = award(app, &c, &[(&resident, 50)]).await;
    let first_id = |list: Value| list["items"][0]["id"].as_str().unwrap().to_owned();
    let rule_id = first_id(json_of(app.get(&c.path("/rules"), &c.staff).await).await);
    let reward = json!({"name": "肥皂", "cost": 10});
    let reward_id = id(&json_of(app.post(&c.path("/rewards"), &c.staff, reward).await).await).to_owned();
    let order = json!({"reward_id": reward_id, "quantity": 1});
    let order = json_of(post_with_key(app, &c.path("/redemptions"), &resident_token, &new_key(), order).await).await;
    let claim = json!({"rule_code": "volunteering", "description": "捡垃圾", "occurred_at": "2026-11-26T08:00:00Z"});
    let claim_id = id(&json_of(app.post(&c.path("/claims"), &resident_token, claim).await).await).to_owned();
    let activity = json!({"rule_code": "volunteering", "title": "扫雪", "points": 10, "status": "published",
        "starts_at": "2026-11-27T03:00:00Z", "ends_at": "2026-11-27T05:00:00Z"});
    let activity_id = id(&json_of(app.post(&c.path("/activities"), &c.staff, activity).await).await).to_owned();
    expect_status(
        app.post(&c.path(&format!("/activities/{activity_id}/registrations")), &resident_token, json!({})).await,
        StatusCode::CREATED,
    )
    .await;
    let tokens = app.login_tokens(&format!("{}.staff", "保密"), PASSWORD).await;
    let ids = [
        ("community_id", c.id.clone()),
        ("unit_id", c.id.clone()),
        ("user_id", resident.clone()),
        ("transaction_id", transaction["id"].as_str().unwrap().to_owned()),
        ("rule_id", rule_id),
        ("reward_id", reward_id),
        ("redemption_id", order["id"].as_str().unwrap().to_owned()),
        ("claim_id", claim_id),
        ("activity_id", activity_id),
    ];

    let mut conn = app.database().blocking_connection().unwrap();
    let mut secrets: Vec<String> = users::table.select(users::password_hash).load(&mut *conn).unwrap();
    secrets.extend(refresh_tokens::table.select(refresh_tokens::id).load::<String>(&mut *conn).unwrap());
    secrets.extend(activities::table.select(activities::check_in_secret).load::<String>(&mut *conn).unwrap());
    let callers = [&c.admin, &c.staff, &c.auditor, &resident_token, tokens["access_token"].as_str().unwrap()];
    secrets.extend(callers.iter().map(|token| token.to_string()));
    secrets.extend([tokens["refresh_token"].as_str().unwrap().to_owned(), JWT_SECRET.to_owned(), PASSWORD.to_owned()]);
    secrets.push(order["pickup_code"].as_str().unwrap().to_owned());
    assert!(secrets.len() > 15);

    let spec = serde_json::to_value(jifen::openapi::spec()).unwrap();
    let mut answers = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if item.get("get").is_none() || path.ends_with(".js") {
            continue;
        }
        let url = ids.iter().fold(path.clone(), |url, (name, value)| url.replace(&format!("{{{name}}}"), value));
        for (n, token) in callers.iter().enumerate() {
            let response = app.request(Method::GET, &url, Some(token), None).await;
            let status = response.status();
            let body = response.text().await.unwrap();
            answers += usize::from(status.is_success());
            for secret in &secrets {
                // The resident who ordered sees their own pickup code, and nobody else does.
                let own_pickup_code = n == 3 && Some(secret.as_str()) == order["pickup_code"].as_str();
                assert!(own_pickup_code || !body.contains(secret.as_str()), "GET {url} as caller {n} shows {secret:?}");
            }
        }
    }
    assert!(answers > 60, "only {answers} successful answers were checked");
}
