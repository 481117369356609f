//! The points shop's catalogue: rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::rewards;
use crate::db::{DbConnection, KeepPreparedDsl, changed_all, kept_in_list};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    Day,
    Week,
    Month,
    Year,
}

impl LimitPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitPeriod::Day => "day",
            LimitPeriod::Week => "week",
            LimitPeriod::Month => "month",
            LimitPeriod::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [LimitPeriod::Day, LimitPeriod::Week, LimitPeriod::Month, LimitPeriod::Year]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rewards)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Reward {
    pub id: String,
    pub community_id: String,
    pub name: String,
    pub description: String,
    pub image_url: Option<String>,
    pub cost: i64,
    pub stock: Option<i32>,
    pub limit_per_resident: Option<i32>,
    pub limit_period: Option<String>,
    pub available_from: Option<NaiveDateTime>,
    pub available_until: Option<NaiveDateTime>,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = rewards)]
pub struct RewardChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub image_url: Option<Option<String>>,
    pub cost: Option<i64>,
    pub stock: Option<Option<i32>>,
    pub limit_per_resident: Option<Option<i32>>,
    pub limit_period: Option<Option<String>>,
    pub available_from: Option<Option<NaiveDateTime>>,
    pub available_until: Option<Option<NaiveDateTime>>,
    pub active: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

impl Reward {
    pub fn limit_period(&self) -> Option<LimitPeriod> {
        self.limit_period.as_deref().and_then(LimitPeriod::parse)
    }

    /// Whether residents can see and order it now.
    pub fn is_on_offer(&self, now: NaiveDateTime) -> bool {
        self.active
            && self.available_from.is_none_or(|from| from <= now)
            && self.available_until.is_none_or(|until| now < until)
    }

    /// Takes items from the stock if enough are left, in one guarded UPDATE (unlimited
    /// stock stays NULL); false if not enough are left.
    pub fn take_stock(conn: &mut DbConnection, id: &str, quantity: i32) -> QueryResult<bool> {
        let taken = crate::direct!(conn, |conn| diesel::update(
            rewards::table.find(id).filter(rewards::stock.is_null().or(rewards::stock.ge(quantity)))
        )
        .set(rewards::stock.eq(rewards::stock - quantity))
        .returning(rewards::id)
        .keep_prepared()
        .execute(conn))?;
        Ok(taken == 1)
    }

    /// Takes items from many rewards' stock, `(reward id, items)`, each reward once, as
    /// [`Reward::take_stock`] from one: for takes already checked in memory, so a stock too
    /// small is an error. One statement on PostgreSQL, as `Account::credit_all`.
    pub fn take_stock_all(conn: &mut DbConnection, taken: &[(&str, i32)]) -> QueryResult<()> {
        if taken.is_empty() {
            return Ok(());
        }
        match conn {
            DbConnection::Postgresql(pg) => {
                use diesel::sql_types::{Array, Integer, Text};
                let (ids, items): (Vec<&str>, Vec<i32>) = taken.iter().copied().unzip();
                let query = diesel::sql_query(
                    "UPDATE rewards SET stock = rewards.stock - taken.items \
                     FROM unnest($1::text[], $2::integer[]) AS taken (id, items) \
                     WHERE rewards.id = taken.id AND (rewards.stock IS NULL OR rewards.stock >= taken.items) \
                     RETURNING rewards.id",
                )
                .bind::<Array<Text>, _>(ids)
                .bind::<Array<Integer>, _>(items);
                changed_all(query.keep_prepared().load(pg)?, taken.len(), "stock taken from")
            }
            DbConnection::Sqlite(_) => taken.iter().try_for_each(|(id, items)| {
                if Reward::take_stock(conn, id, *items)? {
                    Ok(())
                } else {
                    changed_all(Vec::new(), 1, "stock taken from")
                }
            }),
        }
    }

    /// Puts items back (no-op for unlimited rewards).
    pub fn return_stock(conn: &mut DbConnection, id: &str, quantity: i32) -> QueryResult<()> {
        diesel::update(rewards::table.find(id).filter(rewards::stock.is_not_null()))
            .set(rewards::stock.eq(rewards::stock + quantity))
            .returning(rewards::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(rewards::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<Reward>> {
        crate::direct!(conn, |conn| rewards::table
            .find(id)
            .filter(rewards::community_id.eq(community_id))
            .select(Reward::as_select())
            .first(conn)
            .optional())
    }

    /// The community's rewards among `ids`.
    pub fn find_all(conn: &mut DbConnection, community_id: &str, ids: &[&str]) -> QueryResult<Vec<Reward>> {
        crate::direct!(conn, |conn| rewards::table
            .filter(rewards::id.eq_any(kept_in_list(ids)))
            .filter(rewards::community_id.eq(community_id))
            .select(Reward::as_select())
            .keep_prepared()
            .load(conn))
    }

    pub fn update(conn: &mut DbConnection, id: &str, changes: &RewardChanges) -> QueryResult<Reward> {
        diesel::update(rewards::table.find(id)).set(changes).execute(conn)?;
        rewards::table.find(id).select(Reward::as_select()).first(conn)
    }

    /// In id (creation) order after `after`; `on_offer_at` keeps only what residents may order then.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        on_offer_at: Option<NaiveDateTime>,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<Reward>> {
        let mut query = rewards::table
            .filter(rewards::community_id.eq(community_id.to_owned()))
            .select(Reward::as_select())
            .into_boxed();
        if let Some(now) = on_offer_at {
            query = query
                .filter(rewards::active.eq(true))
                .filter(rewards::available_from.is_null().or(rewards::available_from.le(now)))
                .filter(rewards::available_until.is_null().or(rewards::available_until.gt(now)));
        }
        if let Some(after) = after {
            query = query.filter(rewards::id.gt(after.to_owned()));
        }
        query.order(rewards::id.asc()).limit(limit).load(conn)
    }
}
