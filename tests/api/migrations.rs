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
    let pragmas = |conn: &mut jifen::db::DbConnection| {
        let mut pragma = |name: &str, column: &str| {
            diesel::sql_query(format!("SELECT CAST({column} AS TEXT) AS value FROM pragma_{name}"))
                .get_result::<Value>(conn)
                .unwrap()
                .value
        };
        [
            pragma("journal_mode", "journal_mode"),
            pragma("synchronous", "synchronous"),
            pragma("foreign_keys", "foreign_keys"),
            pragma("busy_timeout", "timeout"),
        ]
    };
    let expected = ["wal", "2", "1", "5000"].map(str::to_owned);
    // The writer, and both connections of the reader pool (held at once, so they differ).
    assert_eq!(pragmas(&mut db.blocking_connection().unwrap()), expected);
    let readers = db.read(move |first| Ok(pragmas(first))).await.unwrap();
    assert_eq!(readers, expected);
    let (one, two) = futures::join!(
        db.read(move |c| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(pragmas(c))
        }),
        db.read(move |c| Ok(pragmas(c)))
    );
    assert_eq!((one.unwrap(), two.unwrap()), (expected.clone(), expected));
}
