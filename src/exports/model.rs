//! The rows of the CSV exports and their streaming queries. Each query hands its rows
//! over one at a time (see [`for_each_row`]); none collects a result in memory.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    accounts, activities, activity_registrations, ledger_heads, ledger_postings, ledger_transactions, redemptions,
    rewards, units, users,
};
use crate::db::{DbConnection, for_each_row};
use crate::ledger::model::{LedgerHead, LedgerTransaction};
use crate::units::model::{Unit, UnitKind};

/// A time range over stored (UTC) times: from inclusive, until exclusive.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    pub from: NaiveDateTime,
    pub until: NaiveDateTime,
}

/// One posting of a ledger transaction.
#[derive(Debug, Queryable)]
pub struct LedgerRow {
    pub transaction: LedgerTransaction,
    pub line: i32,
    pub account_id: String,
    pub amount: i64,
}

/// Who is who in one community's ledger, read once before its rows: a community has a few
/// hundred accounts and people, its ledger millions of postings, and joining them to every
/// posting would cost the export most of its speed.
pub struct LedgerParties {
    /// Account id → (kind, holding resident's id; None for system accounts).
    accounts: HashMap<String, (String, Option<String>)>,
    /// User id → display name, for the account holders and the actors.
    names: HashMap<String, String>,
}

impl LedgerParties {
    pub fn read(conn: &mut DbConnection, community_id: &str) -> QueryResult<Self> {
        let accounts: HashMap<String, (String, Option<String>)> = accounts::table
            .filter(accounts::community_id.eq(community_id.to_owned()))
            .select((accounts::id, accounts::kind, accounts::user_id))
            .load::<(String, String, Option<String>)>(conn)?
            .into_iter()
            .map(|(id, kind, holder)| (id, (kind, holder)))
            .collect();
        // The actors first, as a short list: under an OR, PostgreSQL would compare every
        // user with every transaction.
        let mut people: Vec<String> = ledger_transactions::table
            .filter(ledger_transactions::community_id.eq(community_id.to_owned()))
            .select(ledger_transactions::actor_id.assume_not_null())
            .filter(ledger_transactions::actor_id.is_not_null())
            .distinct()
            .load(conn)?;
        people.extend(accounts.values().filter_map(|(_, holder)| holder.clone()));
        people.sort_unstable();
        people.dedup();
        let mut names = HashMap::new();
        // Within both backends' limits on bound parameters.
        for some in people.chunks(10_000) {
            names.extend(
                users::table
                    .filter(users::id.eq_any(some))
                    .select((users::id, users::display_name))
                    .load::<(String, String)>(conn)?,
            );
        }
        Ok(LedgerParties { accounts, names })
    }

    /// The account's kind and its holder's id, if it has one; None for an account of
    /// another community, which a posting of this community must never touch.
    pub fn account(&self, account_id: &str) -> Option<(&str, Option<&str>)> {
        self.accounts.get(account_id).map(|(kind, holder)| (kind.as_str(), holder.as_deref()))
    }

    pub fn name(&self, user_id: Option<&str>) -> Option<&str> {
        user_id.and_then(|id| self.names.get(id)).map(String::as_str)
    }
}

/// An order in the points shop, without its pickup code.
#[derive(Debug, Queryable)]
pub struct RedemptionRow {
    pub id: String,
    pub created_at: NaiveDateTime,
    pub user_id: String,
    pub user_name: String,
    pub reward_id: String,
    pub reward_name: String,
    pub quantity: i32,
    pub points: i64,
    pub status: String,
    pub ordered_by: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<NaiveDateTime>,
    pub hold_transaction_id: String,
    pub settle_transaction_id: Option<String>,
}

/// A resident's registration for an activity.
#[derive(Debug, Queryable)]
pub struct ParticipationRow {
    pub activity_id: String,
    pub title: String,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub points: i64,
    pub status: String,
    pub user_id: String,
    pub user_name: String,
    pub registered_at: NaiveDateTime,
    pub checked_in_at: Option<NaiveDateTime>,
    pub check_in_method: Option<String>,
}

/// The communities at or below a unit, with their chain heads, in path order (grouped by street).
pub fn communities_within(conn: &mut DbConnection, unit: &Unit) -> QueryResult<Vec<(Unit, LedgerHead)>> {
    units::table
        .inner_join(ledger_heads::table.on(ledger_heads::community_id.eq(units::id)))
        .filter(units::kind.eq(UnitKind::Community.as_str()))
        // Paths hold only UUIDs and slashes: nothing to escape.
        .filter(units::path.like(format!("{}%", unit.path)))
        .order(units::path.asc())
        .select((Unit::as_select(), LedgerHead::as_select()))
        .load(conn)
}

/// The postings of a community's transactions up to `head_sequence` created within `range`,
/// in chain order (sequence, then line), which the indexes give without sorting.
pub fn each_ledger_row<E>(
    conn: &mut DbConnection,
    community_id: &str,
    head_sequence: i64,
    range: TimeRange,
    each: impl FnMut(LedgerRow) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<diesel::result::Error>,
{
    let query = ledger_postings::table
        .inner_join(ledger_transactions::table)
        .filter(ledger_transactions::community_id.eq(community_id.to_owned()))
        .filter(ledger_transactions::sequence.le(head_sequence))
        .filter(ledger_transactions::created_at.ge(range.from))
        .filter(ledger_transactions::created_at.lt(range.until))
        .order((ledger_transactions::sequence.asc(), ledger_postings::line.asc()))
        .select((
            // Not `as_select()`: that is typed for one backend, and this query serves both.
            ledger_transactions::all_columns,
            ledger_postings::line,
            ledger_postings::account_id,
            ledger_postings::amount,
        ));
    for_each_row(conn, query, each)
}

/// A community's orders created within `range`, oldest first.
pub fn each_redemption_row<E>(
    conn: &mut DbConnection,
    community_id: &str,
    range: TimeRange,
    each: impl FnMut(RedemptionRow) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<diesel::result::Error>,
{
    let query = redemptions::table
        .inner_join(rewards::table)
        .inner_join(users::table.on(users::id.eq(redemptions::user_id)))
        .filter(redemptions::community_id.eq(community_id.to_owned()))
        .filter(redemptions::created_at.ge(range.from))
        .filter(redemptions::created_at.lt(range.until))
        .order((redemptions::created_at.asc(), redemptions::id.asc()))
        .select((
            redemptions::id,
            redemptions::created_at,
            redemptions::user_id,
            users::display_name,
            redemptions::reward_id,
            rewards::name,
            redemptions::quantity,
            redemptions::points,
            redemptions::status,
            redemptions::ordered_by,
            redemptions::resolved_by,
            redemptions::resolved_at,
            redemptions::hold_transaction_id,
            redemptions::settle_transaction_id,
        ));
    for_each_row(conn, query, each)
}

/// A community's activity registrations made within `range`, by activity start, then sign-up time.
pub fn each_participation_row<E>(
    conn: &mut DbConnection,
    community_id: &str,
    range: TimeRange,
    each: impl FnMut(ParticipationRow) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<diesel::result::Error>,
{
    let query = activity_registrations::table
        .inner_join(activities::table)
        .inner_join(users::table)
        .filter(activities::community_id.eq(community_id.to_owned()))
        .filter(activity_registrations::registered_at.ge(range.from))
        .filter(activity_registrations::registered_at.lt(range.until))
        .order((
            activities::starts_at.asc(),
            activities::id.asc(),
            activity_registrations::registered_at.asc(),
            activity_registrations::user_id.asc(),
        ))
        .select((
            activities::id,
            activities::title,
            activities::starts_at,
            activities::ends_at,
            activities::points,
            activities::status,
            activity_registrations::user_id,
            users::display_name,
            activity_registrations::registered_at,
            activity_registrations::checked_in_at,
            activity_registrations::check_in_method,
        ));
    for_each_row(conn, query, each)
}
