use std::collections::HashMap;

use diesel::prelude::*;
use futures::future::join_all;
use jifen::db::schema::{accounts, lots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, counters, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{
    Community, award, balance, check_invariants, community, new_key, post_with_key, recorded_targets,
};

both_backends!(
    an_order_from_hold_to_handover,
    cancelled_orders_return_points_and_stock,
    stock_is_never_oversold,
    one_resident_cannot_overspend_in_parallel,
    handover_and_cancellation_race_and_one_wins,
    limits_per_period_follow_the_local_calendar,
    uncollected_orders_are_cancelled_after_the_pickup_window,
    guessing_pickup_codes_is_stopped,
    cancelled_points_whose_lot_expired_meanwhile_expire_at_once,
    orders_placed_together_are_each_checked_answered_stored_and_recorded,
    grouped_orders_take_the_soonest_expiring_points_first
);

async fn cancelled_points_whose_lot_expired_meanwhile_expire_at_once(app: &TestApp) {
    let mut c = community(app, "过期退单", 1).await;
    let (a, a_token) = c.residents[0].clone();
    expect_status(
        app.patch(
            &format!("/api/v1/units/{}", c.id),
            &c.admin,
            json!({"expiry_policy": {"policy": "days", "days": 1}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    award(app, &c, &[(&a, 50)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 30})).await;
    let placed =
        json_of(expect_status(order(app, &c, &a_token, json!({"reward_id": soap})).await, StatusCode::CREATED).await)
            .await;
    // The lot (earned 27 November, local) expired at the end of 28 November, local.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-29T00:00:00Z").unwrap().into());
    c.sign_in_again(app).await;
    let token = c.residents[0].1.clone();
    let cancel = c.path(&format!("/redemptions/{}/cancellation", placed["id"].as_str().unwrap()));
    expect_status(app.request(Method::POST, &cancel, Some(&token), None).await, StatusCode::OK).await;
    assert_eq!(balance(app, &c, &a).await, 0, "neither the 30 returned nor the 20 left can be spent any more");
    let expiries = json_of(app.get(&c.path("/transactions?kind=expiry"), &c.auditor).await).await;
    assert_eq!(expiries["items"][0]["postings"][0]["amount"], -50);
    check_invariants(app).await;
}

async fn guessing_pickup_codes_is_stopped(app: &TestApp) {
    let mut c = community(app, "猜码", 1).await;
    let (a, a_token) = c.residents[0].clone();
    award(app, &c, &[(&a, 100)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 30})).await;
    let placed =
        json_of(expect_status(order(app, &c, &a_token, json!({"reward_id": soap})).await, StatusCode::CREATED).await)
            .await;
    let path = c.path(&format!("/redemptions/{}/fulfilment", placed["id"].as_str().unwrap()));
    for guess in ["AAAAAAAA", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD", "EEEEEEEE"] {
        expect_problem(
            app.post(&path, &c.staff, json!({"pickup_code": guess})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pickup_code",
        )
        .await;
    }
    // Locked now, even for the right code.
    let locked = app.post(&path, &c.staff, json!({"pickup_code": placed["pickup_code"]})).await;
    assert_eq!(locked.headers()["retry-after"], "900");
    expect_problem(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_pickup_attempts").await;
    app.clock.advance(chrono::Duration::minutes(15));
    c.sign_in_again(app).await;
    expect_status(app.post(&path, &c.staff, json!({"pickup_code": placed["pickup_code"]})).await, StatusCode::OK).await;
    check_invariants(app).await;
}

async fn reward(app: &TestApp, c: &Community, body: Value) -> String {
    json_of(expect_status(app.post(&c.path("/rewards"), &c.staff, body).await, StatusCode::CREATED).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn order(app: &TestApp, c: &Community, token: &str, body: Value) -> reqwest::Response {
    post_with_key(app, &c.path("/redemptions"), token, &new_key(), body).await
}

async fn account(app: &TestApp, c: &Community, user: &str) -> Value {
    json_of(app.get(&c.path(&format!("/accounts/{user}")), &c.staff).await).await
}

async fn stock(app: &TestApp, c: &Community, reward_id: &str) -> Value {
    json_of(app.get(&c.path(&format!("/rewards/{reward_id}")), &c.staff).await).await["stock"].clone()
}

async fn an_order_from_hold_to_handover(app: &TestApp) {
    let c = community(app, "兑换", 1).await;
    let (a, a_token) = c.residents[0].clone();
    award(app, &c, &[(&a, 200)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 30, "stock": 5})).await;
    let placed = json_of(
        expect_status(order(app, &c, &a_token, json!({"reward_id": soap, "quantity": 2})).await, StatusCode::CREATED)
            .await,
    )
    .await;
    assert_eq!(
        (placed["status"].clone(), placed["points"].clone(), placed["ordered_by"].clone()),
        (json!("pending"), json!(60), json!(a))
    );
    let code = placed["pickup_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8);
    let held = account(app, &c, &a).await;
    assert_eq!((held["balance"].clone(), held["held"].clone()), (json!(140), json!(60)));
    assert_eq!(stock(app, &c, &soap).await, 3);

    // At the counter: staff find the order by its code and hand it over.
    let found =
        json_of(app.get(&c.path(&format!("/redemptions?pickup_code={}", code.to_lowercase())), &c.staff).await).await;
    assert_eq!(found["items"][0]["id"], placed["id"]);
    let id = placed["id"].as_str().unwrap();
    let fulfil_path = c.path(&format!("/redemptions/{id}/fulfilment"));
    let fulfil = |code: String| app.post(&fulfil_path, &c.staff, json!({"pickup_code": code}));
    expect_problem(fulfil("WRONG234".to_owned()).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_pickup_code").await;
    expect_problem(
        app.post(&c.path(&format!("/redemptions/{id}/fulfilment")), &a_token, json!({"pickup_code": code})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let done = json_of(expect_status(fulfil(code.clone()).await, StatusCode::OK).await).await;
    assert_eq!(done["status"], "fulfilled");
    let spent = account(app, &c, &a).await;
    assert_eq!(
        (spent["balance"].clone(), spent["held"].clone(), spent["lifetime_spent"].clone()),
        (json!(140), json!(0), json!(60))
    );
    expect_problem(fulfil(code).await, StatusCode::CONFLICT, "redemption_not_pending").await;
    expect_problem(
        app.request(Method::POST, &c.path(&format!("/redemptions/{id}/cancellation")), Some(&a_token), None).await,
        StatusCode::CONFLICT,
        "redemption_not_pending",
    )
    .await;
    let history = json_of(app.get(&c.path("/transactions?limit=2"), &c.auditor).await).await;
    assert_eq!(history["items"][0]["kind"], "redemption");
    assert_eq!(history["items"][1]["kind"], "redemption_hold");

    // Refusals.
    expect_problem(
        order(app, &c, &a_token, json!({"reward_id": soap, "quantity": 4})).await,
        StatusCode::CONFLICT,
        "out_of_stock",
    )
    .await;
    let pricey = reward(app, &c, json!({"name": "电饭煲", "cost": 1000})).await;
    expect_problem(
        order(app, &c, &a_token, json!({"reward_id": pricey})).await,
        StatusCode::CONFLICT,
        "insufficient_points",
    )
    .await;
    let hidden = reward(app, &c, json!({"name": "下架", "cost": 1, "active": false})).await;
    expect_problem(
        order(app, &c, &a_token, json!({"reward_id": hidden})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reward_unavailable",
    )
    .await;
    expect_problem(
        order(app, &c, &a_token, json!({"reward_id": soap, "quantity": 0})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    expect_problem(
        app.post(&c.path("/redemptions"), &a_token, json!({"reward_id": soap})).await,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    )
    .await;
    // Staff order for a resident without a phone; residents cannot order for others.
    let for_her = json_of(
        expect_status(order(app, &c, &c.staff, json!({"reward_id": soap, "user_id": a})).await, StatusCode::CREATED)
            .await,
    )
    .await;
    assert_eq!(for_her["user_id"], a.as_str());
    assert_ne!(for_her["ordered_by"], a.as_str());
    expect_problem(
        order(app, &c, &a_token, json!({"reward_id": soap, "user_id": c.residents[0].0.replace('0', "1")})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    check_invariants(app).await;
}

async fn cancelled_orders_return_points_and_stock(app: &TestApp) {
    let c = community(app, "退单", 2).await;
    let (a, a_token) = c.residents[0].clone();
    let b_token = c.residents[1].1.clone();
    award(app, &c, &[(&a, 50)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 40, "stock": 1})).await;
    let placed =
        json_of(expect_status(order(app, &c, &a_token, json!({"reward_id": soap})).await, StatusCode::CREATED).await)
            .await;
    let id = placed["id"].as_str().unwrap();
    // Someone else's order: not found for them.
    expect_problem(
        app.request(Method::POST, &c.path(&format!("/redemptions/{id}/cancellation")), Some(&b_token), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(app.get(&c.path(&format!("/redemptions/{id}")), &b_token).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let cancelled = json_of(
        expect_status(
            app.request(Method::POST, &c.path(&format!("/redemptions/{id}/cancellation")), Some(&a_token), None).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(balance(app, &c, &a).await, 50);
    assert_eq!(account(app, &c, &a).await["held"], 0);
    assert_eq!(stock(app, &c, &soap).await, 1);
    check_invariants(app).await;
}

async fn stock_is_never_oversold(app: &TestApp) {
    let c = community(app, "抢购", 40).await;
    let lines: Vec<(&str, i64)> = c.residents.iter().map(|(user, _)| (user.as_str(), 100)).collect();
    award(app, &c, &lines).await;
    let scarce = reward(app, &c, json!({"name": "春联", "cost": 10, "stock": 5})).await;
    let keys: Vec<String> = c.residents.iter().map(|_| new_key()).collect();
    let path = c.path("/redemptions");
    let body = json!({"reward_id": scarce});
    let responses = join_all(
        c.residents.iter().zip(&keys).map(|((_, token), key)| post_with_key(app, &path, token, key, body.clone())),
    )
    .await;
    let mut ordered = 0;
    for response in responses {
        if response.status() == StatusCode::CREATED {
            ordered += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "out_of_stock").await;
        }
    }
    assert_eq!(ordered, 5);
    assert_eq!(stock(app, &c, &scarce).await, 0);
    check_invariants(app).await;
}

async fn one_resident_cannot_overspend_in_parallel(app: &TestApp) {
    let c = community(app, "超支", 1).await;
    let (a, a_token) = c.residents[0].clone();
    award(app, &c, &[(&a, 100)]).await;
    let haircut = reward(app, &c, json!({"name": "义剪", "cost": 30})).await;
    let keys: Vec<String> = (0..10).map(|_| new_key()).collect();
    let path = c.path("/redemptions");
    let body = json!({"reward_id": haircut});
    let responses = join_all(keys.iter().map(|key| post_with_key(app, &path, &a_token, key, body.clone()))).await;
    let ordered = responses.iter().filter(|response| response.status() == StatusCode::CREATED).count();
    assert_eq!(ordered, 3);
    let after = account(app, &c, &a).await;
    assert_eq!((after["balance"].clone(), after["held"].clone()), (json!(10), json!(90)));
    check_invariants(app).await;
}

async fn handover_and_cancellation_race_and_one_wins(app: &TestApp) {
    let c = community(app, "竞态", 1).await;
    let (a, a_token) = c.residents[0].clone();
    award(app, &c, &[(&a, 100)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 20, "stock": 10})).await;
    for _ in 0..3 {
        let placed = json_of(
            expect_status(order(app, &c, &a_token, json!({"reward_id": soap})).await, StatusCode::CREATED).await,
        )
        .await;
        let id = placed["id"].as_str().unwrap();
        let fulfil_path = c.path(&format!("/redemptions/{id}/fulfilment"));
        let cancel_path = c.path(&format!("/redemptions/{id}/cancellation"));
        let fulfil = app.post(&fulfil_path, &c.staff, json!({"pickup_code": placed["pickup_code"]}));
        let cancel = app.request(Method::POST, &cancel_path, Some(&a_token), None);
        let (fulfilled, cancelled) = futures::join!(fulfil, cancel);
        let statuses = [fulfilled.status(), cancelled.status()];
        assert_eq!(statuses.iter().filter(|status| status.is_success()).count(), 1, "{statuses:?}");
        assert!(statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    }
    assert_eq!(account(app, &c, &a).await["held"], 0);
    // Every item is on the shelf, handed over, or (none left) pending.
    let orders = json_of(app.get(&c.path("/redemptions"), &c.staff).await).await;
    let fulfilled = orders["items"].as_array().unwrap().iter().filter(|o| o["status"] == "fulfilled").count() as i64;
    assert_eq!(stock(app, &c, &soap).await.as_i64().unwrap() + fulfilled, 10);
    check_invariants(app).await;
}

async fn limits_per_period_follow_the_local_calendar(app: &TestApp) {
    let mut c = community(app, "限购", 1).await;
    let a = c.residents[0].0.clone();
    award(app, &c, &[(&a, 100)]).await;
    let oil =
        reward(app, &c, json!({"name": "食用油", "cost": 10, "limit_per_resident": {"count": 1, "period": "month"}}))
            .await;
    // 23:59 on 30 November in Shanghai.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-30T15:59:00Z").unwrap().into());
    c.sign_in_again(app).await;
    let token = c.residents[0].1.clone();
    expect_status(order(app, &c, &token, json!({"reward_id": oil})).await, StatusCode::CREATED).await;
    expect_problem(order(app, &c, &token, json!({"reward_id": oil})).await, StatusCode::CONFLICT, "limit_reached")
        .await;
    // Midnight, 1 December in Shanghai: a new month.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-30T16:00:00Z").unwrap().into());
    expect_status(order(app, &c, &token, json!({"reward_id": oil})).await, StatusCode::CREATED).await;
    expect_problem(order(app, &c, &token, json!({"reward_id": oil})).await, StatusCode::CONFLICT, "limit_reached")
        .await;
    check_invariants(app).await;
}

async fn uncollected_orders_are_cancelled_after_the_pickup_window(app: &TestApp) {
    let c = community(app, "逾期", 1).await;
    let (a, a_token) = c.residents[0].clone();
    award(app, &c, &[(&a, 100)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 30, "stock": 2})).await;
    let placed =
        json_of(expect_status(order(app, &c, &a_token, json!({"reward_id": soap})).await, StatusCode::CREATED).await)
            .await;
    let run = |at: &str| {
        let db = app.database();
        let now = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc);
        async move {
            tokio::task::spawn_blocking(move || jifen::maintenance::run_once(&db, now)).await.unwrap().unwrap().unwrap()
        }
    };
    // Ordered at 2026-11-27T02:00Z; the window is 14 days.
    assert_eq!(run("2026-12-11T01:59:00Z").await.uncollected_orders_cancelled, 0);
    assert_eq!(run("2026-12-11T02:00:00Z").await.uncollected_orders_cancelled, 1);
    let after =
        json_of(app.get(&c.path(&format!("/redemptions/{}", placed["id"].as_str().unwrap())), &c.staff).await).await;
    assert_eq!((after["status"].clone(), after["resolved_by"].clone()), (json!("cancelled"), Value::Null));
    assert_eq!(balance(app, &c, &a).await, 100);
    assert_eq!(stock(app, &c, &soap).await, 2);
    check_invariants(app).await;
}

/// Orders that arrive together are written together (`redemptions::batch`); each is still
/// checked against stock and points (its lots taken soonest expiry first), answered, stored
/// for replay and recorded for itself. Those a group cannot vouch for (a reward with a limit per
/// resident or not on offer, not enough stock or points, a key sent twice, an order for
/// someone else by a resident) run alone and get the usual answers.
async fn orders_placed_together_are_each_checked_answered_stored_and_recorded(app: &TestApp) {
    let c = community(app, "成组兑换", 9).await;
    let residents: Vec<String> = c.residents.iter().map(|(user, _)| user.clone()).collect();
    // Residents 0 to 5 shop for soap and pens, each with 60 points in three lots; 6 and 7 with
    // 10 points try a reward limited to one a day; staff order pens for resident 8, who has
    // points for all of them and for one more, ordered twice with one key.
    for _ in 0..3 {
        let lines: Vec<(&str, i64)> = residents[..6].iter().map(|user| (user.as_str(), 20)).collect();
        award(app, &c, &lines).await;
    }
    award(app, &c, &[(&residents[6], 10), (&residents[7], 10), (&residents[8], 70)]).await;
    let soap = reward(app, &c, json!({"name": "洗衣液", "cost": 15, "stock": 10})).await;
    let pen = reward(app, &c, json!({"name": "笔", "cost": 10})).await;
    let calendar =
        reward(app, &c, json!({"name": "挂历", "cost": 1, "limit_per_resident": {"count": 1, "period": "day"}})).await;
    let withdrawn = reward(app, &c, json!({"name": "旧货", "cost": 1, "active": false})).await;

    // (token, body, what it orders); each resident's requests interleaved with the others'.
    let mut requests: Vec<(String, String, Value, &'static str)> = Vec::new();
    for round in 0..6 {
        for (user, token) in &c.residents[..6] {
            let (body, what) = match round {
                0 | 2 | 3 | 5 => (json!({"reward_id": soap}), "soap"),
                _ => (json!({"reward_id": pen}), "pen"),
            };
            requests.push((token.clone(), new_key(), body, what));
            if round == 0 && *user == residents[0] {
                // A resident may not order for someone else.
                requests.push((
                    token.clone(),
                    new_key(),
                    json!({"reward_id": pen, "user_id": residents[1]}),
                    "forbidden",
                ));
                requests.push((token.clone(), new_key(), json!({"reward_id": withdrawn}), "withdrawn"));
            }
        }
        for (_, token) in &c.residents[6..8] {
            requests.push((token.clone(), new_key(), json!({"reward_id": calendar}), "calendar"));
        }
        requests.push((
            c.staff.clone(),
            new_key(),
            json!({"reward_id": pen, "user_id": residents[8]}),
            "for resident 8",
        ));
    }
    let key = new_key();
    let twice = json!({"reward_id": pen, "quantity": 1});
    requests.push((c.residents[8].1.clone(), key.clone(), twice.clone(), "twice"));
    requests.push((c.residents[8].1.clone(), key, twice, "twice"));

    let before = group_counts(app).await;
    let path = c.path("/redemptions");
    let responses =
        join_all(requests.iter().map(|(token, key, body, _)| post_with_key(app, &path, token, key, body.clone())))
            .await;
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let mut refused: HashMap<(&str, String), usize> = HashMap::new();
    for (&(_, ref key, _, what), response) in requests.iter().zip(responses) {
        if response.status() == StatusCode::CREATED {
            let answer = json_of(response).await;
            if let Some(first) = answers.insert(key.clone(), answer.clone()) {
                assert_eq!(first, answer, "both answers of one key are the same");
            } else {
                *placed.entry(what).or_default() += 1;
            }
        } else {
            let problem = json_of(response).await;
            *refused.entry((what, problem["code"].as_str().unwrap().to_owned())).or_default() += 1;
        }
    }
    // Every resident of 0 to 5 can pay for two soaps whatever else they bought, so the ten soaps
    // sell out; pens are refused only for want of points.
    assert_eq!(placed["soap"], 10, "{placed:?} {refused:?}");
    assert_eq!(stock(app, &c, &soap).await, 0);
    for (what, code) in refused.keys() {
        let expected: &[&str] = match *what {
            "soap" => &["out_of_stock", "insufficient_points"],
            "pen" | "for resident 8" => &["insufficient_points"],
            "calendar" => &["limit_reached"],
            "forbidden" => &["forbidden"],
            "withdrawn" => &["reward_unavailable"],
            _ => &["idempotency_in_progress"],
        };
        assert!(expected.contains(&code.as_str()), "{what}: {code}");
    }
    assert_eq!((placed["calendar"], placed["for resident 8"], placed["twice"]), (2, 6, 1), "{placed:?} {refused:?}");
    assert!(!placed.contains_key("forbidden") && !placed.contains_key("withdrawn"));
    let mut held = 0;
    for (n, user) in residents.iter().enumerate() {
        let account = account(app, &c, user).await;
        let start = [60, 60, 60, 60, 60, 60, 10, 10, 70][n];
        assert_eq!(account["balance"].as_i64().unwrap() + account["held"].as_i64().unwrap(), start, "resident {n}");
        held += account["held"].as_i64().unwrap();
    }
    let ordered: i64 = answers.values().map(|answer| answer["points"].as_i64().unwrap()).sum();
    assert_eq!(held, ordered, "what is held is what the answers say was ordered");
    check_invariants(app).await;

    // Each answer is the order as stored, with its pickup code for whoever placed it, and is what a retry gets back.
    for (token, key, body, _) in &requests {
        let Some(answer) = answers.get(key) else { continue };
        let id = answer["id"].as_str().unwrap();
        let stored = json_of(app.get(&c.path(&format!("/redemptions/{id}")), token).await).await;
        assert_eq!(&stored, answer);
        assert_eq!(answer["pickup_code"].as_str().map(str::len), Some(8));
        let retry = expect_status(post_with_key(app, &path, token, key, body.clone()).await, StatusCode::CREATED).await;
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(&json_of(retry).await, answer);
    }
    // Codes are unique within the community.
    let mut codes: Vec<&str> = answers.values().map(|answer| answer["pickup_code"].as_str().unwrap()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), answers.len());

    // Every order staff placed is in the audit log once, naming itself (residents' own are not recorded).
    let recorded = recorded_targets(app, &c.auditor, "order").await;
    let mut written: Vec<&str> = answers
        .values()
        .filter(|answer| !residents.iter().any(|resident| answer["ordered_by"] == *resident))
        .map(|answer| answer["id"].as_str().unwrap())
        .collect();
    written.sort_unstable();
    assert_eq!(recorded, written);

    let after = group_counts(app).await;
    let [groups, grouped, failed] = [0, 1, 2].map(|i| after[i] - before[i]);
    assert!(grouped > groups, "concurrent orders shared group writes: {grouped} orders in {groups} writes");
    assert_eq!(failed, 0, "no group write failed, so none of its orders had to run again alone");
}

/// A group takes each order's points from its resident's lots soonest expiry first and lasting
/// points last, as the single path does, reading more of them as it needs them (4 lots, then
/// 32 more at a time), and leaves at most one lot partly used. The chain it writes verifies,
/// and an order it wrote cancels as any other.
async fn grouped_orders_take_the_soonest_expiring_points_first(app: &TestApp) {
    let c = community(app, "临期先用", 2).await;
    let residents: Vec<&str> = c.residents.iter().map(|(user, _)| user.as_str()).collect();
    // 40 lots of 10 points for each resident: expiries in a shuffled order of days (three of
    // them shared by two lots), one lot in five lasting.
    for i in 0..40 {
        let policy =
            if i % 5 == 4 { json!({"policy": "never"}) } else { json!({"policy": "days", "days": (i * 17) % 37 + 1}) };
        let unit = format!("/api/v1/units/{}", c.id);
        expect_status(app.patch(&unit, &c.admin, json!({"expiry_policy": policy})).await, StatusCode::OK).await;
        award(app, &c, &[(residents[0], 10), (residents[1], 10)]).await;
    }
    let big = reward(app, &c, json!({"name": "大米", "cost": 13})).await;
    let small = reward(app, &c, json!({"name": "鸡蛋", "cost": 11})).await;
    // Resident 0 orders 362 of their 400 points, into the lasting lots; resident 1, 260.
    let orders: Vec<(&str, &str)> = (0..30)
        .flat_map(|i| {
            let first = (c.residents[0].1.as_str(), if i % 15 < 8 { big.as_str() } else { small.as_str() });
            let second = (i < 20).then_some((c.residents[1].1.as_str(), big.as_str()));
            std::iter::once(first).chain(second)
        })
        .collect();
    let before = group_counts(app).await;
    let placed =
        join_all(orders.iter().map(|(token, reward_id)| order(app, &c, token, json!({"reward_id": reward_id})))).await;
    let mut ordered: HashMap<String, i64> = HashMap::new();
    let mut first_order = None;
    for response in placed {
        let answer = json_of(expect_status(response, StatusCode::CREATED).await).await;
        *ordered.entry(answer["user_id"].as_str().unwrap().to_owned()).or_default() +=
            answer["points"].as_i64().unwrap();
        first_order.get_or_insert(answer);
    }
    assert_eq!((ordered[residents[0]], ordered[residents[1]]), (362, 260));
    let after = group_counts(app).await;
    let [groups, grouped, failed] = [0, 1, 2].map(|i| after[i] - before[i]);
    assert!(grouped > groups && failed == 0, "{grouped} orders in {groups} group writes, {failed} failed");

    for user in &residents[..2] {
        let lots = lots_of(app, &c, user).await;
        assert_eq!(lots.len(), 40);
        let taken: i64 = lots.iter().map(|(_, amount, remaining)| amount - remaining).sum();
        assert_eq!(taken, ordered[*user], "resident {user}: the lots gave what the orders hold");
        let partly_used = lots.iter().filter(|(_, amount, remaining)| (1..*amount).contains(remaining)).count();
        assert!(partly_used <= 1, "resident {user}: {partly_used} lots partly used");
        // Lasting points (no expiry) are taken last.
        let expiry = |lot: &(Option<chrono::NaiveDateTime>, i64, i64)| (lot.0.is_none(), lot.0);
        let last_taken = lots.iter().filter(|(_, amount, remaining)| remaining < amount).map(expiry).max();
        let first_left = lots.iter().filter(|(_, _, remaining)| *remaining > 0).map(expiry).min();
        assert!(last_taken <= first_left, "resident {user}: a lot was used before one expiring sooner");
    }
    let verified = json_of(app.get(&c.path("/ledger/verify"), &c.auditor).await).await;
    assert_eq!((verified["ok"].clone(), verified["first_bad_sequence"].clone()), (json!(true), Value::Null));

    // A grouped order cancels as any other: its points go back to the lots they came from.
    let cancelled = first_order.unwrap();
    let resident = cancelled["user_id"].as_str().unwrap();
    let token = &c.residents.iter().find(|(user, _)| user == resident).unwrap().1;
    let cancel = c.path(&format!("/redemptions/{}/cancellation", cancelled["id"].as_str().unwrap()));
    expect_status(app.request(Method::POST, &cancel, Some(token), None).await, StatusCode::OK).await;
    let points = cancelled["points"].as_i64().unwrap();
    assert_eq!(balance(app, &c, resident).await, 400 - ordered[resident] + points);
    check_invariants(app).await;
}

/// (expiry, amount, remaining) of each lot of a resident, straight from the database.
async fn lots_of(app: &TestApp, c: &Community, user_id: &str) -> Vec<(Option<chrono::NaiveDateTime>, i64, i64)> {
    let (db, community_id, user_id) = (app.database(), c.id.clone(), user_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = db.blocking_connection().unwrap();
        lots::table
            .inner_join(accounts::table)
            .filter(accounts::community_id.eq(community_id))
            .filter(accounts::user_id.eq(user_id))
            .select((lots::expires_at, lots::amount, lots::remaining))
            .load(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

/// Group writes of orders, the orders they wrote and the group writes that failed, from `/metrics`.
async fn group_counts(app: &TestApp) -> [u64; 3] {
    counters(
        app,
        [
            "jifen_redemptions_order_groups_total",
            "jifen_redemptions_orders_grouped_total",
            "jifen_redemptions_order_groups_failed_total",
        ],
    )
    .await
}
