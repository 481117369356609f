use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, json_of};
use crate::ledger_helpers::{
    Community, award, community, community_in_street, deduct_response, new_key, post_with_key, reverse_response,
};

both_backends!(
    residents_are_ranked_by_points_earned,
    leaderboard_periods_follow_the_local_calendar,
    residents_who_opt_out_are_masked_to_other_residents,
    buildings_and_compounds_are_ranked_by_their_residents_points,
    statistics_add_up_to_the_ledger,
    street_statistics_sum_the_communities_below,
);

async fn at(app: &TestApp, c: &mut Community, time: &str) {
    app.clock.set(chrono::DateTime::parse_from_rfc3339(time).unwrap().into());
    c.sign_in_again(app).await;
}

async fn get_ok(app: &TestApp, path: &str, token: &str) -> Value {
    json_of(expect_status(app.get(path, token).await, StatusCode::OK).await).await
}

async fn board(app: &TestApp, c: &Community, token: &str, query: &str) -> Value {
    get_ok(app, &c.path(&format!("/leaderboard{query}")), token).await
}

/// (rank, user id, earned, deducted) of each resident entry.
fn standings(board: &Value) -> Vec<Value> {
    board["residents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| json!([entry["rank"], entry["user_id"], entry["earned"], entry["deducted"]]))
        .collect()
}

fn ids(c: &Community) -> Vec<String> {
    c.residents.iter().map(|(id, _)| id.clone()).collect()
}

async fn residents_are_ranked_by_points_earned(app: &TestApp) {
    let c = community(app, "评比", 4).await;
    let r = ids(&c);
    award(app, &c, &[(&r[0], 40), (&r[1], 30), (&r[2], 30)]).await;
    // A reversed award earns nothing; a deduction is shown apart and takes nothing from what was earned.
    let mistaken = award(app, &c, &[(&r[3], 50)]).await;
    award(app, &c, &[(&r[3], 15)]).await;
    expect_status(reverse_response(app, &c, mistaken["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    expect_status(deduct_response(app, &c, &r[0], 5).await, StatusCode::CREATED).await;

    let seen = board(app, &c, &c.staff, "").await;
    assert_eq!(
        (&seen["period"], &seen["group"], &seen["timezone"], &seen["from"], &seen["to"]),
        (&json!("month"), &json!("resident"), &json!("Asia/Shanghai"), &json!("2026-11-01"), &json!("2026-11-30"))
    );
    // Equal points share a rank, in user id order; the next rank skips.
    let (tie_first, tie_second) = if r[1] < r[2] { (&r[1], &r[2]) } else { (&r[2], &r[1]) };
    let expected = vec![
        json!([1, r[0], 40, 5]),
        json!([2, tie_first, 30, 0]),
        json!([2, tie_second, 30, 0]),
        json!([4, r[3], 15, 0]),
    ];
    assert_eq!(standings(&seen), expected);
    assert_eq!(seen["groups"], json!([]));
    for entry in seen["residents"].as_array().unwrap() {
        let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["deducted", "display_name", "earned", "masked", "rank", "user_id", "you"], "{entry}");
    }
    assert_eq!(standings(&board(app, &c, &c.auditor, "?limit=2").await), expected[..2]);

    // Every member reads it; the caller finds themselves.
    let (own_id, own_token) = &c.residents[3];
    let mine = board(app, &c, own_token, "?limit=200").await;
    assert_eq!(standings(&mine), expected);
    let you: Vec<&Value> = mine["residents"].as_array().unwrap().iter().filter(|e| e["you"] == true).collect();
    assert_eq!((you.len(), &you[0]["user_id"]), (1, &json!(own_id)));

    for query in
        ["?limit=0", "?limit=201", "?period=week", "?group=floor", "?at=2026-13-01", "?at=today", "?colour=red"]
    {
        expect_problem(
            app.get(&c.path(&format!("/leaderboard{query}")), &c.staff).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
    }
    let other = community(app, "外区", 0).await;
    expect_problem(app.get(&c.path("/leaderboard"), &other.staff).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(app.get(&c.path("/leaderboard"), &other.auditor).await, StatusCode::NOT_FOUND, "not_found").await;
}

async fn leaderboard_periods_follow_the_local_calendar(app: &TestApp) {
    let mut c = community(app, "月末", 3).await;
    let r = ids(&c);
    // 00:30 on 1 December in Shanghai, still 30 November in UTC.
    at(app, &mut c, "2026-11-30T16:30:00Z").await;
    award(app, &c, &[(&r[2], 5)]).await;
    // 23:59 on 31 December in Shanghai.
    at(app, &mut c, "2026-12-31T15:59:00Z").await;
    award(app, &c, &[(&r[0], 10)]).await;
    // A minute later it is 2027 there.
    at(app, &mut c, "2026-12-31T16:00:00Z").await;
    award(app, &c, &[(&r[1], 20)]).await;

    let december = vec![json!([1, r[0], 10, 0]), json!([2, r[2], 5, 0])];
    let january = vec![json!([1, r[1], 20, 0])];
    for (query, from, to, expected) in [
        ("?at=2026-11-30", "2026-11-01", "2026-11-30", vec![]),
        ("?period=month&at=2026-12-31", "2026-12-01", "2026-12-31", december.clone()),
        ("", "2027-01-01", "2027-01-31", january.clone()),
        ("?period=quarter&at=2026-10-01", "2026-10-01", "2026-12-31", december.clone()),
        ("?period=quarter", "2027-01-01", "2027-03-31", january.clone()),
        ("?period=year&at=2026-06-01", "2026-01-01", "2026-12-31", december.clone()),
        ("?period=year", "2027-01-01", "2027-12-31", january.clone()),
    ] {
        let seen = board(app, &c, &c.staff, query).await;
        assert_eq!((seen["from"].as_str().unwrap(), seen["to"].as_str().unwrap()), (from, to), "{query}");
        assert_eq!(standings(&seen), expected, "{query}");
    }
}

async fn residents_who_opt_out_are_masked_to_other_residents(app: &TestApp) {
    let c = community(app, "榜", 2).await;
    let ((a, a_token), (b, b_token)) = (c.residents[0].clone(), c.residents[1].clone());
    let me = json_of(
        expect_status(
            app.patch("/api/v1/me", &a_token, json!({"show_on_leaderboard": false, "phone": "13800138000"})).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    assert_eq!(me["show_on_leaderboard"], false);
    assert_eq!(get_ok(app, "/api/v1/me", &a_token).await["show_on_leaderboard"], false);
    assert_eq!(get_ok(app, "/api/v1/me", &b_token).await["show_on_leaderboard"], true, "named by default");
    let household =
        json!({"household": {"compound": "煤气小区", "building": "3号楼", "unit": "2单元", "room": "301室"}});
    expect_status(app.patch(&format!("/api/v1/units/{}/members/{a}", c.id), &c.admin, household).await, StatusCode::OK)
        .await;
    award(app, &c, &[(&a, 20), (&b, 10)]).await;

    let entry = |rank: i64, user_id: Option<&str>, name: &str, masked: bool, you: bool, earned: i64| json!({"rank": rank, "user_id": user_id, "display_name": name, "masked": masked, "you": you, "earned": earned, "deducted": 0});
    let seen_by_b = board(app, &c, &b_token, "").await;
    assert_eq!(
        seen_by_b["residents"],
        json!([entry(1, None, "榜**", true, false, 20), entry(2, Some(&b), "榜.resident1", false, true, 10)])
    );
    let text = seen_by_b.to_string();
    // Each secret is one that cannot turn up by chance inside an id or a date.
    for secret in ["13800138000", "煤气小区", "3号楼", "301室", "phone", "household", a.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let named = json!([
        entry(1, Some(&a), "榜.resident0", false, false, 20),
        entry(2, Some(&b), "榜.resident1", false, false, 10)
    ]);
    assert_eq!(board(app, &c, &c.staff, "").await["residents"], named, "staff see names");
    assert_eq!(board(app, &c, &c.auditor, "").await["residents"], named, "auditors see names");
    assert_eq!(
        board(app, &c, &a_token, "").await["residents"],
        json!([
            entry(1, Some(&a), "榜.resident0", false, true, 20),
            entry(2, Some(&b), "榜.resident1", false, false, 10)
        ]),
        "one's own entry is never masked"
    );

    expect_status(app.patch("/api/v1/me", &a_token, json!({"show_on_leaderboard": true})).await, StatusCode::OK).await;
    assert_eq!(board(app, &c, &b_token, "").await["residents"][0]["display_name"], "榜.resident0");
    expect_problem(
        app.patch("/api/v1/me", &a_token, json!({"show_on_leaderboard": "no"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
}

async fn buildings_and_compounds_are_ranked_by_their_residents_points(app: &TestApp) {
    let c = community(app, "楼栋", 5).await;
    let r = ids(&c);
    for (resident, household) in [
        (&r[0], json!({"compound": "煤气小区", "building": "3号楼"})),
        (&r[1], json!({"compound": "煤气小区", "building": "3号楼"})),
        (&r[2], json!({"compound": "煤气小区", "building": "5号楼"})),
        (&r[4], json!({"compound": "福寓苑", "building": "7号楼"})),
    ] {
        let path = format!("/api/v1/units/{}/members/{resident}", c.id);
        expect_status(app.patch(&path, &c.admin, json!({"household": household})).await, StatusCode::OK).await;
    }
    award(app, &c, &[(&r[0], 10), (&r[1], 20), (&r[2], 30), (&r[3], 5)]).await;
    expect_status(deduct_response(app, &c, &r[3], 2).await, StatusCode::CREATED).await;

    let group = |rank: i64, compound: Value, building: Value, members: i64, earned: i64, deducted: i64| json!({"rank": rank, "compound": compound, "building": building, "members": members, "earned": earned, "deducted": deducted});
    let by_building = board(app, &c, &c.staff, "?group=building").await;
    assert_eq!(by_building["residents"], json!([]));
    assert_eq!(
        by_building["groups"],
        json!([
            group(1, json!("煤气小区"), json!("3号楼"), 2, 30, 0),
            group(1, json!("煤气小区"), json!("5号楼"), 1, 30, 0),
            group(3, Value::Null, Value::Null, 1, 5, 2),
            group(4, json!("福寓苑"), json!("7号楼"), 1, 0, 0),
        ])
    );
    assert_eq!(
        board(app, &c, &c.staff, "?group=compound").await["groups"],
        json!([
            group(1, json!("煤气小区"), Value::Null, 3, 60, 0),
            group(2, Value::Null, Value::Null, 1, 5, 2),
            group(3, json!("福寓苑"), Value::Null, 1, 0, 0),
        ])
    );
    assert_eq!(board(app, &c, &c.staff, "?group=building&limit=1").await["groups"].as_array().unwrap().len(), 1);
    // Residents see only groups of three or more: smaller ones would give away their neighbours' points.
    let for_resident = board(app, &c, &c.residents[0].1, "?group=compound").await;
    assert_eq!(for_resident["groups"], json!([group(1, json!("煤气小区"), Value::Null, 3, 60, 0)]));
    assert_eq!(board(app, &c, &c.residents[0].1, "?group=building").await["groups"], json!([]));
}

fn figures(
    awarded: i64,
    deducted: i64,
    redeemed: i64,
    outstanding: i64,
    active_residents: i64,
    activities: (i64, i64),
    claims: (i64, i64),
) -> Value {
    json!({
        "awarded": awarded, "deducted": deducted, "redeemed": redeemed, "expired": 0, "outstanding": outstanding,
        "active_residents": active_residents, "activities_held": activities.0, "attendance": activities.1,
        "claims_approved": claims.0, "claims_rejected": claims.1,
    })
}

fn bucket(start: &str, end: &str, figures: Value) -> Value {
    let mut bucket = json!({"start": start, "end": end});
    bucket.as_object_mut().unwrap().extend(figures.as_object().unwrap().clone());
    bucket
}

async fn statistics_add_up_to_the_ledger(app: &TestApp) {
    let mut c = community(app, "统计", 3).await;
    let r = ids(&c);
    // 27 November, from 10:00 in Shanghai.
    award(app, &c, &[(&r[0], 30)]).await;
    let to_b = award(app, &c, &[(&r[1], 20)]).await;
    let deduction = json_of(expect_status(deduct_response(app, &c, &r[0], 5).await, StatusCode::CREATED).await).await;
    let claim_body =
        json!({"rule_code": "volunteering", "description": "帮李奶奶扛米", "occurred_at": "2026-11-26T09:30:00+08:00"});
    let claim = json_of(app.post(&c.path("/claims"), &c.residents[2].1, claim_body.clone()).await).await;
    let approval = c.path(&format!("/claims/{}/approval", claim["id"].as_str().unwrap()));
    expect_status(post_with_key(app, &approval, &c.staff, &new_key(), json!({})).await, StatusCode::OK).await;
    let claim = json_of(app.post(&c.path("/claims"), &c.residents[1].1, claim_body).await).await;
    let rejection = c.path(&format!("/claims/{}/rejection", claim["id"].as_str().unwrap()));
    expect_status(app.post(&rejection, &c.staff, json!({"reason": "无人作证"})).await, StatusCode::OK).await;
    let activity = json_of(
        expect_status(
            app.post(
                &c.path("/activities"),
                &c.staff,
                json!({"title": "清理楼道", "location": "3号楼", "rule_code": "volunteering", "points": 15,
                       "starts_at": "2026-11-27T03:00:00Z", "ends_at": "2026-11-27T05:00:00Z", "status": "published"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
    )
    .await;
    let activity = c.path(&format!("/activities/{}", activity["id"].as_str().unwrap()));
    let signup = app.request(Method::POST, &format!("{activity}/registrations"), Some(&c.residents[2].1), None).await;
    expect_status(signup, StatusCode::CREATED).await;
    at(app, &mut c, "2026-11-27T03:10:00Z").await;
    let check_in = app.post(&format!("{activity}/check-ins"), &c.staff, json!({"user_id": r[2]})).await;
    expect_status(check_in, StatusCode::CREATED).await;
    let completion = post_with_key(app, &format!("{activity}/completion"), &c.staff, &new_key(), json!({})).await;
    expect_status(completion, StatusCode::OK).await;

    // 28 November: two reversals, an order handed over and one still held.
    at(app, &mut c, "2026-11-28T02:00:00Z").await;
    expect_status(reverse_response(app, &c, to_b["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    expect_status(reverse_response(app, &c, deduction["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    let reward = json_of(app.post(&c.path("/rewards"), &c.staff, json!({"name": "洗衣液", "cost": 10})).await).await;
    let reward_id = reward["id"].as_str().unwrap();
    let a_token = c.residents[0].1.clone();
    for handed_over in [true, false] {
        let order =
            post_with_key(app, &c.path("/redemptions"), &a_token, &new_key(), json!({"reward_id": reward_id})).await;
        let order = json_of(expect_status(order, StatusCode::CREATED).await).await;
        if handed_over {
            let fulfilment = c.path(&format!("/redemptions/{}/fulfilment", order["id"].as_str().unwrap()));
            let body = json!({"pickup_code": order["pickup_code"]});
            expect_status(app.post(&fulfilment, &c.staff, body).await, StatusCode::OK).await;
        }
    }

    let stats = get_ok(app, &c.path("/stats?from=2026-11-27&to=2026-11-29"), &c.auditor).await;
    assert_eq!(
        (&stats["unit_id"], &stats["timezone"], &stats["from"], &stats["to"], &stats["bucket"]),
        (&json!(c.id), &json!("Asia/Shanghai"), &json!("2026-11-27"), &json!("2026-11-29"), &json!("day"))
    );
    assert_eq!(
        stats["buckets"],
        json!([
            bucket("2026-11-27", "2026-11-27", figures(75, 5, 0, 70, 3, (1, 1), (1, 1))),
            bucket("2026-11-28", "2026-11-28", figures(-20, -5, 10, 45, 2, (0, 0), (0, 0))),
            bucket("2026-11-29", "2026-11-29", figures(0, 0, 0, 45, 0, (0, 0), (0, 0))),
        ])
    );
    let totals = figures(55, 0, 10, 45, 3, (1, 1), (1, 1));
    assert_eq!(stats["totals"], totals);
    assert_eq!(
        stats["top_rules"],
        json!([{"community_id": c.id, "code": "volunteering", "name": "志愿服务", "points": 55}])
    );
    assert_eq!(
        stats["top_rewards"],
        json!([{"community_id": c.id, "reward_id": reward_id, "name": "洗衣液", "quantity": 1, "points": 10}])
    );

    // The same sums, read from the ledger as a client would.
    let transactions = get_ok(app, &c.path("/transactions?limit=200"), &c.staff).await;
    let posted_to = |kind: &str| -> i64 {
        transactions["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|transaction| transaction["postings"].as_array().unwrap())
            .filter(|posting| posting["account_kind"] == kind)
            .map(|posting| posting["amount"].as_i64().unwrap())
            .sum()
    };
    let mut held_by_residents = 0;
    for resident in &r {
        let account = get_ok(app, &c.path(&format!("/accounts/{resident}")), &c.staff).await;
        held_by_residents += account["balance"].as_i64().unwrap() + account["held"].as_i64().unwrap();
    }
    assert_eq!(
        [-posted_to("issuance"), posted_to("penalty"), posted_to("redemption"), posted_to("expiry"), held_by_residents],
        ["awarded", "deducted", "redeemed", "expired", "outstanding"].map(|key| stats["totals"][key].as_i64().unwrap())
    );

    // Larger buckets, the same totals.
    let weekly = get_ok(app, &c.path("/stats?from=2026-11-27&to=2026-11-29&bucket=week"), &c.staff).await;
    assert_eq!(weekly["buckets"], json!([bucket("2026-11-27", "2026-11-29", totals.clone())]));
    let monthly = get_ok(app, &c.path("/stats?from=2026-10-15&to=2026-12-31&bucket=month"), &c.staff).await;
    assert_eq!(
        monthly["buckets"],
        json!([
            bucket("2026-10-15", "2026-10-31", figures(0, 0, 0, 0, 0, (0, 0), (0, 0))),
            bucket("2026-11-01", "2026-11-30", totals.clone()),
            bucket("2026-12-01", "2026-12-31", figures(0, 0, 0, 45, 0, (0, 0), (0, 0))),
        ])
    );
    // By default the last 30 days, today included.
    let recent = get_ok(app, &c.path("/stats"), &c.admin).await;
    let buckets = recent["buckets"].as_array().unwrap();
    assert_eq!(
        (recent["from"].as_str(), recent["to"].as_str(), buckets.len()),
        (Some("2026-10-30"), Some("2026-11-28"), 30)
    );
    assert_eq!(buckets[29]["outstanding"], 45);

    expect_problem(app.get(&c.path("/stats"), &c.residents[0].1).await, StatusCode::FORBIDDEN, "forbidden").await;
    let other = community(app, "别处", 0).await;
    expect_problem(app.get(&c.path("/stats"), &other.staff).await, StatusCode::NOT_FOUND, "not_found").await;
    for query in [
        "?from=2026-11-29&to=2026-11-27",
        "?from=2025-01-01&to=2026-12-31",
        "?bucket=year",
        "?from=yesterday",
        "?from=2026-11-27&until=2026-11-28",
    ] {
        expect_problem(
            app.get(&c.path(&format!("/stats{query}")), &c.staff).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(
        get_ok(app, &c.path("/stats?from=2025-01-01&to=2026-12-31&bucket=month"), &c.staff).await["buckets"]
            .as_array()
            .unwrap()
            .len(),
        24
    );

    // Auditors read everything and write nothing.
    let auditor = c.auditor.clone();
    let refused = [
        post_with_key(app, &c.path("/awards"), &auditor, &new_key(), json!({"memo": "x", "rule_code": "volunteering", "awards": [{"user_id": r[0]}]})).await,
        post_with_key(app, &c.path("/deductions"), &auditor, &new_key(), json!({"user_id": r[0], "rule_code": "littering", "memo": "x"})).await,
        app.post(&c.path("/rewards"), &auditor, json!({"name": "毛巾", "cost": 5})).await,
        app.post(&c.path("/activities"), &auditor, json!({"title": "x", "location": "x", "rule_code": "volunteering", "points": 1, "starts_at": "2026-12-01T03:00:00Z", "ends_at": "2026-12-01T05:00:00Z"})).await,
    ];
    for response in refused {
        expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(
        get_ok(app, &c.path("/stats?from=2026-11-27&to=2026-11-29"), &auditor).await["totals"],
        totals,
        "nothing changed"
    );
}

async fn street_statistics_sum_the_communities_below(app: &TestApp) {
    let east = community(app, "东街甲", 1).await;
    let neighbour = community_in_street(app, "东街乙", 1, &east.street_id).await;
    let west = community(app, "西街", 1).await;
    award(app, &east, &[(&east.residents[0].0, 30)]).await;
    award(app, &neighbour, &[(&neighbour.residents[0].0, 20)]).await;
    award(app, &west, &[(&west.residents[0].0, 100)]).await;

    let street = format!("/api/v1/units/{}/stats?from=2026-11-27&to=2026-11-27", east.street_id);
    let stats = get_ok(app, &street, &east.auditor).await;
    assert_eq!((&stats["unit_id"], &stats["timezone"]), (&json!(east.street_id), &json!("Asia/Shanghai")));
    assert_eq!(stats["totals"], figures(50, 0, 0, 50, 2, (0, 0), (0, 0)));
    assert_eq!(stats["buckets"][0]["awarded"], 50);
    assert_eq!(
        stats["top_rules"],
        json!([
            {"community_id": east.id, "code": "volunteering", "name": "志愿服务", "points": 30},
            {"community_id": neighbour.id, "code": "volunteering", "name": "志愿服务", "points": 20},
        ])
    );
    assert_eq!(get_ok(app, &street, &neighbour.auditor).await["totals"], stats["totals"]);
    assert_eq!(get_ok(app, &street, &east.admin).await["totals"], stats["totals"]);
    let own = format!("/api/v1/units/{}/stats?from=2026-11-27&to=2026-11-27", east.id);
    assert_eq!(get_ok(app, &own, &east.staff).await["totals"]["awarded"], 30);

    // Staff of a community below, its residents and another street's auditor cannot see the street.
    for token in [&east.staff, &east.residents[0].1, &west.auditor] {
        expect_problem(app.get(&street, token).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    expect_problem(app.get(&own, &east.residents[0].1).await, StatusCode::FORBIDDEN, "forbidden").await;

    // Communities in different time zones are reported in UTC.
    let berlin = json!({"timezone": "Europe/Berlin"});
    expect_status(app.patch(&format!("/api/v1/units/{}", neighbour.id), &east.admin, berlin).await, StatusCode::OK)
        .await;
    let mixed = get_ok(app, &street, &east.auditor).await;
    assert_eq!((&mixed["timezone"], &mixed["totals"]["awarded"]), (&json!("UTC"), &json!(50)));
}
