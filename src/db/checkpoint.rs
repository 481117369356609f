//! SQLite's WAL is copied back into the database file by a thread of its own.
//!
//! Left to itself, SQLite checkpoints in the commit that takes the WAL past 1,000 pages, on
//! the connection that committed: the group commit's one writer thread, which then spent a
//! seventh of its time copying pages and waiting for their fsync instead of writing. Every
//! connection is opened with `wal_autocheckpoint = 0`, and this thread runs a PASSIVE
//! checkpoint a few times a second on a connection of its own. A PASSIVE checkpoint never
//! waits for a writer or a reader: it copies what no reader still needs, and the next write
//! after a complete one starts the WAL over, so the file stays as small as before.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::ManageConnection;

use super::{ConnectionManager, DatabaseUrl};

const INTERVAL: Duration = Duration::from_millis(200);

/// Stops its thread when dropped (with the last clone of its `Database`).
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub fn start(manager: &ConnectionManager) -> anyhow::Result<Option<Self>> {
        if !matches!(manager.url, DatabaseUrl::Sqlite(_)) {
            return Ok(None);
        }
        let mut conn = match manager.connect()? {
            super::DbConnection::Sqlite(conn) => conn,
            super::DbConnection::Postgresql(_) => return Ok(None),
        };
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new().name("jifen-checkpoint".to_owned()).spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                if let Err(err) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %err, "checkpointing the SQLite WAL failed; trying again shortly");
                }
            }
        })?;
        Ok(Some(Checkpointer { _stop: stop }))
    }
}
