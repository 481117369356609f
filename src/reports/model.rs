//! Reports: the rows they read from the ledger, activities, claims and the points shop.
//! Every query reads a whole period at once (grouped in SQL, or as minimal rows the
//! service puts into buckets), never one query per bucket.

use chrono::NaiveDateTime;
use diesel::dsl::{self, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::activities::model::ActivityStatus;
use crate::claims::model::ClaimStatus;
use crate::db::DbConnection;
use crate::db::schema::{
    accounts, activities, activity_registrations, claims, ledger_postings, ledger_transactions, memberships,
    redemptions, rewards, rules, units, users,
};
use crate::ledger::model::{AccountKind, ResidentKind, TransactionKind};
use crate::redemptions::model::RedemptionStatus;
use crate::units::model::{MembershipStatus, Unit, UnitKind};

/// A span of time in UTC: from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
}

/// The system accounts points leave the residents' hands for, or come from. Every ledger
/// transaction balances, so what these accounts receive is exactly what residents (with
/// their held points) lose: the liability is minus their total.
const OUTSIDE_ACCOUNTS: [AccountKind; 4] =
    [AccountKind::Issuance, AccountKind::Penalty, AccountKind::Expiry, AccountKind::Redemption];

fn outside_account_kinds() -> Vec<&'static str> {
    OUTSIDE_ACCOUNTS.iter().map(|kind| kind.as_str()).collect()
}

/// PostgreSQL's SUM of a BIGINT is a NUMERIC; the cast makes it a BIGINT on both backends.
fn sum_of_amounts() -> diesel::expression::SqlLiteral<BigInt> {
    sql::<BigInt>("CAST(COALESCE(SUM(ledger_postings.amount), 0) AS BIGINT)")
}

/// Postings with their transaction and account, of the communities' transactions made before `until`.
#[dsl::auto_type(no_type_alias)]
fn postings_before<'a>(community_ids: &'a [String], until: NaiveDateTime) -> _ {
    ledger_postings::table
        .inner_join(ledger_transactions::table)
        .inner_join(accounts::table)
        .filter(ledger_transactions::community_id.eq_any(community_ids))
        .filter(ledger_transactions::created_at.lt(until))
}

/// Per resident of the communities (user id), the net points of the transactions of `kind`
/// (awards or deductions) in the window, less the reversals of such transactions made in
/// the window (whenever the reversed transaction was made).
pub fn resident_net(
    conn: &mut DbConnection,
    community_ids: &[String],
    kind: TransactionKind,
    window: Window,
) -> QueryResult<Vec<(String, i64)>> {
    // The reversed transactions, under another name: the outer query reads the same table.
    let reversed = diesel::alias!(ledger_transactions as reversed);
    let of_kind = reversed
        .filter(reversed.field(ledger_transactions::kind).eq(kind.as_str()))
        .filter(reversed.field(ledger_transactions::community_id).eq_any(community_ids))
        .select(reversed.field(ledger_transactions::id).nullable());
    postings_before(community_ids, window.to)
        .filter(ledger_transactions::created_at.ge(window.from))
        .filter(accounts::kind.eq(ResidentKind))
        .filter(
            ledger_transactions::kind.eq(kind.as_str()).or(ledger_transactions::kind
                .eq(TransactionKind::Reversal.as_str())
                .and(ledger_transactions::reverses_id.eq_any(of_kind))),
        )
        .group_by(accounts::user_id)
        .select((accounts::user_id.assume_not_null(), sum_of_amounts()))
        .load(conn)
}

/// A resident who ever held points in a community, as a leaderboard shows them.
#[derive(Debug, Clone, Queryable)]
pub struct Entrant {
    pub user_id: String,
    pub display_name: String,
    pub show_on_leaderboard: bool,
    /// From their membership of the community, if they still have one.
    pub compound: Option<String>,
    pub building: Option<String>,
}

impl Entrant {
    /// Everyone with a resident account in the community.
    pub fn of_community(conn: &mut DbConnection, community_id: &str) -> QueryResult<Vec<Entrant>> {
        accounts::table
            .inner_join(users::table)
            .left_join(
                memberships::table
                    .on(memberships::user_id.eq(users::id).and(memberships::unit_id.eq(community_id.to_owned()))),
            )
            .filter(accounts::community_id.eq(community_id))
            .filter(accounts::kind.eq(ResidentKind))
            .select((
                users::id,
                users::display_name,
                users::show_on_leaderboard,
                memberships::household_compound.nullable(),
                memberships::household_building.nullable(),
            ))
            .load(conn)
    }
}

/// (compound, building) of each active resident of the community.
pub fn active_households(
    conn: &mut DbConnection,
    community_id: &str,
) -> QueryResult<Vec<(Option<String>, Option<String>)>> {
    memberships::table
        .filter(memberships::unit_id.eq(community_id))
        .filter(memberships::is_resident.eq(true))
        .filter(memberships::status.eq(MembershipStatus::Active.as_str()))
        .select((memberships::household_compound, memberships::household_building))
        .load(conn)
}

/// The communities at or below a unit.
pub fn communities_within(conn: &mut DbConnection, unit: &Unit) -> QueryResult<Vec<Unit>> {
    // Paths hold only UUIDs and slashes: nothing to escape in the pattern.
    units::table
        .filter(units::kind.eq(UnitKind::Community.as_str()))
        .filter(units::path.like(format!("{}%", unit.path)))
        .order(units::id.asc())
        .select(Unit::as_select())
        .load(conn)
}

/// A posting on one of the [`OUTSIDE_ACCOUNTS`]: one per award, deduction, reversal,
/// expiry and handover (holds and refunds move points only between a resident and the hold account).
#[derive(Debug, Clone, Queryable)]
pub struct OutsideLeg {
    pub at: NaiveDateTime,
    pub account_kind: String,
    pub amount: i64,
    pub community_id: String,
    pub rule_code: Option<String>,
}

impl OutsideLeg {
    pub fn account_kind(&self) -> Option<AccountKind> {
        AccountKind::parse(&self.account_kind)
    }

    pub fn in_window(
        conn: &mut DbConnection,
        community_ids: &[String],
        window: Window,
    ) -> QueryResult<Vec<OutsideLeg>> {
        ledger_postings::table
            .inner_join(ledger_transactions::table)
            .inner_join(accounts::table)
            .filter(ledger_transactions::community_id.eq_any(community_ids))
            .filter(ledger_transactions::created_at.ge(window.from))
            .filter(ledger_transactions::created_at.lt(window.to))
            .filter(accounts::kind.eq_any(outside_account_kinds()))
            .select((
                ledger_transactions::created_at,
                accounts::kind,
                ledger_postings::amount,
                ledger_transactions::community_id,
                ledger_transactions::rule_code,
            ))
            .load(conn)
    }

    /// The residents' points, held ones included, at an instant: minus what the outside accounts had then.
    pub fn liability_at(conn: &mut DbConnection, community_ids: &[String], at: NaiveDateTime) -> QueryResult<i64> {
        let outside: i64 = postings_before(community_ids, at)
            .filter(accounts::kind.eq_any(outside_account_kinds()))
            .select(sum_of_amounts())
            .get_result(conn)?;
        Ok(-outside)
    }
}

/// (time, user id) of every ledger transaction on a resident's account in the window,
/// except expiries (the system's doing, not the resident's).
pub fn resident_transactions(
    conn: &mut DbConnection,
    community_ids: &[String],
    window: Window,
) -> QueryResult<Vec<(NaiveDateTime, String)>> {
    postings_before(community_ids, window.to)
        .filter(ledger_transactions::created_at.ge(window.from))
        .filter(ledger_transactions::kind.ne(TransactionKind::Expiry.as_str()))
        .filter(accounts::kind.eq(ResidentKind))
        .select((ledger_transactions::created_at, accounts::user_id.assume_not_null()))
        .load(conn)
}

/// (time, user id) of every activity check-in in the window.
pub fn check_ins(
    conn: &mut DbConnection,
    community_ids: &[String],
    window: Window,
) -> QueryResult<Vec<(NaiveDateTime, String)>> {
    activity_registrations::table
        .inner_join(activities::table)
        .filter(activities::community_id.eq_any(community_ids))
        .filter(activity_registrations::checked_in_at.ge(window.from))
        .filter(activity_registrations::checked_in_at.lt(window.to))
        .select((activity_registrations::checked_in_at.assume_not_null(), activity_registrations::user_id))
        .load(conn)
}

/// The end times of the completed activities that ended in the window.
pub fn completed_activities(
    conn: &mut DbConnection,
    community_ids: &[String],
    window: Window,
) -> QueryResult<Vec<NaiveDateTime>> {
    activities::table
        .filter(activities::community_id.eq_any(community_ids))
        .filter(activities::status.eq(ActivityStatus::Completed.as_str()))
        .filter(activities::ends_at.ge(window.from))
        .filter(activities::ends_at.lt(window.to))
        .select(activities::ends_at)
        .load(conn)
}

/// (decision time, status) of the claims approved or rejected in the window.
pub fn claim_decisions(
    conn: &mut DbConnection,
    community_ids: &[String],
    window: Window,
) -> QueryResult<Vec<(NaiveDateTime, String)>> {
    claims::table
        .filter(claims::community_id.eq_any(community_ids))
        .filter(claims::status.eq_any([ClaimStatus::Approved.as_str(), ClaimStatus::Rejected.as_str()]))
        .filter(claims::decided_at.ge(window.from))
        .filter(claims::decided_at.lt(window.to))
        .select((claims::decided_at.assume_not_null(), claims::status))
        .load(conn)
}

/// An order handed over in the window.
#[derive(Debug, Clone, Queryable)]
pub struct Handover {
    pub community_id: String,
    pub reward_id: String,
    pub reward_name: String,
    pub quantity: i32,
    pub points: i64,
}

impl Handover {
    pub fn in_window(conn: &mut DbConnection, community_ids: &[String], window: Window) -> QueryResult<Vec<Handover>> {
        redemptions::table
            .inner_join(rewards::table)
            .filter(redemptions::community_id.eq_any(community_ids))
            .filter(redemptions::status.eq(RedemptionStatus::Fulfilled.as_str()))
            .filter(redemptions::resolved_at.ge(window.from))
            .filter(redemptions::resolved_at.lt(window.to))
            .select((
                redemptions::community_id,
                redemptions::reward_id,
                rewards::name,
                redemptions::quantity,
                redemptions::points,
            ))
            .load(conn)
    }
}

/// (community id, code, name) of the rules of the communities.
pub fn rule_names(conn: &mut DbConnection, community_ids: &[String]) -> QueryResult<Vec<(String, String, String)>> {
    rules::table
        .filter(rules::community_id.eq_any(community_ids))
        .select((rules::community_id, rules::code, rules::name))
        .load(conn)
}
