//! The ledger's invariants, checked after every scenario: through the API (hash chains, the hot
//! account's balance) and by read-only SQL on the server's database (sums, balances, stock).

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use reqwest::Client;

use crate::seed::{Dataset, REWARD_STOCK, run_all, send};

/// A read-only look at the server's database.
pub enum Sql {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

#[derive(QueryableByName)]
struct Scalar {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Sql {
    pub fn open(url: &str) -> anyhow::Result<Sql> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let mut conn = diesel::SqliteConnection::establish(path)?;
            conn.batch_execute("PRAGMA query_only = ON")?;
            Ok(Sql::Sqlite(conn))
        } else {
            let mut conn = diesel::PgConnection::establish(url)?;
            conn.batch_execute("SET default_transaction_read_only = on")?;
            Ok(Sql::Postgres(conn))
        }
    }

    pub fn scalar(&mut self, sql: &str) -> anyhow::Result<i64> {
        let rows: Vec<Scalar> = match self {
            Sql::Postgres(conn) => diesel::sql_query(sql).load(conn),
            Sql::Sqlite(conn) => diesel::sql_query(sql).load(conn),
        }
        .with_context(|| format!("running {sql}"))?;
        Ok(rows.first().map_or(0, |row| row.n))
    }

    /// Postings of one community, or of all.
    pub fn postings(&mut self, community: Option<&str>) -> anyhow::Result<i64> {
        match community {
            None => self.scalar("SELECT COUNT(*) AS n FROM ledger_postings"),
            Some(id) => self.scalar(&format!(
                "SELECT COUNT(*) AS n FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.transaction_id \
                 WHERE t.community_id = '{}'",
                id.replace('\'', "")
            )),
        }
    }
}

/// Checks every invariant; the list of those broken (empty when all hold).
pub async fn check(client: &Client, sql: &mut Sql, dataset: &Dataset, hot_balance: i64) -> anyhow::Result<Vec<String>> {
    let expectations: Vec<(&str, String, i64)> = vec![
        ("the postings sum to zero", "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM ledger_postings".into(), 0),
        (
            "every transaction balances",
            "SELECT COUNT(*) AS n FROM (SELECT transaction_id FROM ledger_postings GROUP BY transaction_id \
             HAVING SUM(amount) <> 0) AS t"
                .into(),
            0,
        ),
        (
            "no resident's balance or held points below zero",
            "SELECT COUNT(*) AS n FROM accounts WHERE kind = 'resident' AND (balance < 0 OR held < 0)".into(),
            0,
        ),
        (
            "every balance is the sum of its postings",
            "SELECT COUNT(*) AS n FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_postings \
             GROUP BY account_id) p ON p.account_id = a.id WHERE a.balance <> COALESCE(p.total, 0)"
                .into(),
            0,
        ),
        (
            "every resident's balance is what is left in their lots",
            "SELECT COUNT(*) AS n FROM accounts a LEFT JOIN (SELECT account_id, SUM(remaining) AS total FROM lots \
             GROUP BY account_id) l ON l.account_id = a.id WHERE a.kind = 'resident' AND a.balance <> COALESCE(l.total, 0)"
                .into(),
            0,
        ),
        ("no reward's stock below zero", "SELECT COUNT(*) AS n FROM rewards WHERE stock < 0".into(), 0),
        (
            "every reward's stock went down by its orders (not cancelled)",
            format!(
                "SELECT COUNT(*) AS n FROM rewards r WHERE r.stock IS NOT NULL AND {REWARD_STOCK} - r.stock <> \
                 (SELECT COALESCE(SUM(d.quantity), 0) FROM redemptions d WHERE d.reward_id = r.id AND d.status <> 'cancelled')"
            ),
            0,
        ),
        (
            "every chain head counts its community's transactions",
            "SELECT COUNT(*) AS n FROM ledger_heads h WHERE h.sequence <> \
             (SELECT COUNT(*) FROM ledger_transactions t WHERE t.community_id = h.community_id)"
                .into(),
            0,
        ),
        (
            "one ledger transaction per award or order answered 2xx",
            "SELECT COUNT(*) AS n FROM ledger_transactions".into(),
            i64::try_from(dataset.transactions)?,
        ),
        ("one order per order answered 2xx", "SELECT COUNT(*) AS n FROM redemptions".into(), i64::try_from(dataset.orders)?),
    ];
    let mut broken = Vec::new();
    for (what, query, expected) in expectations {
        let found = sql.scalar(&query)?;
        if found != expected {
            broken.push(format!("{what}: expected {expected}, found {found}"));
        }
    }

    let verifications = run_all(&dataset.communities, 4, |community| {
        let url = format!("{}/api/v1/communities/{}/ledger/verify", dataset.base, community.id);
        let request = client.get(url).bearer_auth(&dataset.auditor.access);
        async move { Ok((community.id.clone(), send(request).await?)) }
    })
    .await?;
    for (community, verification) in verifications {
        let intact = verification["ok"] == true
            && verification["transactions_checked"] == verification["head"]["sequence"]
            && verification["first_bad_sequence"].is_null();
        if !intact {
            broken.push(format!("the hash chain of community {community} does not verify: {verification}"));
        }
    }

    let (community, user) = &dataset.hot;
    let community = &dataset.communities[*community];
    let url = format!("{}/api/v1/communities/{}/accounts/{user}", dataset.base, community.id);
    let account = send(client.get(url).bearer_auth(&community.staff.access)).await?;
    if account["balance"] != hot_balance {
        broken.push(format!("the hot account's balance: expected {hot_balance}, the API says {}", account["balance"]));
    }
    Ok(broken)
}
