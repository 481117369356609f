//! Stored answers of requests sent with an Idempotency-Key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::idempotency_keys;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct IdempotencyRecord {
    pub user_id: String,
    pub key: String,
    /// SHA-256 of method, path and body: a key reused for another request is refused.
    pub fingerprint: String,
    pub status: i32,
    pub body: String,
    pub location: Option<String>,
    pub created_at: NaiveDateTime,
}

impl IdempotencyRecord {
    pub fn find(conn: &mut DbConnection, user_id: &str, key: &str) -> QueryResult<Option<IdempotencyRecord>> {
        crate::direct!(conn, |conn| idempotency_keys::table
            .find((user_id, key))
            .select(IdempotencyRecord::as_select())
            .first(conn)
            .optional())
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::insert_into(idempotency_keys::table).values(self).execute(conn).map(drop))
    }

    pub fn purge_older_than(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff))).execute(conn)
    }
}
