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
    ///
    /// A probe of the primary key per pair, ORed: two `IN` lists, one of users and one of keys,
    /// would probe every user with every key (PostgreSQL took 143 µs a call for groups of awards).
    pub fn existing(conn: &mut DbConnection, keys: &[(&str, &str)]) -> QueryResult<Vec<(String, String)>> {
        // With no pairs to OR, the query would have no condition and read every record.
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = kept_in_list(keys);
        crate::direct!(conn, |conn| {
            let mut query =
                idempotency_keys::table.select((idempotency_keys::user_id, idempotency_keys::key)).into_boxed();
            for (user_id, key) in &pairs {
                query = query.or_filter(idempotency_keys::user_id.eq(*user_id).and(idempotency_keys::key.eq(*key)));
            }
            query.keep_prepared().load(conn)
        })
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

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;

    use super::*;

    #[test]
    fn existing_finds_the_pairs_asked_for_and_no_mix_of_them() {
        let (_dir, db) = crate::db::migrated_sqlite();
        db.write_blocking(|conn| -> anyhow::Result<()> {
            let DbConnection::Sqlite(sqlite) = &mut *conn else { unreachable!("a SQLite database") };
            sqlite.batch_execute(
                "INSERT INTO users (id, username, display_name, password_hash, password_changed_at, created_at, updated_at)
                 VALUES ('ann', 'ann', 'Ann', 'x', '2026-11-27 00:00:00', '2026-11-27 00:00:00', '2026-11-27 00:00:00'),
                        ('bob', 'bob', 'Bob', 'x', '2026-11-27 00:00:00', '2026-11-27 00:00:00', '2026-11-27 00:00:00');
                 INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, created_at)
                 VALUES ('ann', 'k1', 'f', 201, '{}', '2026-11-27 00:00:00'),
                        ('bob', 'k1', 'f', 201, '{}', '2026-11-27 00:00:00'),
                        ('bob', 'k2', 'f', 201, '{}', '2026-11-27 00:00:00');",
            )?;
            let mut found = IdempotencyRecord::existing(
                conn,
                &[("ann", "k1"), ("ann", "k2"), ("bob", "k2"), ("bob", "k3")],
            )?;
            found.sort();
            // Not Bob's k1: a user of one pair with the key of another.
            assert_eq!(found, [("ann".to_owned(), "k1".to_owned()), ("bob".to_owned(), "k2".to_owned())]);
            assert_eq!(IdempotencyRecord::existing(conn, &[])?, []);
            Ok(())
        })
        .expect("keys looked up");
    }
}
