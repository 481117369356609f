//! Users and refresh tokens: rows and their queries.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{memberships, refresh_tokens, units, users};
use crate::db::{DbConnection, KeepPreparedDsl};
use crate::units::model::{Membership, Unit};

/// Consecutive failed sign-ins that lock an account.
pub const MAX_FAILED_LOGINS: i32 = 10;
pub const LOCKOUT: chrono::Duration = chrono::Duration::minutes(15);

/// A user with their memberships, each with its unit.
pub type UserWithMemberships = (User, Vec<(Membership, Unit)>);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub password_hash: String,
    pub failed_logins: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub password_changed_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Lower-cased username and display name, for member search.
    pub search_text: String,
    /// False: leaderboards show the user masked (e.g. 张**) to other residents.
    pub show_on_leaderboard: bool,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub phone: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
    pub search_text: Option<String>,
    pub show_on_leaderboard: Option<bool>,
}

fn search_text(username: &str, display_name: &str) -> String {
    format!("{username} {display_name}").to_lowercase()
}

impl User {
    pub fn new(
        username: String,
        display_name: String,
        phone: Option<String>,
        password_hash: String,
        now: NaiveDateTime,
    ) -> Self {
        User {
            id: crate::db::new_id(),
            search_text: search_text(&username, &display_name),
            username,
            display_name,
            phone,
            password_hash,
            failed_logins: 0,
            locked_until: None,
            password_changed_at: now,
            created_at: now,
            updated_at: now,
            show_on_leaderboard: true,
        }
    }

    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(users::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
        users::table.find(id).select(User::as_select()).first(conn).optional()
    }

    /// The user an access token names, with all their memberships, if the session that
    /// issued the token (its `jti`) is still alive: not logged out, not revoked by a
    /// password change or token theft. One query: every authenticated request starts with it.
    pub fn of_live_session(
        conn: &mut DbConnection,
        user_id: &str,
        access_jti: &str,
    ) -> QueryResult<Option<UserWithMemberships>> {
        let rows: Vec<(User, Option<Membership>, Option<Unit>)> = crate::direct!(conn, |conn| users::table
            .inner_join(refresh_tokens::table)
            // Flat joins: SQLite would materialize a nested one in full at every request.
            .left_join(memberships::table)
            .left_join(units::table.on(units::id.nullable().eq(memberships::unit_id.nullable())))
            .filter(users::id.eq(user_id))
            .filter(refresh_tokens::access_jti.eq(access_jti))
            .filter(refresh_tokens::revoked_at.is_null())
            .select((User::as_select(), Option::<Membership>::as_select(), Option::<Unit>::as_select()))
            .order(memberships::id.asc())
            .load(conn))?;
        let mut rows = rows.into_iter();
        Ok(rows.next().map(|(user, membership, unit)| {
            let memberships = membership.zip(unit).into_iter();
            (user, memberships.chain(rows.filter_map(|(_, membership, unit)| membership.zip(unit))).collect())
        }))
    }

    pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
        users::table.filter(users::username.eq(username)).select(User::as_select()).first(conn).optional()
    }

    pub fn username_exists(conn: &mut DbConnection, username: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(users::table.filter(users::username.eq(username)))).get_result(conn)
    }

    pub fn update(conn: &mut DbConnection, user: &User, changes: &mut UserChanges) -> QueryResult<User> {
        if let Some(display_name) = &changes.display_name {
            changes.search_text = Some(search_text(&user.username, display_name));
        }
        let id = &user.id;
        diesel::update(users::table.find(id)).set(&*changes).execute(conn)?;
        users::table.find(id).select(User::as_select()).first(conn)
    }

    pub fn set_password(conn: &mut DbConnection, id: &str, password_hash: &str, now: NaiveDateTime) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(password_hash),
                users::password_changed_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(users::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    /// Replaces a hash with a stronger one of the same password; not a password change.
    pub fn set_password_hash(conn: &mut DbConnection, id: &str, password_hash: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(password_hash))
            .returning(users::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now.naive_utc())
    }

    /// Re-reads the user under a write lock (PostgreSQL's row lock, as `LedgerHead::lock`
    /// takes it; SQLite's BEGIN IMMEDIATE already holds the database lock), so concurrent
    /// sign-ins count every failure.
    pub fn lock_for_update(conn: &mut DbConnection, id: &str) -> QueryResult<User> {
        let user = users::table.find(id);
        match conn {
            DbConnection::Postgresql(pg) => user.select(User::as_select()).for_no_key_update().first(pg),
            DbConnection::Sqlite(sqlite) => user.select(User::as_select()).first(sqlite),
        }
    }

    /// Counts a failed sign-in; the tenth in a row locks the account. A lock that
    /// has run out starts the count afresh.
    pub fn record_failed_login(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> QueryResult<()> {
        let user = Self::lock_for_update(conn, id)?;
        if user.is_locked(now) {
            return Ok(());
        }
        let failures = if user.locked_until.is_some() { 1 } else { user.failed_logins + 1 };
        let locked_until = (failures >= MAX_FAILED_LOGINS).then(|| (now + LOCKOUT).naive_utc());
        diesel::update(users::table.find(id))
            .set((users::failed_logins.eq(failures), users::locked_until.eq(locked_until)))
            .returning(users::id)
            .keep_prepared()
            .execute(conn)
            .map(drop)
    }

    /// Clears the failure count after a successful sign-in; false if the account
    /// got locked meanwhile (the sign-in must then fail too).
    pub fn record_successful_login(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> QueryResult<bool> {
        let user = Self::lock_for_update(conn, id)?;
        if user.is_locked(now) {
            return Ok(false);
        }
        diesel::update(users::table.find(id))
            .set((users::failed_logins.eq(0), users::locked_until.eq(None::<NaiveDateTime>)))
            .returning(users::id)
            .keep_prepared()
            .execute(conn)?;
        Ok(true)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct RefreshToken {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    /// The `jti` of the access token issued with this refresh token: with
    /// `issued_at` it rebuilds that exact access token for a retried refresh.
    pub access_jti: String,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub replaced_by: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl RefreshToken {
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        diesel::insert_into(refresh_tokens::table).values(self).execute(conn).map(drop)
    }

    pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RefreshToken>> {
        refresh_tokens::table.find(id).select(RefreshToken::as_select()).first(conn).optional()
    }

    /// Marks the token used and names its successor, if nobody did so first. The
    /// condition is evaluated under the row lock, so of two concurrent refreshes
    /// exactly one wins.
    pub fn claim(conn: &mut DbConnection, id: &str, successor_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
        let claimed = diesel::update(
            refresh_tokens::table
                .find(id)
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set((refresh_tokens::used_at.eq(now), refresh_tokens::replaced_by.eq(successor_id)))
        .returning(refresh_tokens::id)
        .keep_prepared()
        .execute(conn)?;
        Ok(claimed == 1)
    }

    pub fn revoke_family(conn: &mut DbConnection, family_id: &str, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(now))
        .returning(refresh_tokens::id)
        .keep_prepared()
        .execute(conn)
    }

    pub fn revoke_all_of_user(conn: &mut DbConnection, user_id: &str, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(user_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(now))
        .returning(refresh_tokens::id)
        .keep_prepared()
        .execute(conn)
    }
}
