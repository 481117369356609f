//! Orders in the points shop: rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{redemptions, rewards, units};
use crate::db::{DbConnection, KeepPreparedDsl, MAX_KEPT_ROWS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedemptionStatus {
    /// Ordered; the points are held until the handover.
    Pending,
    /// Handed over; the points are spent.
    Fulfilled,
    /// Cancelled; the points and the stock went back.
    Cancelled,
}

impl RedemptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionStatus::Pending => "pending",
            RedemptionStatus::Fulfilled => "fulfilled",
            RedemptionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RedemptionStatus::Pending, RedemptionStatus::Fulfilled, RedemptionStatus::Cancelled]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = redemptions)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Redemption {
    pub id: String,
    pub community_id: String,
    pub user_id: String,
    pub reward_id: String,
    pub quantity: i32,
    pub points: i64,
    pub status: String,
    pub pickup_code: String,
    pub ordered_by: String,
    pub hold_transaction_id: String,
    pub settle_transaction_id: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    /// Wrong pickup codes tried in a row.
    pub pickup_failures: i32,
    pub pickup_locked_until: Option<NaiveDateTime>,
}

/// Wrong pickup codes in a row before the handover of an order is locked.
pub const MAX_PICKUP_FAILURES: i32 = 5;

#[derive(Debug, Default)]
pub struct RedemptionFilter {
    pub user_id: Option<String>,
    pub status: Option<RedemptionStatus>,
    pub reward_id: Option<String>,
    pub pickup_code: Option<String>,
}

impl Redemption {
    pub fn status(&self) -> RedemptionStatus {
        RedemptionStatus::parse(&self.status).unwrap_or(RedemptionStatus::Pending)
    }

    /// Inserts the order unless its community has an order with its pickup code already; whether it did.
    pub fn insert_unless_code_taken(&self, conn: &mut DbConnection) -> QueryResult<bool> {
        let inserted = crate::direct!(conn, |conn| diesel::insert_into(redemptions::table)
            .values(self)
            .on_conflict((redemptions::community_id, redemptions::pickup_code))
            .do_nothing()
            .returning(redemptions::id)
            .keep_prepared()
            .execute(conn))?;
        Ok(inserted == 1)
    }

    /// Inserts the orders, but those whose pickup code their community has already (or one of
    /// them before); how many it inserted. One statement on PostgreSQL, as `insert_all!`.
    pub fn insert_all_unless_code_taken(conn: &mut DbConnection, orders: &[Redemption]) -> QueryResult<usize> {
        match conn {
            DbConnection::Postgresql(pg) if !orders.is_empty() => {
                let insert = diesel::insert_into(redemptions::table)
                    .values(orders)
                    .on_conflict((redemptions::community_id, redemptions::pickup_code))
                    .do_nothing()
                    .returning(redemptions::id);
                if orders.len() <= MAX_KEPT_ROWS {
                    insert.keep_prepared().execute(pg)
                } else {
                    insert.load::<String>(pg).map(|ids| ids.len())
                }
            }
            _ => orders
                .iter()
                .try_fold(0, |inserted, order| Ok(inserted + usize::from(order.insert_unless_code_taken(conn)?))),
        }
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<Redemption>> {
        redemptions::table
            .find(id)
            .filter(redemptions::community_id.eq(community_id))
            .select(Redemption::as_select())
            .first(conn)
            .optional()
    }

    /// Counts a wrong pickup code; the fifth in a row locks the order's handover for a while.
    pub fn record_pickup_failure(conn: &mut DbConnection, id: &str, lock_until: NaiveDateTime) -> QueryResult<()> {
        diesel::update(redemptions::table.find(id))
            .set(redemptions::pickup_failures.eq(redemptions::pickup_failures + 1))
            .returning(redemptions::id)
            .keep_prepared()
            .execute(conn)?;
        diesel::update(redemptions::table.find(id).filter(redemptions::pickup_failures.ge(MAX_PICKUP_FAILURES)))
            .set((redemptions::pickup_failures.eq(0), redemptions::pickup_locked_until.eq(lock_until)))
            .returning(redemptions::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    /// Items of a reward a resident ordered since a time, not counting cancelled orders.
    pub fn quantity_since(
        conn: &mut DbConnection,
        user_id: &str,
        reward_id: &str,
        since: NaiveDateTime,
    ) -> QueryResult<i64> {
        let quantities: Vec<i32> = crate::direct!(conn, |conn| redemptions::table
            .filter(redemptions::user_id.eq(user_id))
            .filter(redemptions::reward_id.eq(reward_id))
            .filter(redemptions::created_at.ge(since))
            .filter(redemptions::status.ne(RedemptionStatus::Cancelled.as_str()))
            .select(redemptions::quantity)
            .load(conn))?;
        Ok(quantities.into_iter().map(i64::from).sum())
    }

    /// Resolves a pending order; false if it was resolved first.
    pub fn resolve(
        conn: &mut DbConnection,
        id: &str,
        status: RedemptionStatus,
        settle_transaction_id: &str,
        resolved_by: Option<&str>,
        at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            redemptions::table.find(id).filter(redemptions::status.eq(RedemptionStatus::Pending.as_str())),
        )
        .set((
            redemptions::status.eq(status.as_str()),
            redemptions::settle_transaction_id.eq(settle_transaction_id),
            redemptions::resolved_by.eq(resolved_by),
            redemptions::resolved_at.eq(at),
        ))
        .returning(redemptions::id)
        .keep_prepared()
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Pending orders older than their community's pickup window.
    pub fn overdue(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<Redemption>> {
        let candidates: Vec<(Redemption, Option<i32>)> = redemptions::table
            .inner_join(units::table.on(units::id.eq(redemptions::community_id)))
            .filter(redemptions::status.eq(RedemptionStatus::Pending.as_str()))
            .filter(redemptions::created_at.lt(now - chrono::Duration::days(1)))
            .select((Redemption::as_select(), units::pickup_window_days))
            .load(conn)?;
        Ok(candidates
            .into_iter()
            .filter(|(redemption, days)| {
                redemption.created_at + chrono::Duration::days(i64::from(days.unwrap_or(14))) <= now
            })
            .map(|(redemption, _)| redemption)
            .collect())
    }

    /// Oldest first, with each order's reward name.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        filter: &RedemptionFilter,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(Redemption, String)>> {
        let mut query = redemptions::table
            .inner_join(rewards::table)
            .filter(redemptions::community_id.eq(community_id.to_owned()))
            .select((Redemption::as_select(), rewards::name))
            .into_boxed();
        if let Some(user_id) = &filter.user_id {
            query = query.filter(redemptions::user_id.eq(user_id.clone()));
        }
        if let Some(status) = filter.status {
            query = query.filter(redemptions::status.eq(status.as_str()));
        }
        if let Some(reward_id) = &filter.reward_id {
            query = query.filter(redemptions::reward_id.eq(reward_id.clone()));
        }
        if let Some(code) = &filter.pickup_code {
            query = query.filter(redemptions::pickup_code.eq(code.clone()));
        }
        if let Some(after) = after {
            query = query.filter(redemptions::id.gt(after.to_owned()));
        }
        query.order(redemptions::id.asc()).limit(limit).load(conn)
    }
}
