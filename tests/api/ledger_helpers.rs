//! Setting up a community with staff and residents, writing to the ledger, and
//! checking the ledger's invariants straight from the database.

use diesel::prelude::*;
use std::collections::HashMap;

use jifen::db::schema::{
    accounts, ledger_heads, ledger_postings, ledger_transactions, lot_movements, lots, redemptions,
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, expect_status, id, json_of};

pub struct Community {
    name: String,
    pub id: String,
    pub street_id: String,
    pub admin: String,
    pub staff: String,
    pub auditor: String,
    /// (user id, access token) of each active resident.
    pub residents: Vec<(String, String)>,
}

impl Community {
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/communities/{}{rest}", self.id)
    }
}

/// A community with one staff member, one street auditor and `residents` active residents.
pub async fn community(app: &TestApp, name: &str, residents: usize) -> Community {
    let admin = app.admin().await;
    let tree = app.community_tree(&admin, name).await;
    let (street_id, community_id) = (id(&tree.street).to_owned(), id(&tree.community).to_owned());
    setup_community(app, admin, name, residents, &street_id, community_id).await
}

/// The same, as a new community of an existing street.
pub async fn community_in_street(app: &TestApp, name: &str, residents: usize, street_id: &str) -> Community {
    let admin = app.admin().await;
    let unit = app.create_unit(&admin, "community", &format!("{name}社区"), Some(street_id)).await;
    setup_community(app, admin, name, residents, street_id, id(&unit).to_owned()).await
}

async fn setup_community(
    app: &TestApp,
    admin: String,
    name: &str,
    residents: usize,
    street_id: &str,
    community_id: String,
) -> Community {
    let (_, staff) = app.member_with_token(&admin, &community_id, &format!("{name}.staff"), &["staff"]).await;
    let (_, auditor) = app.member_with_token(&admin, street_id, &format!("{name}.auditor"), &["auditor"]).await;
    let rules = format!("/api/v1/communities/{community_id}/rules");
    for rule in [
        json!({"code": "volunteering", "name": "志愿服务", "category": "volunteering", "direction": "earn", "default_points": 10, "min_points": 1, "max_points": 1_000_000}),
        json!({"code": "littering", "name": "乱扔垃圾", "category": "environment", "direction": "deduct", "default_points": 5, "min_points": 1, "max_points": 1_000_000}),
    ] {
        expect_status(app.post(&rules, &staff, rule).await, StatusCode::CREATED).await;
    }
    let mut members = Vec::new();
    for n in 0..residents {
        members.push(app.member_with_token(&admin, &community_id, &format!("{name}.resident{n}"), &["resident"]).await);
    }
    Community {
        name: name.to_owned(),
        id: community_id,
        street_id: street_id.to_owned(),
        admin,
        staff,
        auditor,
        residents: members,
    }
}

impl Community {
    /// Signs everyone in again: after the test clock jumps, their access tokens have expired.
    pub async fn sign_in_again(&mut self, app: &TestApp) {
        let name = &self.name;
        self.admin = app.admin().await;
        self.staff = app.login(&format!("{name}.staff"), PASSWORD).await;
        self.auditor = app.login(&format!("{name}.auditor"), PASSWORD).await;
        for (n, resident) in self.residents.iter_mut().enumerate() {
            resident.1 = app.login(&format!("{name}.resident{n}"), PASSWORD).await;
        }
    }
}

pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub async fn post_with_key(app: &TestApp, path: &str, token: &str, key: &str, body: Value) -> Response {
    app.client.post(app.url(path)).bearer_auth(token).header("Idempotency-Key", key).json(&body).send().await.unwrap()
}

pub async fn award(app: &TestApp, community: &Community, lines: &[(&str, i64)]) -> Value {
    let awards: Vec<Value> =
        lines.iter().map(|(user_id, points)| json!({"user_id": user_id, "points": points})).collect();
    let body = json!({"memo": "参加志愿服务", "rule_code": "volunteering", "awards": awards});
    let response = post_with_key(app, &community.path("/awards"), &community.staff, &new_key(), body).await;
    json_of(expect_status(response, StatusCode::CREATED).await).await
}

pub async fn deduct_response(app: &TestApp, community: &Community, user_id: &str, points: i64) -> Response {
    let body = json!({"user_id": user_id, "points": points, "rule_code": "littering", "memo": "高空抛物"});
    post_with_key(app, &community.path("/deductions"), &community.staff, &new_key(), body).await
}

pub async fn reverse_response(app: &TestApp, community: &Community, transaction_id: &str) -> Response {
    let path = community.path(&format!("/transactions/{transaction_id}/reversal"));
    post_with_key(app, &path, &community.staff, &new_key(), json!({"memo": "录错了"})).await
}

pub async fn balance(app: &TestApp, community: &Community, user_id: &str) -> i64 {
    let account = json_of(
        expect_status(
            app.get(&community.path(&format!("/accounts/{user_id}")), &community.staff).await,
            StatusCode::OK,
        )
        .await,
    )
    .await;
    account["balance"].as_i64().unwrap()
}

pub async fn head_sequence(app: &TestApp, community: &Community) -> i64 {
    let verified = json_of(
        expect_status(app.get(&community.path("/ledger/verify"), &community.auditor).await, StatusCode::OK).await,
    )
    .await;
    assert_eq!(verified["ok"], true, "{verified}");
    verified["head"]["sequence"].as_i64().unwrap()
}

/// The invariants of the ledger, read from the database: every community's
/// postings sum to zero; every resident's balance equals the sum of their postings
/// and of their lots' remaining points, and is never negative; chain sequences run
/// 1..n without gaps and end at the head.
pub async fn check_invariants(app: &TestApp) {
    let db = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.blocking_connection().unwrap();
        let conn = &mut *conn;
        let communities: Vec<(String, i64)> =
            ledger_heads::table.select((ledger_heads::community_id, ledger_heads::sequence)).load(conn).unwrap();
        for (community_id, head) in communities {
            let mut sequences: Vec<i64> = ledger_transactions::table
                .filter(ledger_transactions::community_id.eq(&community_id))
                .select(ledger_transactions::sequence)
                .load(conn)
                .unwrap();
            sequences.sort_unstable();
            assert_eq!(sequences, (1..=head).collect::<Vec<_>>(), "gap-free chain in {community_id}");
            let amounts: Vec<i64> = ledger_postings::table
                .inner_join(ledger_transactions::table)
                .filter(ledger_transactions::community_id.eq(&community_id))
                .select(ledger_postings::amount)
                .load(conn)
                .unwrap();
            assert_eq!(amounts.iter().sum::<i64>(), 0, "postings of {community_id} sum to zero");
        }
        let residents: Vec<(String, String, Option<String>, i64, i64)> = accounts::table
            .filter(accounts::kind.eq("resident"))
            .select((accounts::id, accounts::community_id, accounts::user_id, accounts::balance, accounts::held))
            .load(conn)
            .unwrap();
        let pending_points = |conn: &mut jifen::db::DbConnection, community_id: &str, user_id: Option<&str>| -> i64 {
            let mut query = redemptions::table
                .filter(redemptions::community_id.eq(community_id.to_owned()))
                .filter(redemptions::status.eq("pending"))
                .select(redemptions::points)
                .into_boxed();
            if let Some(user_id) = user_id {
                query = query.filter(redemptions::user_id.eq(user_id.to_owned()));
            }
            query.load::<i64>(conn).unwrap().iter().sum()
        };
        for (account_id, community_id, user_id, balance, held) in residents {
            assert!(balance >= 0 && held >= 0, "account {account_id} is negative: {balance}/{held}");
            let posted: Vec<i64> = ledger_postings::table
                .filter(ledger_postings::account_id.eq(&account_id))
                .select(ledger_postings::amount)
                .load(conn)
                .unwrap();
            let in_lots: Vec<i64> =
                lots::table.filter(lots::account_id.eq(&account_id)).select(lots::remaining).load(conn).unwrap();
            assert_eq!(
                posted.iter().sum::<i64>(),
                balance,
                "account {account_id}: available points equal its postings"
            );
            assert_eq!(in_lots.iter().sum::<i64>(), balance, "account {account_id}: available points equal its lots");
            assert_eq!(
                pending_points(conn, &community_id, user_id.as_deref()),
                held,
                "account {account_id}: held points equal its pending orders"
            );
        }
        // A lot's points taken are its movements: points taken, less points given back.
        let mut moved: HashMap<String, i64> = HashMap::new();
        let movements: Vec<(String, i64)> =
            lot_movements::table.select((lot_movements::lot_id, lot_movements::amount)).load(conn).unwrap();
        for (lot_id, amount) in movements {
            *moved.entry(lot_id).or_default() += amount;
        }
        let all_lots: Vec<(String, i64, i64)> =
            lots::table.select((lots::id, lots::amount, lots::remaining)).load(conn).unwrap();
        for (lot_id, amount, remaining) in all_lots {
            assert!((0..=amount).contains(&remaining), "lot {lot_id}: {remaining} left of {amount}");
            assert_eq!(moved.get(&lot_id).copied().unwrap_or(0), amount - remaining, "lot {lot_id}: its movements");
        }
        // Each hold account holds exactly its community's pending orders.
        let holds: Vec<(String, i64)> = accounts::table
            .filter(accounts::kind.eq("hold"))
            .select((accounts::community_id, accounts::balance))
            .load(conn)
            .unwrap();
        for (community_id, balance) in holds {
            assert_eq!(pending_points(conn, &community_id, None), balance, "the hold account of {community_id}");
        }
    })
    .await
    .unwrap();
}

/// The targets of the succeeded requests of `action` in the audit log, as `token` sees it, sorted.
pub async fn recorded_targets(app: &TestApp, token: &str, action: &str) -> Vec<String> {
    let path = format!("/api/v1/audit-log?action={action}&limit=200");
    let page = json_of(expect_status(app.get(&path, token).await, StatusCode::OK).await).await;
    let mut targets: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["outcome"] == "succeeded")
        .map(|record| record["target"]["id"].as_str().unwrap().to_owned())
        .collect();
    targets.sort_unstable();
    targets
}
