use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use jifen::db::migrations_for;
use jifen::db::schema::users;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(migrations_revert_and_reapply_cleanly);

/// The app migrated its database on start; every down migration must undo its
/// up migration, and applying them again must work.
async fn migrations_revert_and_reapply_cleanly(app: &TestApp) {
    let db = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.blocking_connection().unwrap();
        let migrations = migrations_for(&conn);
        assert!(!conn.has_pending_migration(migrations).unwrap(), "start-up applied every migration");
        let migrations = migrations_for(&conn);
        conn.revert_all_migrations(migrations).unwrap();
        assert!(users::table.count().get_result::<i64>(&mut *conn).is_err(), "tables are gone");
        let migrations = migrations_for(&conn);
        conn.run_pending_migrations(migrations).unwrap();
        assert_eq!(users::table.count().get_result::<i64>(&mut *conn).unwrap(), 0);
    })
    .await
    .unwrap();
}

/// Every pooled SQLite connection is durable (WAL + synchronous=FULL) and checks foreign keys.
#[tokio::test]
async fn sqlite_connections_are_configured_for_durability() {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let db = jifen::db::Database::connect(jifen::db::DatabaseUrl::Sqlite(dir.path().join("x.db")), 2).unwrap();
    let mut conn = db.blocking_connection().unwrap();
    let mut pragma = |name: &str, column: &str| {
        diesel::sql_query(format!("SELECT CAST({column} AS TEXT) AS value FROM pragma_{name}"))
            .get_result::<Value>(&mut *conn)
            .unwrap()
            .value
    };
    assert_eq!(pragma("journal_mode", "journal_mode"), "wal");
    assert_eq!(pragma("synchronous", "synchronous"), "2", "FULL");
    assert_eq!(pragma("foreign_keys", "foreign_keys"), "1");
    assert_eq!(pragma("busy_timeout", "timeout"), "5000");
}
