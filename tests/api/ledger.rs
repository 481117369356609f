use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use jifen::clock::Clock;

use crate::both_backends;
use crate::helpers::{TestApp, counters, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{
    Community, award, balance, check_invariants, community, community_in_street, deduct_response, head_sequence,
    new_key, post_with_key, recorded_targets, reverse_response,
};

both_backends!(
    awards_and_deductions_move_points_between_accounts,
    residents_see_only_their_own_points,
    only_active_residents_of_the_community_receive_points,
    bad_input_is_refused_and_writes_nothing,
    idempotency_keys_replay_and_protect,
    parallel_deductions_never_overdraw,
    a_debit_takes_from_as_many_lots_as_it_needs,
    parallel_requests_with_one_key_have_one_effect,
    writes_batched_together_succeed_and_fail_alone,
    awards_written_together_are_each_checked_answered_stored_and_recorded,
    a_transaction_is_reversed_at_most_once,
    reversals_take_back_the_same_points_first,
    the_ledger_is_append_only_and_tampering_is_found,
    roles_and_communities_bound_the_ledger,
);

fn user(resident: &(String, String)) -> &str {
    &resident.0
}

/// A debit reads the resident's open lots a page at a time; one that needs several pages
/// of them takes from each, and what is left still matches the balance.
async fn a_debit_takes_from_as_many_lots_as_it_needs(app: &TestApp) {
    let c = community(app, "多批", 1).await;
    let a = user(&c.residents[0]);
    for _ in 0..70 {
        award(app, &c, &[(a, 1)]).await;
    }
    let deducted = json_of(expect_status(deduct_response(app, &c, a, 69).await, StatusCode::CREATED).await).await;
    assert_eq!(deducted["postings"][0]["amount"], -69);
    assert_eq!(balance(app, &c, a).await, 1);
    expect_problem(deduct_response(app, &c, a, 2).await, StatusCode::CONFLICT, "insufficient_points").await;
    expect_status(deduct_response(app, &c, a, 1).await, StatusCode::CREATED).await;
    assert_eq!(balance(app, &c, a).await, 0);
    check_invariants(app).await;
}

async fn awards_and_deductions_move_points_between_accounts(app: &TestApp) {
    let c = community(app, "账", 2).await;
    let (a, b) = (user(&c.residents[0]), user(&c.residents[1]));
    let awarded = award(app, &c, &[(a, 30), (b, 20)]).await;
    assert_eq!(awarded["kind"], "award");
    assert_eq!(awarded["sequence"], 1);
    assert_eq!(awarded["rule_code"], "volunteering");
    let postings = awarded["postings"].as_array().unwrap();
    assert_eq!(postings.len(), 3);
    assert_eq!(postings[0]["account_kind"], "issuance");
    assert_eq!(postings[0]["amount"], -50);
    assert_eq!(postings.iter().map(|p| p["amount"].as_i64().unwrap()).sum::<i64>(), 0);

    let deducted = json_of(expect_status(deduct_response(app, &c, a, 12).await, StatusCode::CREATED).await).await;
    assert_eq!(deducted["kind"], "deduction");
    assert_eq!(deducted["sequence"], 2);
    assert_eq!(deducted["previous_hash"], awarded["hash"]);
    assert_eq!(balance(app, &c, a).await, 18);
    assert_eq!(balance(app, &c, b).await, 20);
    expect_problem(deduct_response(app, &c, b, 21).await, StatusCode::CONFLICT, "insufficient_points").await;

    let account = json_of(app.get(&c.path(&format!("/accounts/{a}")), &c.staff).await).await;
    assert_eq!(account["lifetime_earned"], 30);
    assert_eq!(account["lifetime_spent"], 0);
    assert_eq!(account["held"], 0);
    assert_eq!(account["expiring"], json!([]));

    let fetched = json_of(
        expect_status(
            app.get(&c.path(&format!("/transactions/{}", awarded["id"].as_str().unwrap())), &c.auditor).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(fetched, awarded);
    let page = json_of(app.get(&c.path("/transactions?limit=1"), &c.staff).await).await;
    assert_eq!(page["items"][0]["id"], deducted["id"], "newest first");
    let older = json_of(
        app.get(&c.path(&format!("/transactions?limit=1&cursor={}", page["next_cursor"].as_str().unwrap())), &c.staff)
            .await,
    )
    .await;
    assert_eq!(older["items"][0]["id"], awarded["id"]);
    assert_eq!(older["next_cursor"], Value::Null);
    let deductions = json_of(app.get(&c.path("/transactions?kind=deduction"), &c.staff).await).await;
    assert_eq!(deductions["items"].as_array().unwrap().len(), 1);
    let of_b = json_of(app.get(&c.path(&format!("/transactions?user_id={b}")), &c.staff).await).await;
    assert_eq!(of_b["items"].as_array().unwrap().len(), 1);
    check_invariants(app).await;
}

async fn residents_see_only_their_own_points(app: &TestApp) {
    let c = community(app, "私", 2).await;
    let ((a, a_token), (b, _)) = (&c.residents[0], &c.residents[1]);
    let awarded = award(app, &c, &[(a, 10), (b, 7)]).await;
    award(app, &c, &[(b, 3)]).await;

    let mine = json_of(expect_status(app.get(&c.path("/accounts/me"), a_token).await, StatusCode::OK).await).await;
    assert_eq!(mine["balance"], 10);
    assert_eq!(mine["user_id"], a.as_str());
    expect_problem(app.get(&c.path(&format!("/accounts/{b}")), a_token).await, StatusCode::NOT_FOUND, "not_found")
        .await;

    let history = json_of(app.get(&c.path("/transactions"), a_token).await).await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the award that touched them");
    let postings = items[0]["postings"].as_array().unwrap();
    assert_eq!(postings.len(), 1, "only their own posting: not the others', nor the issuance total that reveals them");
    assert_eq!(postings[0]["user_id"], a.as_str());
    expect_problem(
        app.get(&c.path(&format!("/transactions?user_id={b}")), a_token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let b_only = json_of(app.get(&c.path("/transactions?kind=award"), &c.staff).await).await["items"][0]["id"].clone();
    expect_problem(
        app.get(&c.path(&format!("/transactions/{}", b_only.as_str().unwrap())), a_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_status(
        app.get(&c.path(&format!("/transactions/{}", awarded["id"].as_str().unwrap())), a_token).await,
        StatusCode::OK,
    )
    .await;
    // Residents write nothing and verify nothing.
    let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 5}]});
    expect_problem(
        post_with_key(app, &c.path("/awards"), a_token, &new_key(), body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(app.get(&c.path("/ledger/verify"), a_token).await, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn only_active_residents_of_the_community_receive_points(app: &TestApp) {
    let c = community(app, "活", 1).await;
    let other = community(app, "别", 1).await;
    let active = user(&c.residents[0]);
    // A pending resident (registered, not yet approved) and a suspended one.
    let code = json_of(app.get(&format!("/api/v1/units/{}", c.id), &c.staff).await).await["join_code"].clone();
    let pending = json_of(expect_status(app.request(Method::POST, "/api/v1/auth/register", None, Some(json!({"join_code": code, "username": "pending.one", "password": "a good password", "display_name": "x"}))).await, StatusCode::CREATED).await).await;
    let pending_id = pending["id"].as_str().unwrap();
    let suspended = app.add_member(&c.staff, &c.id, "suspended.one", &["resident"]).await;
    let suspended_id = suspended["user"]["id"].as_str().unwrap();
    expect_status(
        app.patch(&format!("/api/v1/units/{}/members/{suspended_id}", c.id), &c.staff, json!({"status": "suspended"}))
            .await,
        StatusCode::OK,
    )
    .await;

    let before = head_sequence(app, &c).await;
    let other_resident = user(&other.residents[0]).to_owned();
    let unknown = uuid::Uuid::now_v7().to_string();
    let staff_id = json_of(app.get("/api/v1/me", &c.admin).await).await["id"].as_str().unwrap().to_owned();
    for outsider in [pending_id, suspended_id, other_resident.as_str(), unknown.as_str(), staff_id.as_str()] {
        let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": active, "points": 5}, {"user_id": outsider, "points": 5}]});
        expect_problem(
            post_with_key(app, &c.path("/awards"), &c.staff, &new_key(), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "resident_not_active",
        )
        .await;
    }
    assert_eq!(head_sequence(app, &c).await, before, "nothing written");
    assert_eq!(balance(app, &c, active).await, 0);

    // Once approved, the pending resident gets an account and can receive points.
    expect_status(
        app.patch(&format!("/api/v1/units/{}/members/{pending_id}", c.id), &c.staff, json!({"status": "active"})).await,
        StatusCode::OK,
    )
    .await;
    award(app, &c, &[(pending_id, 5)]).await;
    assert_eq!(balance(app, &c, pending_id).await, 5);
    check_invariants(app).await;
}

async fn bad_input_is_refused_and_writes_nothing(app: &TestApp) {
    let c = community(app, "错账", 1).await;
    let a = user(&c.residents[0]).to_owned();
    award(app, &c, &[(&a, 50)]).await;
    let before = head_sequence(app, &c).await;
    let awards = c.path("/awards");
    let line =
        |points: Value| json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": points}]});
    for points in [json!(0), json!(-5), json!(1_000_001)] {
        expect_problem(
            post_with_key(app, &awards, &c.staff, &new_key(), line(points)).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
    }
    for points in [json!(1.5), json!("10"), json!(1e20)] {
        expect_problem(
            post_with_key(app, &awards, &c.staff, &new_key(), line(points)).await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
    }
    for body in [
        json!({"rule_code": "volunteering", "memo": "x", "awards": []}),
        json!({"rule_code": "volunteering", "memo": "   ", "awards": [{"user_id": a, "points": 1}]}),
        json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 1}, {"user_id": a, "points": 2}]}),
    ] {
        expect_problem(
            post_with_key(app, &awards, &c.staff, &new_key(), body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
    }
    let unknown_field =
        json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 1}], "bonus": 100});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), unknown_field).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    let not_a_user = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": "li.hua", "points": 1}]});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &new_key(), not_a_user).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    // The key is required and must be sane.
    expect_problem(
        app.post(&awards, &c.staff, line(json!(5))).await,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, &"k".repeat(256), line(json!(5))).await,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    )
    .await;
    expect_problem(
        post_with_key(app, &awards, &c.staff, "has space", line(json!(5))).await,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    )
    .await;
    // Deductions and reversals likewise.
    for points in [0, -1, 2_000_000] {
        expect_problem(deduct_response(app, &c, &a, points).await, StatusCode::BAD_REQUEST, "validation_failed").await;
    }
    expect_problem(
        reverse_response(app, &c, &uuid::Uuid::now_v7().to_string()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(head_sequence(app, &c).await, before, "nothing was written");
    assert_eq!(balance(app, &c, &a).await, 50);
    check_invariants(app).await;
}

async fn idempotency_keys_replay_and_protect(app: &TestApp) {
    let c = community(app, "幂等", 1).await;
    let a = user(&c.residents[0]).to_owned();
    let awards = c.path("/awards");
    let body = json!({"rule_code": "volunteering", "memo": "清理楼道", "awards": [{"user_id": a, "points": 10}]});
    let key = new_key();

    let first =
        expect_status(post_with_key(app, &awards, &c.staff, &key, body.clone()).await, StatusCode::CREATED).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()["location"].clone();
    let first = first.text().await.unwrap();
    let again =
        expect_status(post_with_key(app, &awards, &c.staff, &key, body.clone()).await, StatusCode::CREATED).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.text().await.unwrap(), first, "the same answer, byte for byte");
    assert_eq!(balance(app, &c, &a).await, 10, "awarded once");

    // The same key for a different request is refused.
    let different = json!({"rule_code": "volunteering", "memo": "清理楼道", "awards": [{"user_id": a, "points": 11}]});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &key, different).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    // Keys belong to their user: another staff member's identical key is a new request.
    let (_, other_staff) = app.member_with_token(&c.admin, &c.id, "second.staff", &["staff"]).await;
    expect_status(post_with_key(app, &awards, &other_staff, &key, body.clone()).await, StatusCode::CREATED).await;
    assert_eq!(balance(app, &c, &a).await, 20);

    // A request refused by validation does not use up its key.
    let fresh = new_key();
    let invalid = json!({"rule_code": "volunteering", "memo": "清理楼道", "awards": [{"user_id": a, "points": 0}]});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &fresh, invalid).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    expect_status(post_with_key(app, &awards, &c.staff, &fresh, body.clone()).await, StatusCode::CREATED).await;

    // So does one refused once it ran for something other than the state of things (422).
    let pending_key = new_key();
    let nobody =
        json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": uuid::Uuid::now_v7(), "points": 1}]});
    expect_problem(
        post_with_key(app, &awards, &c.staff, &pending_key, nobody).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_not_active",
    )
    .await;
    let corrected = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 1}]});
    expect_status(post_with_key(app, &awards, &c.staff, &pending_key, corrected).await, StatusCode::CREATED).await;
    // And one refused for the caller's rights: once a suspended staff member is back, their key is unused.
    let (returning_id, returning) = app.member_with_token(&c.admin, &c.id, "returning.staff", &["staff"]).await;
    let membership = format!("/api/v1/units/{}/members/{returning_id}", c.id);
    expect_status(app.patch(&membership, &c.admin, json!({"status": "suspended"})).await, StatusCode::OK).await;
    let returning_key = new_key();
    let refused = post_with_key(app, &awards, &returning, &returning_key, body.clone()).await;
    expect_problem(refused, StatusCode::NOT_FOUND, "not_found").await;
    expect_status(app.patch(&membership, &c.admin, json!({"status": "active"})).await, StatusCode::OK).await;
    let accepted = post_with_key(app, &awards, &returning, &returning_key, body.clone()).await;
    assert!(accepted.headers().get("idempotent-replayed").is_none());
    expect_status(accepted, StatusCode::CREATED).await;

    // A refusal for the state of things (409) is the answer: replayed, even after a top-up.
    let deduction = json!({"user_id": a, "points": 1000, "rule_code": "littering", "memo": "x"});
    let refused_key = new_key();
    expect_problem(
        post_with_key(app, &c.path("/deductions"), &c.staff, &refused_key, deduction.clone()).await,
        StatusCode::CONFLICT,
        "insufficient_points",
    )
    .await;
    award(app, &c, &[(&a, 2000)]).await;
    let replayed = post_with_key(app, &c.path("/deductions"), &c.staff, &refused_key, deduction).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    expect_problem(replayed, StatusCode::CONFLICT, "insufficient_points").await;
    check_invariants(app).await;

    // Records are kept 24 hours; after that the maintenance task purges them and the key is new again.
    let in_a_day = (app.clock.now() + chrono::Duration::hours(24) + chrono::Duration::seconds(1)).to_rfc3339();
    let db = app.database();
    let now = chrono::DateTime::parse_from_rfc3339(&in_a_day).unwrap().with_timezone(&chrono::Utc);
    let report =
        tokio::task::spawn_blocking(move || jifen::maintenance::run_once(&db, now)).await.unwrap().unwrap().unwrap();
    assert!(report.idempotency_records_purged >= 5, "{report:?}");
    app.clock.set(now);
    let staff = app.login("幂等.staff", crate::helpers::PASSWORD).await;
    let fresh_effect = post_with_key(app, &awards, &staff, &key, body).await;
    assert!(fresh_effect.headers().get("idempotent-replayed").is_none());
    expect_status(fresh_effect, StatusCode::CREATED).await;
}

async fn parallel_deductions_never_overdraw(app: &TestApp) {
    let c = community(app, "并发扣", 1).await;
    let a = user(&c.residents[0]).to_owned();
    award(app, &c, &[(&a, 100)]).await;
    let responses = join_all((0..50).map(|_| deduct_response(app, &c, &a, 30))).await;
    let mut succeeded = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => succeeded += 1,
            _ => {
                expect_problem(response, StatusCode::CONFLICT, "insufficient_points").await;
            }
        }
    }
    assert_eq!(succeeded, 3);
    assert_eq!(balance(app, &c, &a).await, 10);
    assert_eq!(head_sequence(app, &c).await, 4);
    check_invariants(app).await;
}

async fn parallel_requests_with_one_key_have_one_effect(app: &TestApp) {
    let c = community(app, "并发键", 1).await;
    let a = user(&c.residents[0]).to_owned();
    let key = new_key();
    let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 7}]});
    let path = c.path("/awards");
    let responses = join_all((0..20).map(|_| post_with_key(app, &path, &c.staff, &key, body.clone()))).await;
    let mut bodies = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::CREATED => bodies.push(response.text().await.unwrap()),
            _ => {
                expect_problem(response, StatusCode::CONFLICT, "idempotency_in_progress").await;
            }
        }
    }
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every success carries the same body");
    assert_eq!(balance(app, &c, &a).await, 7, "one effect");
    assert_eq!(head_sequence(app, &c).await, 1);
    check_invariants(app).await;
}

/// Concurrent writes are committed in shared transactions (group commit). Each must
/// still be answered for itself: refusals inside a batch (not enough points, an
/// outsider among the lines) roll back only their own writes, and every success is
/// in the ledger exactly once, in a gap-free chain.
async fn writes_batched_together_succeed_and_fail_alone(app: &TestApp) {
    let c = community(app, "成批", 2).await;
    let other = community(app, "另批", 1).await;
    let (a, b) = (user(&c.residents[0]).to_owned(), user(&c.residents[1]).to_owned());
    let outsider = user(&other.residents[0]).to_owned();
    award(app, &c, &[(&a, 100)]).await;
    let before = write_counts(app).await;

    let (here, there) = (c.path("/awards"), other.path("/awards"));
    let post = |path: &str, token: &str, body: Value| {
        let (path, token) = (path.to_owned(), token.to_owned());
        async move { post_with_key(app, &path, &token, &new_key(), body).await }
    };
    let awards = (0..40).map(|i| {
        let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": b, "points": i + 1}]});
        post(&here, &c.staff, body)
    });
    let overdraws = (0..20).map(|_| deduct_response(app, &c, &a, 30));
    let with_outsider = (0..20).map(|_| {
        let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": b, "points": 1000}, {"user_id": outsider, "points": 1}]});
        post(&here, &c.staff, body)
    });
    let elsewhere = (0..20).map(|_| {
        let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": outsider, "points": 2}]});
        post(&there, &other.staff, body)
    });
    let (awards, overdraws, with_outsider, elsewhere) =
        futures::join!(join_all(awards), join_all(overdraws), join_all(with_outsider), join_all(elsewhere));

    for response in awards.into_iter().chain(elsewhere) {
        expect_status(response, StatusCode::CREATED).await;
    }
    let mut deducted = 0;
    for response in overdraws {
        if response.status() == StatusCode::CREATED {
            deducted += 1;
        } else {
            expect_problem(response, StatusCode::CONFLICT, "insufficient_points").await;
        }
    }
    for response in with_outsider {
        expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "resident_not_active").await;
    }
    assert_eq!(deducted, 3);
    assert_eq!(balance(app, &c, &a).await, 10);
    assert_eq!(balance(app, &c, &b).await, (1..=40).sum::<i64>(), "every award once, no refused line");
    assert_eq!(balance(app, &other, &outsider).await, 40);
    assert_eq!(head_sequence(app, &c).await, 1 + 40 + 3);
    assert_eq!(head_sequence(app, &other).await, 20);
    check_invariants(app).await;

    let after = write_counts(app).await;
    let [batches, writes, groups, grouped, failed] = [0, 1, 2, 3, 4].map(|i| after[i] - before[i]);
    assert_eq!(failed, 0, "no group write failed, so none of its awards had to run again alone");
    // A group write is one write of the group commit for all the awards it wrote.
    let requests = writes - groups + grouped;
    assert!(requests >= 100, "every request wrote through the group commit: {requests}");
    assert!(batches < writes, "concurrent writes shared transactions: {writes} writes in {batches} batches");
    assert!(grouped > groups, "concurrent awards shared group writes: {grouped} awards in {groups} writes");

    // Groups span communities: each award's record belongs to its own community, whose street
    // auditor sees it (records are shown by the path of their unit).
    let path = format!("/api/v1/audit-log?action=award&unit={}&limit=200", other.id);
    let records = json_of(expect_status(app.get(&path, &other.auditor).await, StatusCode::OK).await).await;
    let records = records["items"].as_array().unwrap();
    assert_eq!(records.len(), 20, "{records:?}");
    assert!(records.iter().all(|record| record["unit_id"] == other.id && record["outcome"] == "succeeded"));
}

/// Awards that arrive together are written together (`ledger::batch`); each
/// is still checked, answered, stored for replay and recorded for itself. Those a group cannot
/// vouch for (a rule with a cap, points out of range, a key sent twice, a resident without an
/// account yet) run alone and get the usual answers.
async fn awards_written_together_are_each_checked_answered_stored_and_recorded(app: &TestApp) {
    let c = community(app, "成组", 4).await;
    let residents: Vec<String> = c.residents.iter().map(|resident| user(resident).to_owned()).collect();
    // Resident 3's account is opened by the first award that reaches them. The community's id
    // spelt in capitals is the same community, and the award's record is filed under it.
    let first = json!({"rule_code": "volunteering", "memo": "首次", "awards": [{"user_id": residents[0], "points": 1}, {"user_id": residents[1], "points": 1}, {"user_id": residents[2], "points": 1}]});
    let capitals = c.path("/awards").replace(&c.id, &c.id.to_uppercase());
    expect_status(post_with_key(app, &capitals, &c.staff, &new_key(), first).await, StatusCode::CREATED).await;
    let capped = json!({"code": "reading", "name": "读书会", "category": "culture", "direction": "earn", "default_points": 5, "min_points": 1, "max_points": 50, "daily_cap": 2});
    expect_status(app.post(&c.path("/rules"), &c.staff, capped).await, StatusCode::CREATED).await;

    let mut expected = [1, 1, 1, 0];
    let mut requests = Vec::new();
    for i in 0..60 {
        let (first, second) = (i % 4, (i + 1) % 4);
        let mut lines = vec![json!({"user_id": residents[first], "points": i + 1})];
        expected[first] += i as i64 + 1;
        if i % 3 == 0 {
            lines.push(json!({"user_id": residents[second], "points": 1}));
            expected[second] += 1;
        }
        requests.push((new_key(), json!({"rule_code": "volunteering", "memo": format!("第{i}次"), "awards": lines})));
    }
    let reading = |points: i64| json!({"rule_code": "reading", "memo": "读书", "awards": [{"user_id": residents[0], "points": points}]});
    requests.extend((0..10).map(|_| (new_key(), reading(5))));
    expected[0] += 2 * 5;
    requests.extend((0..5).map(|_| (new_key(), reading(51))));
    for _ in 0..5 {
        let key = new_key();
        let body =
            json!({"rule_code": "volunteering", "memo": "重发", "awards": [{"user_id": residents[1], "points": 100}]});
        requests.extend([(key.clone(), body.clone()), (key, body)]);
    }
    expected[1] += 5 * 100;

    let path = c.path("/awards");
    let responses =
        join_all(requests.iter().map(|(key, body)| post_with_key(app, &path, &c.staff, key, body.clone()))).await;
    let mut answers: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let (mut capped, mut out_of_range) = (0, 0);
    for ((key, body), response) in requests.iter().zip(responses) {
        match (response.status(), body["awards"][0]["points"].as_i64()) {
            (StatusCode::CREATED, _) => {
                let text = response.text().await.unwrap();
                if let Some(first) = answers.insert(key.clone(), text.clone()) {
                    assert_eq!(first, text, "both answers of one key are the same");
                }
            }
            (StatusCode::CONFLICT, _) if body["memo"] == "重发" => {
                expect_problem(response, StatusCode::CONFLICT, "idempotency_in_progress").await;
            }
            (_, Some(51)) => {
                expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "points_out_of_range").await;
                out_of_range += 1;
            }
            _ => {
                expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "rule_cap_exceeded").await;
                capped += 1;
            }
        }
    }
    assert_eq!((answers.len(), capped, out_of_range), (60 + 2 + 5, 8, 5));
    for (n, resident) in residents.iter().enumerate() {
        assert_eq!(balance(app, &c, resident).await, expected[n], "resident {n}");
    }
    assert_eq!(head_sequence(app, &c).await, 1 + answers.len() as i64, "one transaction per award, chain intact");
    check_invariants(app).await;

    // Each answer is the transaction as stored, and is what a retry gets back.
    for (key, body) in &requests {
        let Some(first) = answers.get(key) else { continue };
        let transaction: Value = serde_json::from_str(first).unwrap();
        let id = transaction["id"].as_str().unwrap();
        let stored = json_of(
            expect_status(app.get(&c.path(&format!("/transactions/{id}")), &c.staff).await, StatusCode::OK).await,
        )
        .await;
        assert_eq!(stored["hash"], transaction["hash"]);
        assert_eq!(stored["postings"], transaction["postings"]);
        let retry =
            expect_status(post_with_key(app, &path, &c.staff, key, body.clone()).await, StatusCode::CREATED).await;
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(&retry.text().await.unwrap(), first);
    }

    // Every award is in the audit log once, naming its transaction.
    let recorded = recorded_targets(app, &c.auditor, "award").await;
    let mut written: Vec<String> = answers
        .values()
        .map(|text| serde_json::from_str::<Value>(text).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    written.sort_unstable();
    assert_eq!(recorded.len(), 1 + written.len(), "the first award and each of these");
    assert!(written.iter().all(|id| recorded.binary_search(id).is_ok()));
}

/// Batches and writes of the group commit, then group writes of awards, the awards they
/// wrote and the group writes that failed, from `/metrics`.
async fn write_counts(app: &TestApp) -> [u64; 5] {
    counters(
        app,
        [
            "jifen_db_write_batches_total",
            "jifen_db_writes_total",
            "jifen_ledger_award_groups_total",
            "jifen_ledger_awards_grouped_total",
            "jifen_ledger_award_groups_failed_total",
        ],
    )
    .await
}

async fn a_transaction_is_reversed_at_most_once(app: &TestApp) {
    let c = community(app, "冲正", 1).await;
    let a = user(&c.residents[0]).to_owned();
    let awarded = award(app, &c, &[(&a, 40)]).await;
    let id = awarded["id"].as_str().unwrap();
    let responses = join_all((0..10).map(|_| reverse_response(app, &c, id))).await;
    let mut reversals = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::CREATED => reversals.push(json_of(response).await),
            _ => {
                expect_problem(response, StatusCode::CONFLICT, "already_reversed").await;
            }
        }
    }
    assert_eq!(reversals.len(), 1);
    let reversal = &reversals[0];
    assert_eq!(reversal["kind"], "reversal");
    assert_eq!(reversal["reverses_id"], id);
    assert_eq!(balance(app, &c, &a).await, 0);
    let original = json_of(app.get(&c.path(&format!("/transactions/{id}")), &c.staff).await).await;
    assert_eq!(original["reversed_by"], reversal["id"]);
    // A reversal is not itself reversible.
    expect_problem(
        reverse_response(app, &c, reversal["id"].as_str().unwrap()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_reversible",
    )
    .await;
    let account = json_of(app.get(&c.path(&format!("/accounts/{a}")), &c.staff).await).await;
    assert_eq!(account["lifetime_earned"], 0, "a reversed award was never earned");
    check_invariants(app).await;
}

async fn reversals_take_back_the_same_points_first(app: &TestApp) {
    let c = community(app, "冲正批", 1).await;
    let a = user(&c.residents[0]).to_owned();
    let first = award(app, &c, &[(&a, 30)]).await;
    award(app, &c, &[(&a, 50)]).await;
    // Spends 40: 30 from the first lot, 10 from the second (same expiry: oldest first).
    let deduction = json_of(expect_status(deduct_response(app, &c, &a, 40).await, StatusCode::CREATED).await).await;
    // Reversing the first award: nothing of it remains, so 30 come from the rest.
    expect_status(reverse_response(app, &c, first["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    assert_eq!(balance(app, &c, &a).await, 10);
    // Reversing the deduction gives 40 back, to the lots they came from.
    expect_status(reverse_response(app, &c, deduction["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    assert_eq!(balance(app, &c, &a).await, 50);
    check_invariants(app).await;

    // An award whose points were spent cannot be taken back beyond the balance.
    let big = award(app, &c, &[(&a, 100)]).await;
    expect_status(deduct_response(app, &c, &a, 140).await, StatusCode::CREATED).await;
    expect_problem(
        reverse_response(app, &c, big["id"].as_str().unwrap()).await,
        StatusCode::CONFLICT,
        "insufficient_points",
    )
    .await;
    assert_eq!(balance(app, &c, &a).await, 10);
    check_invariants(app).await;
}

async fn the_ledger_is_append_only_and_tampering_is_found(app: &TestApp) {
    use diesel::prelude::*;
    use jifen::db::DbConnection;

    let c = community(app, "链", 2).await;
    let (a, b) = (user(&c.residents[0]).to_owned(), user(&c.residents[1]).to_owned());
    award(app, &c, &[(&a, 30), (&b, 30)]).await;
    let second = award(app, &c, &[(&a, 5)]).await;
    expect_status(deduct_response(app, &c, &b, 10).await, StatusCode::CREATED).await;
    expect_status(reverse_response(app, &c, second["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    let verified = json_of(app.get(&c.path("/ledger/verify"), &c.auditor).await).await;
    assert_eq!(
        verified,
        json!({"ok": true, "transactions_checked": 4, "first_bad_sequence": null, "head": verified["head"].clone()})
    );
    assert_eq!(verified["head"]["sequence"], 4);
    let admin_view =
        json_of(expect_status(app.get(&c.path("/ledger/verify"), &c.admin).await, StatusCode::OK).await).await;
    assert_eq!(admin_view, verified);
    expect_problem(app.get(&c.path("/ledger/verify"), &c.staff).await, StatusCode::FORBIDDEN, "forbidden").await;

    let db = app.database();
    let second_id = second["id"].as_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.blocking_connection().unwrap();
        // The database refuses changes to the ledger.
        for statement in [
            format!("UPDATE ledger_postings SET amount = amount + 1 WHERE transaction_id = '{second_id}'"),
            format!("DELETE FROM ledger_postings WHERE transaction_id = '{second_id}'"),
            format!("UPDATE ledger_transactions SET memo = 'changed' WHERE id = '{second_id}'"),
            format!("DELETE FROM ledger_transactions WHERE id = '{second_id}'"),
        ] {
            let refused = diesel::sql_query(&statement).execute(&mut *conn);
            assert!(
                refused.as_ref().is_err_and(|err| err.to_string().contains("append-only")),
                "{statement}: {refused:?}"
            );
        }
        // A rogue DBA turns the protection off and changes one amount of sequence 2.
        let rogue: &[&str] = match &*conn {
            DbConnection::Postgresql(_) => {
                &["ALTER TABLE ledger_postings DISABLE TRIGGER USER", "ALTER TABLE ledger_postings ENABLE TRIGGER USER"]
            }
            DbConnection::Sqlite(_) => &["DROP TRIGGER ledger_postings_no_update", ""],
        };
        diesel::sql_query(rogue[0]).execute(&mut *conn).unwrap();
        diesel::sql_query(format!(
            "UPDATE ledger_postings SET amount = 50 WHERE transaction_id = '{second_id}' AND amount = 5"
        ))
        .execute(&mut *conn)
        .unwrap();
        if !rogue[1].is_empty() {
            diesel::sql_query(rogue[1]).execute(&mut *conn).unwrap();
        }
    })
    .await
    .unwrap();
    let tampered = json_of(app.get(&c.path("/ledger/verify"), &c.auditor).await).await;
    assert_eq!(tampered["ok"], false);
    assert_eq!(tampered["first_bad_sequence"], 2);
    assert_eq!(tampered["transactions_checked"], 1);
}

async fn roles_and_communities_bound_the_ledger(app: &TestApp) {
    let c = community(app, "界甲", 1).await;
    let other = community(app, "界乙", 1).await;
    let a = user(&c.residents[0]).to_owned();
    let awarded = award(app, &c, &[(&a, 10)]).await;
    let tx = awarded["id"].as_str().unwrap();
    // Staff of another community: every ledger endpoint of this one is 404.
    let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": a, "points": 5}]});
    expect_problem(
        post_with_key(app, &c.path("/awards"), &other.staff, &new_key(), body).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for path in [
        c.path("/transactions"),
        c.path(&format!("/transactions/{tx}")),
        c.path(&format!("/accounts/{a}")),
        c.path("/ledger/verify"),
    ] {
        expect_problem(app.get(&path, &other.staff).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    let reversal = post_with_key(
        app,
        &c.path(&format!("/transactions/{tx}/reversal")),
        &other.staff,
        &new_key(),
        json!({"memo": "x"}),
    )
    .await;
    expect_problem(reversal, StatusCode::NOT_FOUND, "not_found").await;
    // This community's transaction does not exist in the other one.
    expect_problem(
        app.get(&other.path(&format!("/transactions/{tx}")), &other.staff).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A street or district id is not a community.
    let street = json_of(app.get("/api/v1/units?kind=street", &c.admin).await).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(
        app.get(&format!("/api/v1/communities/{street}/transactions"), &c.admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Auditors read everything and write nothing.
    expect_status(app.get(&c.path("/transactions"), &c.auditor).await, StatusCode::OK).await;
    expect_problem(deduct_auditor(app, &c, &a).await, StatusCode::FORBIDDEN, "forbidden").await;
    check_invariants(app).await;
}

both_backends!(one_key_sent_to_two_communities_at_once_has_one_effect);

/// Writes of two communities run in two writer lanes on PostgreSQL: the key still has one effect.
async fn one_key_sent_to_two_communities_at_once_has_one_effect(app: &TestApp) {
    let first = community(app, "同键一", 1).await;
    let second = community_in_street(app, "同键二", 1, &first.street_id).await;
    let (_, street_staff) = app.member_with_token(&first.admin, &first.street_id, "同键.staff", &["staff"]).await;
    let rounds = 10;
    for _ in 0..rounds {
        let key = new_key();
        let body = |c: &Community| json!({"rule_code": "volunteering", "memo": "同键", "awards": [{"user_id": user(&c.residents[0]), "points": 1}]});
        let (first_awards, second_awards) = (first.path("/awards"), second.path("/awards"));
        let (a, b) = futures::join!(
            post_with_key(app, &first_awards, &street_staff, &key, body(&first)),
            post_with_key(app, &second_awards, &street_staff, &key, body(&second)),
        );
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY]);
        let refused = if a.status() == StatusCode::CREATED { b } else { a };
        expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    }
    let awarded =
        balance(app, &first, user(&first.residents[0])).await + balance(app, &second, user(&second.residents[0])).await;
    assert_eq!(awarded, rounds, "one point per key");
    assert_eq!(head_sequence(app, &first).await + head_sequence(app, &second).await, rounds);
    check_invariants(app).await;
}

both_backends!(staff_cannot_award_themselves_or_their_household);

async fn staff_cannot_award_themselves_or_their_household(app: &TestApp) {
    let c = community(app, "自奖", 1).await;
    let home = json!({"compound": "煤气小区", "building": "1号楼", "unit": "1单元", "room": "101"});
    let mut ids = Vec::new();
    for (username, roles) in [("staff.lives.here", json!(["staff", "resident"])), ("spouse", json!(["resident"]))] {
        let body = json!({"new_user": {"username": username, "display_name": username, "password": crate::helpers::PASSWORD}, "roles": roles, "household": home});
        ids.push(json_of(expect_status(app.add_member_raw(&c.admin, &c.id, body).await, StatusCode::CREATED).await).await["user"]["id"].clone());
    }
    let staff = app.login("staff.lives.here", crate::helpers::PASSWORD).await;
    for id in &ids {
        let body = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": id, "points": 5}]});
        expect_problem(
            post_with_key(app, &c.path("/awards"), &staff, &new_key(), body).await,
            StatusCode::FORBIDDEN,
            "conflict_of_interest",
        )
        .await;
    }
    // Their neighbour is fine; other staff may award them.
    let neighbour =
        json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": c.residents[0].0, "points": 5}]});
    expect_status(post_with_key(app, &c.path("/awards"), &staff, &new_key(), neighbour).await, StatusCode::CREATED)
        .await;
    let both = json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": ids[0], "points": 5}, {"user_id": ids[1], "points": 5}]});
    expect_status(post_with_key(app, &c.path("/awards"), &c.staff, &new_key(), both).await, StatusCode::CREATED).await;
    check_invariants(app).await;
}

async fn deduct_auditor(app: &TestApp, c: &crate::ledger_helpers::Community, user_id: &str) -> reqwest::Response {
    post_with_key(
        app,
        &c.path("/deductions"),
        &c.auditor,
        &new_key(),
        json!({"user_id": user_id, "points": 1, "rule_code": "littering", "memo": "x"}),
    )
    .await
}

both_backends!(points_expire_oldest_first_at_local_midnight);
both_backends!(a_debit_takes_expiring_points_before_lasting_ones);

async fn run_maintenance(app: &TestApp, at: &str) -> usize {
    let db = app.database();
    let now = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc);
    let report = tokio::task::spawn_blocking(move || jifen::maintenance::run_once(&db, now)).await.unwrap().unwrap();
    report.expect("no other server runs maintenance").expiry_transactions
}

async fn points_expire_oldest_first_at_local_midnight(app: &TestApp) {
    let mut c = community(app, "过期", 1).await;
    let a = c.residents[0].0.clone();
    let a = a.as_str();
    let policy = json!({"expiry_policy": {"policy": "days", "days": 30}});
    let unit = json_of(
        expect_status(app.patch(&format!("/api/v1/units/{}", c.id), &c.admin, policy).await, StatusCode::OK).await,
    )
    .await;
    assert_eq!(unit["expiry_policy"], json!({"policy": "days", "days": 30}));

    // 10:00 on 27 November in Shanghai: expires at the local midnight ending 27 December.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z").unwrap().into());
    award(app, &c, &[(a, 10)]).await;
    // 01:00 on 28 November in Shanghai (still the 27th in UTC): one day later.
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-27T17:00:00Z").unwrap().into());
    c.sign_in_again(app).await;
    award(app, &c, &[(a, 20)]).await;
    // A deduction takes the soonest-expiring points first: all 10 of the first lot, 5 of the second.
    expect_status(deduct_response(app, &c, a, 15).await, StatusCode::CREATED).await;

    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().into());
    c.sign_in_again(app).await;
    let account = json_of(app.get(&c.path("/accounts/me"), &c.residents[0].1).await).await;
    assert_eq!(account["balance"], 15);
    assert_eq!(account["expiring"], json!([{"expires_at": "2026-12-28T16:00:00Z", "points": 15}]));

    // One second before local midnight nothing expires; at midnight the 15 points do.
    assert_eq!(run_maintenance(app, "2026-12-28T15:59:59Z").await, 0);
    assert_eq!(balance(app, &c, a).await, 15);
    assert_eq!(run_maintenance(app, "2026-12-28T16:00:00Z").await, 1);
    assert_eq!(balance(app, &c, a).await, 0);
    assert_eq!(run_maintenance(app, "2026-12-28T16:10:00Z").await, 0, "expiring twice expires nothing");
    let expiries = json_of(app.get(&c.path("/transactions?kind=expiry"), &c.auditor).await).await;
    let expiry = &expiries["items"][0];
    assert_eq!(expiry["actor_id"], Value::Null);
    assert_eq!(expiry["postings"][0]["amount"], -15);
    assert_eq!(expiry["postings"][1]["account_kind"], "expiry");
    assert_eq!(head_sequence(app, &c).await, 4);
    check_invariants(app).await;
}

/// Points that never expire are spent last, however old: the debit reads its first page of
/// lots (4) and then the next, expiring ones first (a NULL expiry sorts first on SQLite and
/// last on PostgreSQL).
async fn a_debit_takes_expiring_points_before_lasting_ones(app: &TestApp) {
    let c = community(app, "先到期", 1).await;
    let a = user(&c.residents[0]);
    for _ in 0..6 {
        award(app, &c, &[(a, 1)]).await;
    }
    let policy = json!({"expiry_policy": {"policy": "days", "days": 7}});
    expect_status(app.patch(&format!("/api/v1/units/{}", c.id), &c.admin, policy).await, StatusCode::OK).await;
    for _ in 0..3 {
        award(app, &c, &[(a, 1)]).await;
    }

    expect_status(deduct_response(app, &c, a, 8).await, StatusCode::CREATED).await;
    let account = json_of(app.get(&c.path("/accounts/me"), &c.residents[0].1).await).await;
    assert_eq!(account["balance"], 1);
    assert_eq!(account["expiring"], json!([]), "the 3 expiring points went first: {account}");
    check_invariants(app).await;
}
