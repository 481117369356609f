//! Accounts, ledger transactions, postings and lots: rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{
    accounts, ledger_heads, ledger_postings, ledger_transactions, lot_movements, lots, memberships,
};
use crate::db::{DbConnection, KeepPreparedDsl, changed_all, kept_in_list, new_id};
use crate::units::model::Membership;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// One per resident: never below zero.
    Resident,
    /// Where awarded points come from; its negative balance is the points issued.
    Issuance,
    /// Where spent points go.
    Redemption,
    /// Where expired points go.
    Expiry,
    /// Where deducted points go.
    Penalty,
    /// Points of orders in the points shop not yet handed over.
    Hold,
}

impl AccountKind {
    pub const SYSTEM: [AccountKind; 5] =
        [AccountKind::Issuance, AccountKind::Redemption, AccountKind::Expiry, AccountKind::Penalty, AccountKind::Hold];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Resident => "resident",
            AccountKind::Issuance => "issuance",
            AccountKind::Redemption => "redemption",
            AccountKind::Expiry => "expiry",
            AccountKind::Penalty => "penalty",
            AccountKind::Hold => "hold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AccountKind::Resident,
            AccountKind::Issuance,
            AccountKind::Redemption,
            AccountKind::Expiry,
            AccountKind::Penalty,
            AccountKind::Hold,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

crate::sql_constant!(
    /// The kind of resident accounts, for the partial indexes `accounts_resident` and `accounts_system`.
    ResidentKind: diesel::sql_types::Text = "'resident'"
);
crate::sql_constant!(
    /// Zero points, for the partial indexes on lots that still hold points (`remaining > 0`).
    NoPoints: diesel::sql_types::BigInt = "0"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Points given to residents, from the issuance account.
    Award,
    /// Points taken from a resident for breaking the convention, to the penalty account.
    Deduction,
    /// The linked correction of an award or a deduction.
    Reversal,
    /// Points whose lots reached their expiry date, to the expiry account.
    Expiry,
    /// A resident's order in the points shop: points move to the hold account.
    RedemptionHold,
    /// The handover: held points move to the redemption account.
    Redemption,
    /// A cancelled order: held points go back to the resident's lots.
    Refund,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Award => "award",
            TransactionKind::Deduction => "deduction",
            TransactionKind::Reversal => "reversal",
            TransactionKind::Expiry => "expiry",
            TransactionKind::RedemptionHold => "redemption_hold",
            TransactionKind::Redemption => "redemption",
            TransactionKind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TransactionKind::Award,
            TransactionKind::Deduction,
            TransactionKind::Reversal,
            TransactionKind::Expiry,
            TransactionKind::RedemptionHold,
            TransactionKind::Redemption,
            TransactionKind::Refund,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Account {
    pub id: String,
    pub community_id: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub balance: i64,
    pub held: i64,
    pub earned: i64,
    pub spent: i64,
    pub created_at: NaiveDateTime,
}

impl Account {
    fn new(community_id: &str, kind: AccountKind, user_id: Option<&str>, now: NaiveDateTime) -> Self {
        Account {
            id: new_id(),
            community_id: community_id.to_owned(),
            kind: kind.as_str().to_owned(),
            user_id: user_id.map(str::to_owned),
            balance: 0,
            held: 0,
            earned: 0,
            spent: 0,
            created_at: now,
        }
    }

    pub fn kind(&self) -> AccountKind {
        AccountKind::parse(&self.kind).unwrap_or(AccountKind::Resident)
    }

    /// The system accounts and the chain head of a new community.
    pub fn open_community(conn: &mut DbConnection, community_id: &str, now: NaiveDateTime) -> QueryResult<()> {
        let system: Vec<Account> =
            AccountKind::SYSTEM.iter().map(|kind| Account::new(community_id, *kind, None, now)).collect();
        crate::insert_all!(conn, accounts::table, &system, accounts::id)?;
        diesel::insert_into(ledger_heads::table)
            .values((
                ledger_heads::community_id.eq(community_id),
                ledger_heads::sequence.eq(0),
                ledger_heads::hash.eq(crate::ledger::chain::GENESIS_HASH),
            ))
            .execute(conn)
            .map(drop)
    }

    /// The resident's account, opened first unless it exists (it outlives suspensions).
    pub fn open_resident(
        conn: &mut DbConnection,
        community_id: &str,
        user_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Account> {
        match Self::resident(conn, community_id, user_id)? {
            Some(account) => Ok(account),
            None => Self::open_new_resident(conn, community_id, user_id, now),
        }
    }

    /// Opens the account of a resident who has none.
    pub fn open_new_resident(
        conn: &mut DbConnection,
        community_id: &str,
        user_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Account> {
        let account = Account::new(community_id, AccountKind::Resident, Some(user_id), now);
        account.insert(conn)?;
        Ok(account)
    }

    fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(accounts::table).values(self).execute(conn).map(drop)
    }

    /// The user's membership of the community, with their resident account if it is open.
    pub fn membership_and_resident(
        conn: &mut DbConnection,
        community_id: &str,
        user_id: &str,
    ) -> QueryResult<Option<(Membership, Option<Account>)>> {
        crate::direct!(conn, |conn| members_with_resident_accounts(community_id)
            .filter(memberships::user_id.eq(user_id))
            .select((Membership::as_select(), Option::<Account>::as_select()))
            .first(conn)
            .optional())
    }

    /// [`Account::membership_and_resident`] of several users at once.
    pub fn memberships_and_residents(
        conn: &mut DbConnection,
        community_id: &str,
        user_ids: &[&str],
    ) -> QueryResult<Vec<(Membership, Option<Account>)>> {
        crate::direct!(conn, |conn| members_with_resident_accounts(community_id)
            .filter(memberships::user_id.eq_any(kept_in_list(user_ids)))
            .select((Membership::as_select(), Option::<Account>::as_select()))
            .keep_prepared()
            .load(conn))
    }

    pub fn resident(conn: &mut DbConnection, community_id: &str, user_id: &str) -> QueryResult<Option<Account>> {
        crate::direct!(conn, |conn| accounts::table
            .filter(accounts::community_id.eq(community_id))
            .filter(accounts::kind.eq(ResidentKind))
            .filter(accounts::user_id.eq(user_id))
            .select(Account::as_select())
            .first(conn)
            .optional())
    }

    pub fn system(conn: &mut DbConnection, community_id: &str, kind: AccountKind) -> QueryResult<Account> {
        crate::direct!(conn, |conn| accounts::table
            .filter(accounts::community_id.eq(community_id))
            // Implied by the kind, but the planner must read it to use `accounts_system`.
            .filter(accounts::kind.ne(ResidentKind))
            .filter(accounts::kind.eq(kind.as_str()))
            .select(Account::as_select())
            .first(conn))
    }

    pub fn find_all(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<Account>> {
        accounts::table.filter(accounts::id.eq_any(ids)).select(Account::as_select()).load(conn)
    }

    /// Moves a resident's held figure and lifetime spent (the points themselves move by postings).
    pub fn add_held_and_spent(conn: &mut DbConnection, id: &str, held: i64, spent: i64) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::update(accounts::table.find(id))
            .set((accounts::held.eq(accounts::held + held), accounts::spent.eq(accounts::spent + spent)))
            .returning(accounts::id)
            .keep_prepared()
            .execute(conn)
            .map(drop))
    }

    /// Adds to a balance (and the running totals). Never fails for lack of points.
    pub fn credit(conn: &mut DbConnection, id: &str, amount: i64, earned: i64, spent: i64) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::update(accounts::table.find(id))
            .set((
                accounts::balance.eq(accounts::balance + amount),
                accounts::earned.eq(accounts::earned + earned),
                accounts::spent.eq(accounts::spent + spent),
            ))
            .returning(accounts::id)
            .keep_prepared()
            .execute(conn)
            .map(drop))
    }

    /// Adds to many balances, as [`Account::credit`] does to one: `(account id, amount, earned)`,
    /// each account once. PostgreSQL takes them in one statement (its arrays keep the SQL the
    /// same for any number of accounts), saving a round trip and an executor start per
    /// account; SQLite has no round trips to save, so it runs the cached single UPDATE per account.
    pub fn credit_all(conn: &mut DbConnection, credits: &[(&str, i64, i64)]) -> QueryResult<()> {
        if credits.is_empty() {
            return Ok(());
        }
        match conn {
            DbConnection::Postgresql(pg) => {
                use diesel::sql_types::{Array, BigInt, Text};
                let ids: Vec<&str> = credits.iter().map(|(id, _, _)| *id).collect();
                let amounts: Vec<i64> = credits.iter().map(|(_, amount, _)| *amount).collect();
                let earned: Vec<i64> = credits.iter().map(|(_, _, earned)| *earned).collect();
                let query = diesel::sql_query(
                    "UPDATE accounts SET balance = accounts.balance + credit.amount, \
                     earned = accounts.earned + credit.earned \
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS credit (id, amount, earned) \
                     WHERE accounts.id = credit.id RETURNING accounts.id",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<BigInt>, _>(amounts)
                .bind::<Array<BigInt>, _>(earned);
                changed_all(query.keep_prepared().load(pg)?, credits.len(), "credits")
            }
            DbConnection::Sqlite(_) => {
                credits.iter().try_for_each(|(id, amount, earned)| Account::credit(conn, id, *amount, *earned, 0))
            }
        }
    }

    /// Takes from many resident balances, each only if it covers the amount, and adds to their
    /// held figures: `(account id, amount, held)`, each account once. For debits already checked
    /// in memory: one the balance does not cover is an error, not a refusal. One statement on
    /// PostgreSQL, as [`Account::credit_all`].
    pub fn debit_all(conn: &mut DbConnection, debits: &[(&str, i64, i64)]) -> QueryResult<()> {
        if debits.is_empty() {
            return Ok(());
        }
        match conn {
            DbConnection::Postgresql(pg) => {
                use diesel::sql_types::{Array, BigInt, Text};
                let ids: Vec<&str> = debits.iter().map(|(id, _, _)| *id).collect();
                let amounts: Vec<i64> = debits.iter().map(|(_, amount, _)| *amount).collect();
                let held: Vec<i64> = debits.iter().map(|(_, _, held)| *held).collect();
                let query = diesel::sql_query(
                    "UPDATE accounts SET balance = accounts.balance - debit.amount, held = accounts.held + debit.held \
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS debit (id, amount, held) \
                     WHERE accounts.id = debit.id AND accounts.balance >= debit.amount RETURNING accounts.id",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<BigInt>, _>(amounts)
                .bind::<Array<BigInt>, _>(held);
                changed_all(query.keep_prepared().load(pg)?, debits.len(), "debits")
            }
            DbConnection::Sqlite(_) => debits.iter().try_for_each(|(id, amount, held)| {
                if !Account::debit_if_covered(conn, id, *amount, 0, 0)? {
                    return changed_all(Vec::new(), 1, "debits");
                }
                if *held != 0 { Account::add_held_and_spent(conn, id, *held, 0) } else { Ok(()) }
            }),
        }
    }

    /// Takes `amount` from a balance only if it covers it: the check is in the
    /// UPDATE itself, so concurrent debits can never overdraw. False if refused.
    pub fn debit_if_covered(
        conn: &mut DbConnection,
        id: &str,
        amount: i64,
        earned: i64,
        spent: i64,
    ) -> QueryResult<bool> {
        let updated =
            crate::direct!(conn, |conn| diesel::update(accounts::table.find(id).filter(accounts::balance.ge(amount)))
                .set((
                    accounts::balance.eq(accounts::balance - amount),
                    accounts::earned.eq(accounts::earned + earned),
                    accounts::spent.eq(accounts::spent + spent),
                ))
                .returning(accounts::id)
                .keep_prepared()
                .execute(conn))?;
        Ok(updated == 1)
    }
}

/// The community's memberships, each with the member's resident account if it is open.
#[diesel::dsl::auto_type(no_type_alias)]
fn members_with_resident_accounts<'a>(community_id: &'a str) -> _ {
    memberships::table
        .left_join(
            accounts::table.on(accounts::community_id
                .eq(memberships::unit_id)
                .and(accounts::kind.eq(ResidentKind))
                .and(accounts::user_id.eq(memberships::user_id.nullable()))),
        )
        .filter(memberships::unit_id.eq(community_id))
}

/// An account's open lots in the order of the `lots_open` index: by expiry (a NULL expiry, a
/// lot that never expires, first on SQLite and last on PostgreSQL), then oldest first.
#[diesel::dsl::auto_type(no_type_alias)]
fn open_lots<'a>(account_id: &'a str) -> _ {
    lots::table.filter(lots::account_id.eq(account_id)).filter(lots::remaining.gt(NoPoints)).order((
        lots::expires_at.asc(),
        lots::earned_at.asc(),
        lots::id.asc(),
    ))
}

/// Proof that this transaction holds a community's ledger lock (see [`LedgerHead::lock`]),
/// with the chain's last link as of the latest write under it. Take one per community per
/// transaction: a second would not see the links the first one's writes added.
#[derive(Debug)]
pub struct LedgerLock {
    head: LedgerHead,
}

impl LedgerLock {
    pub fn community_id(&self) -> &str {
        &self.head.community_id
    }

    pub fn head(&self) -> &LedgerHead {
        &self.head
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ledger_heads)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LedgerHead {
    pub community_id: String,
    pub sequence: i64,
    pub hash: String,
}

impl LedgerHead {
    /// Takes the community's ledger lock and reads its chain head: PostgreSQL's row lock on
    /// the head, or SQLite's database lock, which `BEGIN IMMEDIATE` already holds. Every ledger
    /// write of a community takes it before its checks, which orders the writes and keeps the
    /// chain linear; [`post`] requires the returned token, so no write can forget it.
    ///
    /// [`post`]: crate::ledger::service::post
    pub fn lock(conn: &mut DbConnection, community_id: &str) -> QueryResult<LedgerLock> {
        let head = ledger_heads::table.find(community_id);
        let head = match conn {
            DbConnection::Postgresql(pg) => head.select(LedgerHead::as_select()).for_no_key_update().first(pg),
            DbConnection::Sqlite(sqlite) => head.select(LedgerHead::as_select()).first(sqlite),
        }
        .optional()?
        .ok_or_else(|| {
            // Every community gets its head when it is created: a missing one is a bug, not a 404.
            let missing = format!("community {community_id} has no ledger head");
            diesel::result::Error::QueryBuilderError(missing.into())
        })?;
        Ok(LedgerLock { head })
    }

    pub fn community_ids(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
        ledger_heads::table.select(ledger_heads::community_id).order(ledger_heads::community_id.asc()).load(conn)
    }

    pub fn read(conn: &mut DbConnection, community_id: &str) -> QueryResult<LedgerHead> {
        ledger_heads::table.find(community_id).select(LedgerHead::as_select()).first(conn)
    }

    /// Advances many communities' chain heads at once, as [`LedgerHead::advance`] does one:
    /// in one statement on PostgreSQL, one per community on SQLite (see [`Account::credit_all`]).
    pub fn advance_all(conn: &mut DbConnection, heads: Vec<(LedgerLock, LedgerHead)>) -> QueryResult<()> {
        match conn {
            DbConnection::Postgresql(pg) => {
                use diesel::sql_types::{Array, BigInt, Text};
                let expected = heads.len();
                let (communities, (sequences, hashes)): (Vec<String>, (Vec<i64>, Vec<String>)) =
                    heads.into_iter().map(|(lock, head)| (lock.head.community_id, (head.sequence, head.hash))).unzip();
                let query = diesel::sql_query(
                    "UPDATE ledger_heads SET sequence = head.sequence, hash = head.hash \
                     FROM unnest($1::text[], $2::bigint[], $3::text[]) AS head (community_id, sequence, hash) \
                     WHERE ledger_heads.community_id = head.community_id RETURNING ledger_heads.community_id AS id",
                )
                .bind::<Array<Text>, _>(communities)
                .bind::<Array<BigInt>, _>(sequences)
                .bind::<Array<Text>, _>(hashes);
                changed_all(query.keep_prepared().load(pg)?, expected, "chain heads")
            }
            DbConnection::Sqlite(_) => heads
                .into_iter()
                .try_for_each(|(mut lock, head)| LedgerHead::advance(conn, &mut lock, head.sequence, head.hash)),
        }
    }

    /// Makes `sequence` and `hash` the community's new chain head.
    pub fn advance(conn: &mut DbConnection, lock: &mut LedgerLock, sequence: i64, hash: String) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::update(ledger_heads::table.find(&lock.head.community_id))
            .set((ledger_heads::sequence.eq(sequence), ledger_heads::hash.eq(&hash)))
            .returning(ledger_heads::community_id)
            .keep_prepared()
            .execute(conn))?;
        lock.head.sequence = sequence;
        lock.head.hash = hash;
        Ok(())
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_transactions)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LedgerTransaction {
    pub id: String,
    pub community_id: String,
    pub sequence: i64,
    pub kind: String,
    pub rule_code: Option<String>,
    pub memo: String,
    /// None for what the system does by itself (expiry).
    pub actor_id: Option<String>,
    pub cause_type: Option<String>,
    pub cause_id: Option<String>,
    pub reverses_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub previous_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_postings)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Posting {
    pub transaction_id: String,
    pub line: i32,
    pub account_id: String,
    pub amount: i64,
}

/// Filters of the transaction list.
#[derive(Debug, Default)]
pub struct TransactionFilter {
    /// Only transactions with a posting on this account.
    pub account_id: Option<String>,
    pub kind: Option<TransactionKind>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

impl LedgerTransaction {
    /// How many transactions of each kind all communities hold.
    pub fn count_by_kind(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
        ledger_transactions::table
            .group_by(ledger_transactions::kind)
            .select((ledger_transactions::kind, diesel::dsl::count_star()))
            .load(conn)
    }

    pub fn insert(&self, conn: &mut DbConnection, postings: &[Posting]) -> QueryResult<()> {
        Self::insert_all(conn, std::slice::from_ref(self), postings)
    }

    /// Several transactions and all their postings, a statement for each table.
    pub fn insert_all(
        conn: &mut DbConnection,
        transactions: &[LedgerTransaction],
        postings: &[Posting],
    ) -> QueryResult<()> {
        crate::insert_all!(conn, ledger_transactions::table, transactions, ledger_transactions::id)?;
        crate::insert_all!(conn, ledger_postings::table, postings, ledger_postings::transaction_id).map(drop)
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<LedgerTransaction>> {
        ledger_transactions::table
            .find(id)
            .filter(ledger_transactions::community_id.eq(community_id))
            .select(LedgerTransaction::as_select())
            .first(conn)
            .optional()
    }

    /// The ids of the transactions reversing any of `ids`, as (reversed, reversal) pairs.
    pub fn reversals_of(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(String, String)>> {
        crate::direct!(conn, |conn| ledger_transactions::table
            .filter(ledger_transactions::reverses_id.eq_any(ids))
            .select((ledger_transactions::reverses_id.assume_not_null(), ledger_transactions::id))
            .load(conn))
    }

    /// How often a resident's account received (or paid) under a rule since a time,
    /// not counting transactions that were reversed.
    pub fn rule_uses(
        conn: &mut DbConnection,
        community_id: &str,
        account_id: &str,
        rule_code: &str,
        kind: TransactionKind,
        since: NaiveDateTime,
    ) -> QueryResult<i64> {
        let ids: Vec<String> = crate::direct!(conn, |conn| ledger_transactions::table
            .inner_join(ledger_postings::table)
            .filter(ledger_transactions::community_id.eq(community_id))
            .filter(ledger_postings::account_id.eq(account_id))
            .filter(ledger_transactions::rule_code.eq(rule_code))
            .filter(ledger_transactions::kind.eq(kind.as_str()))
            .filter(ledger_transactions::created_at.ge(since))
            .select(ledger_transactions::id)
            .load(conn))?;
        let reversed = Self::reversals_of(conn, &ids)?.len();
        Ok(i64::try_from(ids.len() - reversed).unwrap_or(i64::MAX))
    }

    /// Newest first, keyed by chain sequence.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        filter: &TransactionFilter,
        before_sequence: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<LedgerTransaction>> {
        crate::direct!(conn, |conn| {
            let mut query = ledger_transactions::table
                .filter(ledger_transactions::community_id.eq(community_id.to_owned()))
                .select(LedgerTransaction::as_select())
                .into_boxed();
            if let Some(account_id) = &filter.account_id {
                query = query.filter(
                    ledger_transactions::id.eq_any(
                        ledger_postings::table
                            .filter(ledger_postings::account_id.eq(account_id.clone()))
                            .select(ledger_postings::transaction_id),
                    ),
                );
            }
            if let Some(kind) = filter.kind {
                query = query.filter(ledger_transactions::kind.eq(kind.as_str()));
            }
            if let Some(from) = filter.from {
                query = query.filter(ledger_transactions::created_at.ge(from));
            }
            if let Some(to) = filter.to {
                query = query.filter(ledger_transactions::created_at.lt(to));
            }
            if let Some(before) = before_sequence {
                query = query.filter(ledger_transactions::sequence.lt(before));
            }
            query.order(ledger_transactions::sequence.desc()).limit(limit).load(conn)
        })
    }

    /// A run of the chain in sequence order, for verification.
    pub fn chain_segment(
        conn: &mut DbConnection,
        community_id: &str,
        after_sequence: i64,
        limit: i64,
    ) -> QueryResult<Vec<LedgerTransaction>> {
        ledger_transactions::table
            .filter(ledger_transactions::community_id.eq(community_id))
            .filter(ledger_transactions::sequence.gt(after_sequence))
            .order(ledger_transactions::sequence.asc())
            .limit(limit)
            .select(LedgerTransaction::as_select())
            .load(conn)
    }
}

impl Posting {
    /// The postings of the given transactions, each with its account, in line order.
    pub fn of_transactions(
        conn: &mut DbConnection,
        transaction_ids: &[String],
    ) -> QueryResult<Vec<(Posting, Account)>> {
        crate::direct!(conn, |conn| ledger_postings::table
            .inner_join(accounts::table)
            .filter(ledger_postings::transaction_id.eq_any(transaction_ids))
            .order((ledger_postings::transaction_id.asc(), ledger_postings::line.asc()))
            .select((Posting::as_select(), Account::as_select()))
            .load(conn))
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = lots)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Lot {
    pub id: String,
    pub account_id: String,
    pub transaction_id: String,
    pub amount: i64,
    pub remaining: i64,
    pub earned_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = lot_movements)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct LotMovement {
    pub transaction_id: String,
    pub lot_id: String,
    /// Positive: taken from the lot; negative: given back to it.
    pub amount: i64,
}

impl Lot {
    /// The lot of points a transaction credited to an account.
    pub fn new(
        account_id: &str,
        transaction: &LedgerTransaction,
        amount: i64,
        expires_at: Option<NaiveDateTime>,
    ) -> Self {
        Lot {
            id: new_id(),
            account_id: account_id.to_owned(),
            transaction_id: transaction.id.clone(),
            amount,
            remaining: amount,
            earned_at: transaction.created_at,
            expires_at,
        }
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::insert_into(lots::table).values(self).execute(conn)).map(drop)
    }

    pub fn insert_all(conn: &mut DbConnection, lots: &[Lot]) -> QueryResult<()> {
        if lots.is_empty() {
            return Ok(());
        }
        crate::insert_all!(conn, lots::table, lots, lots::id).map(drop)
    }

    /// The first `limit` of the account's lots with points left, in the order debits consume
    /// them: soonest expiry first, lots that never expire last, then oldest first.
    ///
    /// Read in the order of the `lots_open` index, so a debit reads only the lots it returns.
    /// PostgreSQL sorts a NULL expiry last, as debits do, and takes them in one query; SQLite
    /// sorts it first, so it reads the expiring lots, then the lasting ones.
    pub fn open(conn: &mut DbConnection, account_id: &str, limit: usize) -> QueryResult<Vec<Lot>> {
        let as_limit = |limit: usize| i64::try_from(limit).unwrap_or(i64::MAX);
        match conn {
            DbConnection::Postgresql(conn) => {
                open_lots(account_id).limit(as_limit(limit)).select(Lot::as_select()).load(conn)
            }
            DbConnection::Sqlite(conn) => {
                let mut lots: Vec<Lot> = open_lots(account_id)
                    .filter(lots::expires_at.is_not_null())
                    .limit(as_limit(limit))
                    .select(Lot::as_select())
                    .load(conn)?;
                if lots.len() < limit {
                    let lasting: Vec<Lot> = open_lots(account_id)
                        .filter(lots::expires_at.is_null())
                        .limit(as_limit(limit - lots.len()))
                        .select(Lot::as_select())
                        .load(conn)?;
                    lots.extend(lasting);
                }
                Ok(lots)
            }
        }
    }

    /// The open lots one transaction created.
    pub fn open_of_transaction(conn: &mut DbConnection, transaction_id: &str) -> QueryResult<Vec<Lot>> {
        lots::table
            .filter(lots::transaction_id.eq(transaction_id))
            .filter(lots::remaining.gt(NoPoints))
            .order(lots::id.asc())
            .select(Lot::as_select())
            .load(conn)
    }

    /// Lots of a community whose expiry has come and that still hold points.
    pub fn due(conn: &mut DbConnection, community_id: &str, now: NaiveDateTime) -> QueryResult<Vec<Lot>> {
        lots::table
            .inner_join(accounts::table)
            .filter(accounts::community_id.eq(community_id))
            .filter(lots::remaining.gt(NoPoints))
            .filter(lots::expires_at.le(now))
            .order((lots::account_id.asc(), lots::expires_at.asc(), lots::id.asc()))
            .select(Lot::as_select())
            .load(conn)
    }

    pub fn communities_with_due_lots(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<String>> {
        lots::table
            .inner_join(accounts::table)
            .filter(lots::remaining.gt(NoPoints))
            .filter(lots::expires_at.le(now))
            .select(accounts::community_id)
            .distinct()
            .load(conn)
    }

    /// Points left in the account's lots expiring within the window, by expiry time.
    pub fn expiring(
        conn: &mut DbConnection,
        account_id: &str,
        from: NaiveDateTime,
        until: NaiveDateTime,
    ) -> QueryResult<Vec<(NaiveDateTime, i64)>> {
        let lots: Vec<(Option<NaiveDateTime>, i64)> = crate::direct!(conn, |conn| lots::table
            .filter(lots::account_id.eq(account_id))
            .filter(lots::remaining.gt(NoPoints))
            .filter(lots::expires_at.gt(from))
            .filter(lots::expires_at.le(until))
            .order(lots::expires_at.asc())
            .select((lots::expires_at, lots::remaining))
            .load(conn))?;
        let mut by_time: Vec<(NaiveDateTime, i64)> = Vec::new();
        for (expires_at, remaining) in lots {
            let Some(expires_at) = expires_at else { continue };
            match by_time.last_mut() {
                Some((time, points)) if *time == expires_at => *points += remaining,
                _ => by_time.push((expires_at, remaining)),
            }
        }
        Ok(by_time)
    }

    /// Takes points from a lot; the guard keeps `remaining` from going negative.
    pub fn take(conn: &mut DbConnection, id: &str, amount: i64) -> QueryResult<bool> {
        let updated =
            crate::direct!(conn, |conn| diesel::update(lots::table.find(id).filter(lots::remaining.ge(amount)))
                .set(lots::remaining.eq(lots::remaining - amount))
                .returning(lots::id)
                .keep_prepared()
                .execute(conn))?;
        Ok(updated == 1)
    }

    /// Takes points from many lots, `(lot id, points)`, each lot once, as [`Lot::take`] from one:
    /// for takes already checked in memory, so a lot without the points is an error. One
    /// statement on PostgreSQL, as [`Account::credit_all`].
    pub fn take_all(conn: &mut DbConnection, taken: &[(&str, i64)]) -> QueryResult<()> {
        if taken.is_empty() {
            return Ok(());
        }
        match conn {
            DbConnection::Postgresql(pg) => {
                use diesel::sql_types::{Array, BigInt, Text};
                let (ids, amounts): (Vec<&str>, Vec<i64>) = taken.iter().copied().unzip();
                let query = diesel::sql_query(
                    "UPDATE lots SET remaining = lots.remaining - taken.amount \
                     FROM unnest($1::text[], $2::bigint[]) AS taken (id, amount) \
                     WHERE lots.id = taken.id AND lots.remaining >= taken.amount RETURNING lots.id",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<BigInt>, _>(amounts);
                changed_all(query.keep_prepared().load(pg)?, taken.len(), "lots taken from")
            }
            DbConnection::Sqlite(_) => taken.iter().try_for_each(|(id, amount)| {
                if Lot::take(conn, id, *amount)? { Ok(()) } else { changed_all(Vec::new(), 1, "lots taken from") }
            }),
        }
    }

    /// Gives points back to the lot they were taken from.
    pub fn give_back(conn: &mut DbConnection, id: &str, amount: i64) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::update(lots::table.find(id))
            .set(lots::remaining.eq(lots::remaining + amount))
            .returning(lots::id)
            .keep_prepared()
            .execute(conn)
            .map(drop))
    }
}

impl LotMovement {
    pub fn insert_all(conn: &mut DbConnection, movements: &[LotMovement]) -> QueryResult<()> {
        if movements.is_empty() {
            return Ok(());
        }
        crate::insert_all!(conn, lot_movements::table, movements, lot_movements::lot_id).map(drop)
    }

    pub fn of_transaction(conn: &mut DbConnection, transaction_id: &str) -> QueryResult<Vec<LotMovement>> {
        lot_movements::table
            .filter(lot_movements::transaction_id.eq(transaction_id))
            .select(LotMovement::as_select())
            .load(conn)
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryFragment;

    use super::*;

    #[test]
    fn spelled_out_resident_kind_is_the_resident_kind() {
        assert_eq!(ResidentKind::SQL, format!("'{}'", AccountKind::Resident.as_str()));
    }

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    /// How SQLite would run `query`, a step a line (`EXPLAIN QUERY PLAN`).
    fn plan(conn: &mut diesel::SqliteConnection, query: impl QueryFragment<diesel::sqlite::Sqlite>) -> String {
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
        let sql = sql.split(" -- binds:").next().expect("the statement");
        let steps: Vec<PlanStep> =
            diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn).expect("a query plan");
        steps.into_iter().map(|step| step.detail).collect::<Vec<_>>().join("\n")
    }

    /// A debit reads an account's first open lots in the index's order; sorting them would cost
    /// every debit all of the account's open lots, however few it takes.
    #[test]
    fn debits_read_open_lots_without_sorting_them() {
        let (_dir, db) = crate::db::migrated_sqlite();
        db.write_blocking(|conn| -> anyhow::Result<()> {
            let DbConnection::Sqlite(conn) = conn else { unreachable!("a SQLite database") };
            for query in [
                plan(conn, open_lots("account").filter(lots::expires_at.is_not_null()).limit(32)),
                plan(conn, open_lots("account").filter(lots::expires_at.is_null()).limit(32)),
            ] {
                assert!(query.contains("USING INDEX lots_open"), "{query}");
                assert!(!query.contains("TEMP B-TREE"), "{query}");
            }
            Ok(())
        })
        .expect("query plans");
    }
}
