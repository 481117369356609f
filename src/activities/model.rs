//! Activities and their registrations: rows and their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::model::User;
use crate::db::schema::{activities, activity_registrations, rules, users};
use crate::db::{DbConnection, KeepPreparedDsl};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityStatus {
    /// Being prepared; residents do not see it.
    Draft,
    /// Open for sign-up and check-in.
    Published,
    /// Done; attendees were paid.
    Completed,
    Cancelled,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::Draft => "draft",
            ActivityStatus::Published => "published",
            ActivityStatus::Completed => "completed",
            ActivityStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ActivityStatus::Draft, ActivityStatus::Published, ActivityStatus::Completed, ActivityStatus::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = activities)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Activity {
    pub id: String,
    pub community_id: String,
    pub rule_id: String,
    pub title: String,
    pub description: String,
    pub location: String,
    pub points: i64,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub capacity: Option<i32>,
    pub signup_deadline: NaiveDateTime,
    pub status: String,
    pub registered: i32,
    pub check_in_secret: String,
    pub award_transaction_id: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = activities)]
pub struct ActivityChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub points: Option<i64>,
    pub starts_at: Option<NaiveDateTime>,
    pub ends_at: Option<NaiveDateTime>,
    pub capacity: Option<Option<i32>>,
    pub signup_deadline: Option<NaiveDateTime>,
    pub status: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = activity_registrations)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Registration {
    pub activity_id: String,
    pub user_id: String,
    pub registered_at: NaiveDateTime,
    pub checked_in_at: Option<NaiveDateTime>,
    pub check_in_method: Option<String>,
}

/// Which activities a list shows.
#[derive(Debug, Default)]
pub struct ActivityFilter {
    pub statuses: Vec<ActivityStatus>,
    /// Only those not yet over (true) or already over (false) at `now`.
    pub upcoming: Option<(bool, NaiveDateTime)>,
    pub category: Option<String>,
}

impl Activity {
    pub fn status(&self) -> ActivityStatus {
        ActivityStatus::parse(&self.status).unwrap_or(ActivityStatus::Draft)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(activities::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, community_id: &str, id: &str) -> QueryResult<Option<Activity>> {
        activities::table
            .find(id)
            .filter(activities::community_id.eq(community_id))
            .select(Activity::as_select())
            .first(conn)
            .optional()
    }

    pub fn update(conn: &mut DbConnection, id: &str, changes: &ActivityChanges) -> QueryResult<Activity> {
        diesel::update(activities::table.find(id)).set(changes).execute(conn)?;
        activities::table.find(id).select(Activity::as_select()).first(conn)
    }

    /// Locks the activity's row if it is still published (PostgreSQL's row lock; SQLite's
    /// BEGIN IMMEDIATE holds the database). Sign-up, check-in and completion take it first, so a
    /// check-in can never slip in beside a completion and go unpaid. False if it is not open.
    pub fn lock_open(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        let locked = diesel::update(
            activities::table.find(id).filter(activities::status.eq(ActivityStatus::Published.as_str())),
        )
        .set(activities::updated_at.eq(activities::updated_at))
        .returning(activities::id)
        .keep_prepared()
        .execute(conn)?;
        Ok(locked == 1)
    }

    /// Takes a place if one is left (the check is in the UPDATE); false when full.
    pub fn take_place(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
        let updated = diesel::update(activities::table.find(id).filter(
            activities::capacity.is_null().or(activities::registered.lt(activities::capacity.assume_not_null())),
        ))
        .set(activities::registered.eq(activities::registered + 1))
        .returning(activities::id)
        .keep_prepared()
        .execute(conn)?;
        Ok(updated == 1)
    }

    pub fn free_place(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
        diesel::update(activities::table.find(id))
            .set(activities::registered.eq(activities::registered - 1))
            .returning(activities::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    /// Marks it completed if it is published; false if someone completed or cancelled it first.
    pub fn complete(
        conn: &mut DbConnection,
        id: &str,
        award_transaction_id: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            activities::table.find(id).filter(activities::status.eq(ActivityStatus::Published.as_str())),
        )
        .set((
            activities::status.eq(ActivityStatus::Completed.as_str()),
            activities::award_transaction_id.eq(award_transaction_id),
            activities::updated_at.eq(now),
        ))
        .returning(activities::id)
        .keep_prepared()
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// In start order (then id) after the `after` key.
    pub fn list(
        conn: &mut DbConnection,
        community_id: &str,
        filter: &ActivityFilter,
        after: Option<(NaiveDateTime, String)>,
        limit: i64,
    ) -> QueryResult<Vec<Activity>> {
        let statuses: Vec<&str> = filter.statuses.iter().map(|status| status.as_str()).collect();
        let mut query = activities::table
            .inner_join(rules::table)
            .filter(activities::community_id.eq(community_id.to_owned()))
            .filter(activities::status.eq_any(statuses))
            .select(Activity::as_select())
            .into_boxed();
        match filter.upcoming {
            Some((true, now)) => query = query.filter(activities::ends_at.ge(now)),
            Some((false, now)) => query = query.filter(activities::ends_at.lt(now)),
            None => {}
        }
        if let Some(category) = &filter.category {
            query = query.filter(rules::category.eq(category.clone()));
        }
        if let Some((starts_at, id)) = after {
            query = query.filter(
                activities::starts_at.gt(starts_at).or(activities::starts_at.eq(starts_at).and(activities::id.gt(id))),
            );
        }
        query.order((activities::starts_at.asc(), activities::id.asc())).limit(limit).load(conn)
    }
}

impl Registration {
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(activity_registrations::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, activity_id: &str, user_id: &str) -> QueryResult<Option<Registration>> {
        activity_registrations::table
            .find((activity_id, user_id))
            .select(Registration::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConnection, activity_id: &str, user_id: &str) -> QueryResult<usize> {
        diesel::delete(
            activity_registrations::table
                .find((activity_id, user_id))
                .filter(activity_registrations::checked_in_at.is_null()),
        )
        .execute(conn)
    }

    /// Records the check-in unless there already is one; false if there was.
    pub fn check_in(
        conn: &mut DbConnection,
        activity_id: &str,
        user_id: &str,
        method: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        let updated = diesel::update(
            activity_registrations::table
                .find((activity_id, user_id))
                .filter(activity_registrations::checked_in_at.is_null()),
        )
        .set((activity_registrations::checked_in_at.eq(now), activity_registrations::check_in_method.eq(method)))
        .returning(activity_registrations::user_id)
        .keep_prepared()
        .execute(conn)?;
        Ok(updated == 1)
    }

    pub fn checked_in_users(conn: &mut DbConnection, activity_id: &str) -> QueryResult<Vec<String>> {
        activity_registrations::table
            .filter(activity_registrations::activity_id.eq(activity_id))
            .filter(activity_registrations::checked_in_at.is_not_null())
            .order(activity_registrations::user_id.asc())
            .select(activity_registrations::user_id)
            .load(conn)
    }

    /// With their users, in user id order after `after`.
    pub fn list(
        conn: &mut DbConnection,
        activity_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<(Registration, User)>> {
        let mut query = activity_registrations::table
            .inner_join(users::table)
            .filter(activity_registrations::activity_id.eq(activity_id.to_owned()))
            .select((Registration::as_select(), User::as_select()))
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(activity_registrations::user_id.gt(after.to_owned()));
        }
        query.order(activity_registrations::user_id.asc()).limit(limit).load(conn)
    }
}
