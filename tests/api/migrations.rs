use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use jifen::db::migrations_for;
use jifen::db::schema::{accounts, ledger_heads, units, users};

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
        // Only the first migration, then a community made before the ledger existed...
        let migrations = migrations_for(&conn);
        conn.run_next_migration(migrations).unwrap();
        for (id, kind, parent, path, timezone, code) in [
            ("p", "platform", None, "/p/", None, None),
            ("d", "district", Some("p"), "/p/d/", None, None),
            ("s", "street", Some("d"), "/p/d/s/", None, None),
            ("c", "community", Some("s"), "/p/d/s/c/", Some("Asia/Shanghai"), Some("ABCDEFGH")),
        ] {
            diesel::insert_into(units::table)
                .values((
                    units::id.eq(id),
                    units::kind.eq(kind),
                    units::parent_id.eq(parent),
                    units::path.eq(path),
                    units::name.eq(id),
                    units::timezone.eq(timezone),
                    units::join_code.eq(code),
                    units::created_at.eq(chrono::NaiveDateTime::default()),
                    units::updated_at.eq(chrono::NaiveDateTime::default()),
                ))
                .execute(&mut *conn)
                .unwrap();
        }
        // ...gets its chain head and system accounts from the later migrations.
        let migrations = migrations_for(&conn);
        conn.run_pending_migrations(migrations).unwrap();
        assert_eq!(users::table.count().get_result::<i64>(&mut *conn).unwrap(), 0);
        assert_eq!(ledger_heads::table.count().get_result::<i64>(&mut *conn).unwrap(), 1);
        assert_eq!(
            accounts::table.filter(accounts::community_id.eq("c")).count().get_result::<i64>(&mut *conn).unwrap(),
            5,
            "issuance, redemption, expiry, penalty and hold"
        );
    })
    .await
    .unwrap();
}

/// Every pooled SQLite connection is durable (WAL + synchronous=FULL), checks foreign keys, keeps
/// temporary files in memory and leaves checkpoints to the checkpoint thread.
#[tokio::test]
async fn sqlite_connections_are_configured_for_durability() {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Autocheckpoint {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
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
            pragma("temp_store", "temp_store"),
            // No table-valued function for this one (it has a side effect when set).
            diesel::sql_query("PRAGMA wal_autocheckpoint")
                .get_result::<Autocheckpoint>(conn)
                .unwrap()
                .wal_autocheckpoint
                .to_string(),
        ]
    };
    let expected = ["wal", "2", "1", "5000", "2", "2000"].map(str::to_owned);
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
