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
