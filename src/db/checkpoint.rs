//! SQLite's WAL is copied back into the database file by a thread of its own, as far as it can.
//!
//! Left to itself, SQLite checkpoints in the commit that takes the WAL past 1,000 pages, on
//! the connection that committed: the group commit's one writer thread, which then spent a
//! seventh of its time copying pages and waiting for their fsync instead of writing. This
//! thread runs a PASSIVE checkpoint every [`INTERVAL`] on a connection of its own, and once
//! more when the database is closed. A PASSIVE checkpoint never waits for a writer or a
//! reader: it copies what no reader still needs.
//!
//! It cannot do it all. The WAL starts over only after a checkpoint that copied every page in
//! it, and under a steady stream of writes the writer appends while the thread copies: so the
//! WAL keeps growing until a commit takes it past [`FALLBACK_PAGES`] and checkpoints in the
//! writer, which then copies what the thread has not and starts the WAL over. That write waits,
//! and the writes queued behind it. The threshold sets how long and how often: at 10,000 pages
//! (40 MB) the award benchmark saw a stall of about 30 ms every 200 ms, and a p99 of 27 ms at half
//! its maximum; at 2,000 pages, with the thread every 100 ms, 13 to 17 ms, for a maximum about a tenth
//! lower (docs/benchmarks.md, session 11). When writes come slower than the thread copies them,
//! its checkpoints complete and the writer never checkpoints.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel::r2d2::ManageConnection;

use super::{ConnectionManager, DbConnection};

const INTERVAL: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB each) past which a commit checkpoints by itself (`wal_autocheckpoint`).
pub const FALLBACK_PAGES: u32 = 2_000;

/// Stops its thread, after a last checkpoint, when dropped (with the last clone of its `Database`).
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// The checkpoint thread of a SQLite database; None on PostgreSQL.
    pub fn start(manager: &ConnectionManager) -> anyhow::Result<Option<Self>> {
        if !manager.url.is_sqlite() {
            return Ok(None);
        }
        let DbConnection::Sqlite(mut conn) = manager.connect()? else { return Ok(None) };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("jifen-checkpoint".to_owned()).spawn(move || {
            let mut failing = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                failing = checkpoint(&mut conn, failing);
            }
            checkpoint(&mut conn, failing);
        })?;
        Ok(Some(Checkpointer { stop: Some(stop), thread: Some(thread) }))
    }
}

/// One PASSIVE checkpoint; says whether it failed. A run of failures is logged once.
fn checkpoint(conn: &mut SqliteConnection, failing: bool) -> bool {
    match conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
        Ok(()) => {
            if failing {
                tracing::info!("checkpointing the SQLite WAL works again");
            }
            false
        }
        Err(err) => {
            if !failing {
                tracing::warn!(error = %err, "checkpointing the SQLite WAL failed; retrying every {INTERVAL:?}");
            }
            true
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}
