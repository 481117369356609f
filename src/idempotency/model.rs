//! Stored answers of requests sent with an Idempotency-Key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::idempotency_keys;
use crate::db::{DbConnection, KeepPreparedDsl, kept_in_list};

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

    /// Which of these (user, key) pairs have a record.
    pub fn existing(conn: &mut DbConnection, keys: &[(&str, &str)]) -> QueryResult<Vec<(String, String)>> {
        let users: Vec<&str> = keys.iter().map(|(user_id, _)| *user_id).collect();
        let names: Vec<&str> = keys.iter().map(|(_, key)| *key).collect();
        let found: Vec<(String, String)> = crate::direct!(conn, |conn| idempotency_keys::table
            .filter(idempotency_keys::user_id.eq_any(kept_in_list(&users)))
            .filter(idempotency_keys::key.eq_any(kept_in_list(&names)))
            .select((idempotency_keys::user_id, idempotency_keys::key))
            .keep_prepared()
            .load(conn))?;
        // The two lists also match pairs made of one request's user and another's key.
        Ok(found.into_iter().filter(|(user_id, key)| keys.contains(&(user_id.as_str(), key.as_str()))).collect())
    }

    pub fn insert_all(conn: &mut DbConnection, records: &[IdempotencyRecord]) -> QueryResult<()> {
        crate::insert_all!(conn, idempotency_keys::table, records, idempotency_keys::key).map(drop)
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        crate::direct!(conn, |conn| diesel::insert_into(idempotency_keys::table).values(self).execute(conn).map(drop))
    }

    pub fn purge_older_than(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff))).execute(conn)
    }
}
