use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use jifen::db::schema::users;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{TestApp, expect_problem, expect_status, id, json_of};
use crate::ledger_helpers::{
    Community, award, community, community_in_street, deduct_response, new_key, post_with_key, reverse_response,
};

both_backends!(
    the_ledger_export_is_the_ledger_and_recomputes_its_chain,
    formula_payloads_are_neutralised_and_numbers_stay_numbers,
    a_byte_order_mark_unless_asked_not_to,
    orders_and_participation_match_the_api_within_local_dates,
    a_unit_export_covers_exactly_its_communities,
    only_readers_of_the_unit_may_export_and_parameters_are_checked
);

const BOM: &[u8] = b"\xef\xbb\xbf";

/// An export as received: its headers and its body.
struct Export {
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Export {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The records, keyed by column name, after checking the header row.
    fn rows(&self, columns: &[&str]) -> Vec<HashMap<String, String>> {
        let body = self.body.strip_prefix(BOM).unwrap_or(&self.body);
        let mut reader = csv::ReaderBuilder::new().from_reader(body);
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header, columns);
        reader
            .records()
            .map(|record| header.iter().cloned().zip(record.unwrap().iter().map(str::to_owned)).collect())
            .collect()
    }
}

async fn export(app: &TestApp, path: &str, token: &str) -> Export {
    let response = expect_status(app.get(path, token).await, StatusCode::OK).await;
    let headers = response.headers().clone();
    Export { headers, body: response.bytes().await.unwrap().to_vec() }
}

const LEDGER_COLUMNS: [&str; 22] = [
    "community_id",
    "community_name",
    "sequence",
    "transaction_id",
    "created_at",
    "created_at_utc",
    "kind",
    "rule_code",
    "memo",
    "actor_id",
    "actor_name",
    "cause_type",
    "cause_id",
    "reverses_id",
    "line",
    "account_id",
    "account_kind",
    "holder_id",
    "holder_name",
    "amount",
    "previous_hash",
    "hash",
];

/// The stored text of a text cell: the export puts one `'` before text that could start a formula.
fn stored(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

fn optional(cell: &str) -> Value {
    if cell.is_empty() { Value::Null } else { json!(stored(cell)) }
}

fn instant(time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(time).unwrap_or_else(|err| panic!("{time}: {err}")).with_timezone(&Utc)
}

async fn award_with_memo(app: &TestApp, c: &Community, user_id: &str, points: i64, memo: &str) -> Value {
    let body = json!({"memo": memo, "rule_code": "volunteering", "awards": [{"user_id": user_id, "points": points}]});
    let response = post_with_key(app, &c.path("/awards"), &c.staff, &new_key(), body).await;
    json_of(expect_status(response, StatusCode::CREATED).await).await
}

/// Every transaction of the community through the API, oldest first.
async fn transactions(app: &TestApp, c: &Community) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = c.path("/transactions?limit=200");
    loop {
        let page = json_of(expect_status(app.get(&path, &c.auditor).await, StatusCode::OK).await).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = c.path(&format!("/transactions?limit=200&cursor={cursor}")),
            None => break,
        }
    }
    items.reverse();
    items
}

/// The chain recomputed from the file alone, as docs/ledger-hash-chain.md specifies it:
/// checks every row's hash and link, and returns the head (sequence, hash).
fn recompute_chain(rows: &[HashMap<String, String>]) -> (i64, String) {
    let mut by_sequence: BTreeMap<i64, Vec<&HashMap<String, String>>> = BTreeMap::new();
    for row in rows {
        by_sequence.entry(row["sequence"].parse().unwrap()).or_default().push(row);
    }
    let string = |value: &str| serde_json::to_string(value).unwrap();
    let nullable = |cell: &str| if cell.is_empty() { "null".to_owned() } else { string(stored(cell)) };
    let mut previous = "0".repeat(64);
    let mut head = 0;
    for (sequence, mut postings) in by_sequence {
        assert_eq!(sequence, head + 1, "sequences run without gaps");
        postings.sort_by_key(|row| row["line"].parse::<i32>().unwrap());
        let first = postings[0];
        let lines: Vec<String> = postings
            .iter()
            .map(|row| {
                format!(
                    r#"{{"line":{},"account_id":{},"amount":{}}}"#,
                    row["line"],
                    string(&row["account_id"]),
                    row["amount"]
                )
            })
            .collect();
        let canonical = format!(
            r#"{{"version":1,"community_id":{},"sequence":{sequence},"id":{},"kind":{},"rule_code":{},"memo":{},"actor_id":{},"cause_type":{},"cause_id":{},"reverses_id":{},"created_at":{},"postings":[{}]}}"#,
            string(&first["community_id"]),
            string(&first["transaction_id"]),
            string(&first["kind"]),
            nullable(&first["rule_code"]),
            string(stored(&first["memo"])),
            nullable(&first["actor_id"]),
            nullable(&first["cause_type"]),
            nullable(&first["cause_id"]),
            nullable(&first["reverses_id"]),
            string(&first["created_at_utc"]),
            lines.join(","),
        );
        let raw_previous: Vec<u8> =
            (0..32).map(|i| u8::from_str_radix(&previous[2 * i..2 * i + 2], 16).unwrap()).collect();
        let mut hasher = Sha256::new();
        hasher.update(&raw_previous);
        hasher.update(canonical.as_bytes());
        let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        for row in &postings {
            assert_eq!((&row["previous_hash"], &row["hash"]), (&previous, &hash), "transaction {sequence}");
        }
        previous = hash;
        head = sequence;
    }
    (head, previous)
}

async fn verified_head(app: &TestApp, c: &Community) -> (i64, String) {
    let verified =
        json_of(expect_status(app.get(&c.path("/ledger/verify"), &c.auditor).await, StatusCode::OK).await).await;
    assert_eq!(verified["ok"], true, "{verified}");
    (verified["head"]["sequence"].as_i64().unwrap(), verified["head"]["hash"].as_str().unwrap().to_owned())
}

/// Awards, a deduction, a reversal and an order: every kind of posting a small community has.
async fn some_history(app: &TestApp, c: &Community) {
    let (a, b) = (c.residents[0].0.clone(), c.residents[1].0.clone());
    award(app, c, &[(&a, 40), (&b, 25)]).await;
    let mistaken = award_with_memo(app, c, &b, 7, "录错了人").await;
    expect_status(reverse_response(app, c, mistaken["id"].as_str().unwrap()).await, StatusCode::CREATED).await;
    expect_status(deduct_response(app, c, &a, 5).await, StatusCode::CREATED).await;
    let soap = reward(app, c, "洗衣液").await;
    order(app, c, &c.residents[0].1, json!({"reward_id": soap["id"], "quantity": 2})).await;
}

async fn the_ledger_export_is_the_ledger_and_recomputes_its_chain(app: &TestApp) {
    let c = community(app, "导出", 2).await;
    some_history(app, &c).await;
    // Long Chinese memos make the file larger than one 64 KiB chunk.
    let long_memo = "清理楼道杂物，".repeat(70);
    for _ in 0..25 {
        award_with_memo(app, &c, &c.residents[1].0, 1, &long_memo).await;
    }

    let file = export(app, &c.path("/exports/ledger.csv"), &c.auditor).await;
    assert!(file.body.len() > 64 * 1024, "{} bytes", file.body.len());
    assert_eq!(file.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        file.header("content-disposition"),
        Some(format!("attachment; filename=\"jifen-ledger-{}-20261127.csv\"", c.id).as_str())
    );
    assert!(file.body.starts_with(BOM));
    assert!(file.body.ends_with(b"\r\n"), "CRLF line ends");
    let rows = file.rows(&LEDGER_COLUMNS);

    // Row for row, what the API says.
    let api = transactions(app, &c).await;
    let staff_name = "导出.staff";
    let resident_names: HashMap<String, String> =
        c.residents.iter().enumerate().map(|(n, (id, _))| (id.clone(), format!("导出.resident{n}"))).collect();
    let mut expected = Vec::new();
    for transaction in &api {
        for posting in transaction["postings"].as_array().unwrap() {
            expected.push((transaction, posting));
        }
    }
    assert_eq!(rows.len(), expected.len());
    for (row, (transaction, posting)) in rows.iter().zip(&expected) {
        assert_eq!(row["community_id"], c.id);
        assert_eq!(row["community_name"], "导出社区");
        assert_eq!(row["sequence"], transaction["sequence"].to_string());
        assert_eq!(row["transaction_id"], transaction["id"].as_str().unwrap());
        assert!(row["created_at"].ends_with("+08:00"), "local time in Shanghai: {}", row["created_at"]);
        let created_at = instant(transaction["created_at"].as_str().unwrap());
        assert_eq!(instant(&row["created_at"]), created_at);
        assert_eq!(instant(&row["created_at_utc"]), created_at);
        assert_eq!(row["kind"], transaction["kind"].as_str().unwrap());
        assert_eq!(optional(&row["rule_code"]), transaction["rule_code"]);
        assert_eq!(stored(&row["memo"]), transaction["memo"].as_str().unwrap());
        assert_eq!(optional(&row["actor_id"]), transaction["actor_id"]);
        let actor_name = match transaction["actor_id"].as_str() {
            Some(actor) => resident_names.get(actor).map_or(staff_name, String::as_str),
            None => "",
        };
        assert_eq!(row["actor_name"], actor_name);
        assert_eq!(optional(&row["cause_type"]), transaction["cause_type"]);
        assert_eq!(optional(&row["cause_id"]), transaction["cause_id"]);
        assert_eq!(optional(&row["reverses_id"]), transaction["reverses_id"]);
        assert_eq!(row["line"], posting["line"].to_string());
        assert_eq!(row["account_id"], posting["account_id"].as_str().unwrap());
        assert_eq!(row["account_kind"], posting["account_kind"].as_str().unwrap());
        assert_eq!(optional(&row["holder_id"]), posting["user_id"]);
        let holder_name = posting["user_id"].as_str().map(|user| resident_names[user].clone()).unwrap_or_default();
        assert_eq!(row["holder_name"], holder_name);
        assert_eq!(row["amount"], posting["amount"].to_string());
        assert_eq!(row["previous_hash"], transaction["previous_hash"].as_str().unwrap());
        assert_eq!(row["hash"], transaction["hash"].as_str().unwrap());
    }
    let kinds: HashSet<&str> = rows.iter().map(|row| row["kind"].as_str()).collect();
    assert_eq!(kinds, HashSet::from(["award", "reversal", "deduction", "redemption_hold"]));

    // The chain, recomputed from the file alone, ends at the head the server verifies and sent.
    let head = verified_head(app, &c).await;
    assert_eq!(recompute_chain(&rows), head);
    assert_eq!(file.header("x-jifen-chain-sequence"), Some(head.0.to_string().as_str()));
    assert_eq!(file.header("x-jifen-chain-hash"), Some(head.1.as_str()));

    // Staff and admins may export it too; `from`/`to` are local dates.
    let by_staff = export(app, &c.path("/exports/ledger.csv"), &c.staff).await;
    assert_eq!(by_staff.body, file.body);
    let by_admin = export(app, &c.path("/exports/ledger.csv?from=2026-11-27&to=2026-11-27"), &c.admin).await;
    assert_eq!(by_admin.body, file.body);
    let later = export(app, &c.path("/exports/ledger.csv?from=2026-11-28"), &c.auditor).await;
    assert!(later.rows(&LEDGER_COLUMNS).is_empty());
    assert_eq!(later.header("x-jifen-chain-sequence"), Some(head.0.to_string().as_str()), "the head is the ledger's");
}

async fn formula_payloads_are_neutralised_and_numbers_stay_numbers(app: &TestApp) {
    let c = community(app, "注入", 2).await;
    let (a, b) = (c.residents[0].0.clone(), c.residents[1].0.clone());
    let memos = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2+3", "@SUM(A1)", "'quoted", "a,b\"c\nd"];
    for memo in memos {
        award_with_memo(app, &c, &a, 3, memo).await;
    }
    // Names with a leading tab or CR cannot be entered through the API (it trims and refuses
    // control characters), but may come from elsewhere: put them in directly.
    let db = app.database();
    let (tab_user, cr_user) = (a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = db.blocking_connection().unwrap();
        for (user, name) in [(tab_user, "\tcmd"), (cr_user, "\r=1")] {
            diesel::update(users::table.find(user)).set(users::display_name.eq(name)).execute(&mut *conn).unwrap();
        }
    })
    .await
    .unwrap();
    award(app, &c, &[(&b, 1)]).await;

    let file = export(app, &c.path("/exports/ledger.csv?bom=false"), &c.auditor).await;
    let text = String::from_utf8(file.body.clone()).unwrap();
    assert!(text.contains(r#""'=HYPERLINK(""http://x"",""y"")""#), "{text}");
    assert!(text.contains("\"a,b\"\"c\nd\""), "one quoted cell: {text}");
    let rows = file.rows(&LEDGER_COLUMNS);
    let memo_cells: Vec<&str> =
        rows.iter().filter(|row| row["holder_id"] == a).map(|row| row["memo"].as_str()).take(memos.len()).collect();
    assert_eq!(memo_cells, ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2+3", "'@SUM(A1)", "''quoted", "a,b\"c\nd"]);
    let names: HashSet<&str> = rows.iter().map(|row| row["holder_name"].as_str()).collect();
    assert!(names.contains("'\tcmd") && names.contains("'\r=1"), "{names:?}");
    // Amounts stay plain signed numbers: a spreadsheet sums them.
    let amounts: Vec<i64> = rows.iter().map(|row| row["amount"].parse().unwrap()).collect();
    assert!(amounts.contains(&-3) && amounts.iter().sum::<i64>() == 0, "{amounts:?}");
    // Prefixing keeps the file faithful: the chain still recomputes from it.
    assert_eq!(recompute_chain(&rows), verified_head(app, &c).await);
}

async fn a_byte_order_mark_unless_asked_not_to(app: &TestApp) {
    let c = community(app, "字节序", 1).await;
    award(app, &c, &[(&c.residents[0].0, 5)]).await;
    for (export_name, first_column) in
        [("ledger", "community_id"), ("redemptions", "redemption_id"), ("participation", "activity_id")]
    {
        let path = c.path(&format!("/exports/{export_name}.csv"));
        let with = export(app, &path, &c.staff).await;
        assert!(with.body.starts_with(&[BOM, first_column.as_bytes()].concat()), "{export_name}");
        assert_eq!(with.header("content-type"), Some("text/csv; charset=utf-8"));
        assert_eq!(
            with.header("content-disposition"),
            Some(format!("attachment; filename=\"jifen-{export_name}-{}-20261127.csv\"", c.id).as_str())
        );
        assert_eq!(export(app, &format!("{path}?bom=true"), &c.staff).await.body, with.body);
        let without = export(app, &format!("{path}?bom=false"), &c.staff).await;
        assert_eq!(without.body, with.body[BOM.len()..]);
    }
}

async fn at(app: &TestApp, c: &mut Community, time: &str) {
    app.clock.set(instant(time));
    c.sign_in_again(app).await;
}

async fn reward(app: &TestApp, c: &Community, name: &str) -> Value {
    let response = app.post(&c.path("/rewards"), &c.staff, json!({"name": name, "cost": 10})).await;
    json_of(expect_status(response, StatusCode::CREATED).await).await
}

async fn order(app: &TestApp, c: &Community, token: &str, body: Value) -> Value {
    let response = post_with_key(app, &c.path("/redemptions"), token, &new_key(), body).await;
    json_of(expect_status(response, StatusCode::CREATED).await).await
}

async fn orders_and_participation_match_the_api_within_local_dates(app: &TestApp) {
    let mut c = community(app, "订单", 2).await;
    let (a, b) = (c.residents[0].clone(), c.residents[1].clone());
    award(app, &c, &[(&a.0, 100), (&b.0, 100)]).await;
    let soap = reward(app, &c, "=洗衣液").await;
    // 23:30 on 27 November in Shanghai, then 00:30 and 10:00 on the 28th.
    at(app, &mut c, "2026-11-27T15:30:00Z").await;
    let first = order(app, &c, &c.residents[0].1, json!({"reward_id": soap["id"]})).await;
    at(app, &mut c, "2026-11-27T16:30:00Z").await;
    let second = order(app, &c, &c.staff, json!({"reward_id": soap["id"], "user_id": b.0, "quantity": 3})).await;
    let handed = c.path(&format!("/redemptions/{}/fulfilment", first["id"].as_str().unwrap()));
    expect_status(app.post(&handed, &c.staff, json!({"pickup_code": first["pickup_code"]})).await, StatusCode::OK)
        .await;
    at(app, &mut c, "2026-11-28T02:00:00Z").await;
    let third = order(app, &c, &c.residents[0].1, json!({"reward_id": soap["id"]})).await;
    let cancel = c.path(&format!("/redemptions/{}/cancellation", third["id"].as_str().unwrap()));
    expect_status(app.request(Method::POST, &cancel, Some(&c.residents[0].1), None).await, StatusCode::OK).await;

    let columns = [
        "redemption_id",
        "created_at",
        "resident_id",
        "resident_name",
        "reward_id",
        "reward_name",
        "quantity",
        "points",
        "status",
        "ordered_by",
        "resolved_by",
        "resolved_at",
        "hold_transaction_id",
        "settle_transaction_id",
    ];
    let file = export(app, &c.path("/exports/redemptions.csv"), &c.auditor).await;
    let text = String::from_utf8_lossy(&file.body).into_owned();
    for placed in [&first, &second, &third] {
        assert!(!text.contains(placed["pickup_code"].as_str().unwrap()), "pickup codes stay out of exports");
    }
    let rows = file.rows(&columns);
    let api = json_of(app.get(&c.path("/redemptions?limit=200"), &c.auditor).await).await;
    let api = api["items"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, order) in rows.iter().zip(api) {
        assert_eq!(row["redemption_id"], order["id"].as_str().unwrap());
        assert_eq!(instant(&row["created_at"]), instant(order["created_at"].as_str().unwrap()));
        assert!(row["created_at"].ends_with("+08:00"));
        assert_eq!(row["resident_id"], order["user_id"].as_str().unwrap());
        let name = if order["user_id"] == a.0.as_str() { "订单.resident0" } else { "订单.resident1" };
        assert_eq!(row["resident_name"], name);
        assert_eq!(row["reward_id"], order["reward_id"].as_str().unwrap());
        assert_eq!(row["reward_name"], "'=洗衣液");
        assert_eq!(stored(&row["reward_name"]), order["reward_name"].as_str().unwrap());
        assert_eq!(row["quantity"], order["quantity"].to_string());
        assert_eq!(row["points"], order["points"].to_string());
        assert_eq!(row["status"], order["status"].as_str().unwrap());
        assert_eq!(row["ordered_by"], order["ordered_by"].as_str().unwrap());
        assert_eq!(optional(&row["resolved_by"]), order["resolved_by"]);
        match order["resolved_at"].as_str() {
            Some(at) => assert_eq!(instant(&row["resolved_at"]), instant(at)),
            None => assert_eq!(row["resolved_at"], ""),
        }
        assert_eq!(row["hold_transaction_id"], order["hold_transaction_id"].as_str().unwrap());
        assert_eq!(optional(&row["settle_transaction_id"]), order["settle_transaction_id"]);
    }
    let statuses: Vec<&str> = rows.iter().map(|row| row["status"].as_str()).collect();
    assert_eq!(statuses, ["fulfilled", "pending", "cancelled"]);
    // Local dates: the 27th ends at 16:00 UTC.
    let on_27th = export(app, &c.path("/exports/redemptions.csv?to=2026-11-27"), &c.auditor).await.rows(&columns);
    assert_eq!(on_27th.iter().map(|row| &row["redemption_id"]).collect::<Vec<_>>(), [first["id"].as_str().unwrap()]);
    let on_28th =
        export(app, &c.path("/exports/redemptions.csv?from=2026-11-28&to=2026-11-28"), &c.auditor).await.rows(&columns);
    assert_eq!(on_28th.len(), 2);

    // An activity: one resident checks in with the code, staff check in the other.
    let activity = json_of(
        expect_status(
            app.post(
                &c.path("/activities"),
                &c.staff,
                json!({
                    "title": "@清理楼道", "description": "请自带手套", "location": "3号楼门口",
                    "rule_code": "volunteering", "points": 15,
                    "starts_at": "2026-11-28T03:00:00Z", "ends_at": "2026-11-28T05:00:00Z", "status": "published"
                }),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
    )
    .await;
    let activity_id = id(&activity).to_owned();
    let sign_up = c.path(&format!("/activities/{activity_id}/registrations"));
    for (_, token) in &c.residents {
        expect_status(app.request(Method::POST, &sign_up, Some(token), None).await, StatusCode::CREATED).await;
    }
    at(app, &mut c, "2026-11-28T03:10:00Z").await;
    let check_in = c.path(&format!("/activities/{activity_id}/check-ins"));
    let code = json_of(app.get(&c.path(&format!("/activities/{activity_id}/check-in-code")), &c.staff).await).await;
    expect_status(app.post(&check_in, &c.residents[0].1, json!({"code": code["code"]})).await, StatusCode::CREATED)
        .await;
    expect_status(app.post(&check_in, &c.staff, json!({"user_id": c.residents[1].0})).await, StatusCode::CREATED).await;

    let columns = [
        "activity_id",
        "activity_title",
        "starts_at",
        "ends_at",
        "activity_points",
        "activity_status",
        "resident_id",
        "resident_name",
        "registered_at",
        "checked_in_at",
        "check_in_method",
    ];
    let rows = export(app, &c.path("/exports/participation.csv"), &c.staff).await.rows(&columns);
    let participants =
        json_of(app.get(&c.path(&format!("/activities/{activity_id}/participants?limit=200")), &c.staff).await).await;
    let participants: HashMap<&str, &Value> = participants["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|participant| (participant["user_id"].as_str().unwrap(), participant))
        .collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let participant = participants[row["resident_id"].as_str()];
        assert_eq!(row["activity_id"], activity_id);
        assert_eq!(row["activity_title"], "'@清理楼道");
        assert_eq!(row["starts_at"], "2026-11-28T11:00:00+08:00");
        assert_eq!(row["ends_at"], "2026-11-28T13:00:00+08:00");
        assert_eq!(row["activity_points"], "15");
        assert_eq!(row["activity_status"], "published");
        assert_eq!(row["resident_name"], participant["display_name"].as_str().unwrap());
        assert_eq!(instant(&row["registered_at"]), instant(participant["registered_at"].as_str().unwrap()));
        assert_eq!(instant(&row["checked_in_at"]), instant(participant["checked_in_at"].as_str().unwrap()));
        assert_eq!(row["check_in_method"], participant["check_in_method"].as_str().unwrap());
    }
    let methods: HashSet<&str> = rows.iter().map(|row| row["check_in_method"].as_str()).collect();
    assert_eq!(methods, HashSet::from(["code", "staff"]));
    let before = export(app, &c.path("/exports/participation.csv?to=2026-11-27"), &c.staff).await.rows(&columns);
    assert!(before.is_empty(), "registered on the 28th, local time");
}

async fn a_unit_export_covers_exactly_its_communities(app: &TestApp) {
    let a = community(app, "甲", 1).await;
    let admin = a.admin.clone();
    let a_unit = json_of(app.get(&format!("/api/v1/units/{}", a.id), &admin).await).await;
    let street = a_unit["parent_id"].as_str().unwrap().to_owned();
    let b = community_in_street(app, "乙", 1, &street).await;
    let elsewhere = community(app, "丙", 1).await;
    for c in [&a, &b, &elsewhere] {
        award(app, c, &[(&c.residents[0].0, 10)]).await;
        expect_status(deduct_response(app, c, &c.residents[0].0, 2).await, StatusCode::CREATED).await;
    }

    let path = format!("/api/v1/units/{street}/exports/ledger.csv");
    let file = export(app, &path, &a.auditor).await;
    assert_eq!(
        file.header("content-disposition"),
        Some(format!("attachment; filename=\"jifen-ledger-{street}-20261127.csv\"").as_str())
    );
    assert_eq!(file.header("x-jifen-chain-sequence"), None, "one pair of headers cannot hold two heads");
    let rows = file.rows(&LEDGER_COLUMNS);
    let covered: HashSet<&str> = rows.iter().map(|row| row["community_id"].as_str()).collect();
    assert_eq!(covered, HashSet::from([a.id.as_str(), b.id.as_str()]));
    // Each community's rows are its own export's rows, and recompute to its head.
    for c in [&a, &b] {
        let own: Vec<_> = rows.iter().filter(|row| row["community_id"] == c.id).cloned().collect();
        assert_eq!(own, export(app, &c.path("/exports/ledger.csv"), &c.auditor).await.rows(&LEDGER_COLUMNS));
        assert_eq!(recompute_chain(&own), verified_head(app, c).await);
    }
    // B's street auditor sees the same; the platform admin can take a district.
    assert_eq!(export(app, &path, &b.auditor).await.body, file.body);
    let district = json_of(app.get(&format!("/api/v1/units/{street}"), &admin).await).await["parent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = export(app, &format!("/api/v1/units/{district}/exports/ledger.csv"), &admin).await;
    assert_eq!(whole.rows(&LEDGER_COLUMNS), rows);

    // Out of sight: another street's auditor, and community staff and residents.
    for token in [&elsewhere.auditor, &a.staff, &a.residents[0].1] {
        expect_problem(app.get(&path, token).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    // Community staff use the community export: on the unit export of their community they lack the role.
    expect_problem(
        app.get(&format!("/api/v1/units/{}/exports/ledger.csv", a.id), &a.staff).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let unknown = uuid::Uuid::new_v4();
    expect_problem(
        app.get(&format!("/api/v1/units/{unknown}/exports/ledger.csv"), &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn only_readers_of_the_unit_may_export_and_parameters_are_checked(app: &TestApp) {
    let c = community(app, "权限", 1).await;
    let other = community(app, "别处", 1).await;
    let resident = &c.residents[0];
    for export_name in ["ledger", "redemptions", "participation"] {
        let path = c.path(&format!("/exports/{export_name}.csv"));
        expect_problem(app.get(&path, &resident.1).await, StatusCode::FORBIDDEN, "forbidden").await;
        expect_problem(app.get(&path, &other.auditor).await, StatusCode::NOT_FOUND, "not_found").await;
        expect_problem(app.get(&path, &other.staff).await, StatusCode::NOT_FOUND, "not_found").await;
        expect_problem(app.request(Method::GET, &path, None, None).await, StatusCode::UNAUTHORIZED, "unauthorized")
            .await;
        for bad in [
            "from=2026-13-01",
            "to=27.11.2026",
            "from=2026-11-28T00:00:00Z",
            "from=2026-11-28&to=2026-11-27",
            "from=1900-01-01",
            "bom=maybe",
            "limit=10",
        ] {
            expect_problem(
                app.get(&format!("{path}?{bad}"), &c.auditor).await,
                StatusCode::BAD_REQUEST,
                "validation_failed",
            )
            .await;
        }
    }
    let unknown = uuid::Uuid::new_v4();
    expect_problem(
        app.get(&format!("/api/v1/communities/{unknown}/exports/ledger.csv"), &c.auditor).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // An auditor reads, and never writes.
    let body = json!({"memo": "审计", "rule_code": "volunteering", "awards": [{"user_id": resident.0, "points": 1}]});
    expect_problem(
        post_with_key(app, &c.path("/awards"), &c.auditor, &new_key(), body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_problem(
        app.post(&c.path("/rewards"), &c.auditor, json!({"name": "洗衣液", "cost": 10})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}
