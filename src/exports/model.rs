//! The rows of the CSV exports and their streaming queries. Each query hands its rows
//! over one at a time (see [`for_each_row`]); none collects a result in memory.

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

diesel::alias!(users as holders: Holders);

/// One posting of a ledger transaction, with what an auditor needs beside it.
#[derive(Debug, Queryable)]
pub struct LedgerRow {
    pub transaction: LedgerTransaction,
    pub line: i32,
    pub account_id: String,
    pub account_kind: String,
    /// The resident holding the account; None for system accounts.
    pub holder_id: Option<String>,
    pub holder_name: Option<String>,
    pub actor_name: Option<String>,
    pub amount: i64,
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
/// in chain order (sequence, then line).
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
        .inner_join(accounts::table)
        .left_join(users::table.on(ledger_transactions::actor_id.eq(users::id.nullable())))
        .left_join(holders.on(accounts::user_id.eq(holders.field(users::id).nullable())))
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
            accounts::kind,
            accounts::user_id,
            holders.field(users::display_name).nullable(),
            users::display_name.nullable(),
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
