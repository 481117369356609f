//! Group commit: writes that arrive together share one database transaction.
//!
//! Every write queues for a writer thread. A writer takes all the writes waiting
//! for it, runs each in a savepoint of one transaction, commits once, and only
//! then answers each of them. A write that fails is rolled back to its savepoint
//! alone and never fails the others; each write sees the ones before it in the
//! batch, exactly as if they had committed one after another. The durable commit
//! (SQLite's fsync, PostgreSQL's WAL flush) is paid once per batch instead of
//! once per write, and nobody waits on a lock held across a client's round trips.
//!
//! SQLite admits one writer, so it has one lane. PostgreSQL has several, and a
//! write's lane key (the community or unit it belongs to) picks the lane: all
//! writes of one community queue in the same lane, so two open batches never
//! wait for each other's ledger lock.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use diesel::Connection;
use diesel::connection::TransactionManager;

use super::{DbConnection, DbPool, write_transaction};
use crate::error::ApiError;

/// A batch is cut at this many writes, so that one burst cannot make the first
/// write of the batch wait for hundreds behind it.
const MAX_BATCH: usize = 64;

/// One queued write, as its lane sees it.
trait QueuedWrite: Send {
    /// Runs the write in a savepoint of the batch's transaction.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers the caller once the batch is over: `batch` is `Ok` if it committed.
    fn answer(self: Box<Self>, batch: Result<(), ApiError>);
}

struct PendingWrite<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, ApiError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> QueuedWrite for PendingWrite<T, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        if let Some(work) = self.work.take() {
            // Nested in the batch's transaction, `transaction` is a savepoint.
            self.outcome = Some(conn.transaction(work));
        }
    }

    fn answer(self: Box<Self>, batch: Result<(), ApiError>) {
        let result = match (self.outcome, batch) {
            // A refused write is refused whatever became of the batch: none of it was kept.
            (Some(Err(refused)), _) => Err(refused),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(batch_failed)) => Err(batch_failed),
            (None, batch) => Err(batch.err().unwrap_or_else(|| ApiError::internal("a queued write never ran"))),
        };
        // The caller may have gone (a timed-out request); the write stands regardless.
        let _ = self.reply.send(result);
    }
}

/// The writer threads of one database, each owning the queue of its lane.
pub struct Lanes {
    queues: Vec<mpsc::Sender<Box<dyn QueuedWrite>>>,
    counts: Arc<BatchCounts>,
}

/// Batches run and writes applied so far: writes ÷ batches is the mean batch size.
#[derive(Default)]
pub struct BatchCounts {
    pub batches: AtomicU64,
    pub writes: AtomicU64,
}

impl Lanes {
    /// Starts `count` writer threads. Each takes a connection from `pool` for each
    /// batch and gives it back after, so blocking writes (`write_blocking`) still get
    /// their turn. The threads end when the `Lanes` is dropped.
    pub fn start(pool: &DbPool, count: usize) -> std::io::Result<Self> {
        let counts = Arc::new(BatchCounts::default());
        let mut queues = Vec::with_capacity(count);
        for lane in 0..count.max(1) {
            let (queue, writes) = mpsc::channel();
            let (pool, counts) = (pool.clone(), counts.clone());
            std::thread::Builder::new()
                .name(format!("jifen-writer-{lane}"))
                .spawn(move || run_lane(&pool, &writes, &counts))?;
            queues.push(queue);
        }
        Ok(Lanes { queues, counts })
    }

    /// (batches, writes) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.counts.batches.load(Ordering::Relaxed), self.counts.writes.load(Ordering::Relaxed))
    }

    /// Queues `work` in the lane of `lane_key` and waits for its answer, which comes
    /// after the COMMIT of its batch.
    pub async fn write<T, F>(&self, lane_key: &str, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let write = Box::new(PendingWrite { work: Some(work), outcome: None, reply });
        self.queues[lane_index(lane_key, self.queues.len())]
            .send(write)
            .map_err(|_| ApiError::internal("the database writer has stopped"))?;
        answer.await.map_err(|_| ApiError::internal("the database writer dropped a write"))?
    }
}

fn lane_index(lane_key: &str, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    lane_key.hash(&mut hasher);
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}

fn run_lane(pool: &DbPool, writes: &mpsc::Receiver<Box<dyn QueuedWrite>>, counts: &BatchCounts) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let outcome = run_batch(pool, &mut batch);
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for write in batch {
            write.answer(outcome.clone());
        }
    }
}

fn run_batch(pool: &DbPool, batch: &mut [Box<dyn QueuedWrite>]) -> Result<(), ApiError> {
    let mut conn = pool.get().map_err(ApiError::pool_timeout)?;
    let outcome = write_transaction(&mut conn, |conn| {
        for write in batch.iter_mut() {
            // A panicking write is a bug; it must not take the lane down with it. What it
            // left of its savepoint cannot be trusted, so the whole batch is rolled back.
            if catch_unwind(AssertUnwindSafe(|| write.run(conn))).is_err() {
                return Err(ApiError::internal("a write panicked; its batch was rolled back"));
            }
            let status = <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn);
            if !matches!(status.transaction_depth(), Ok(Some(depth)) if depth.get() == 1) {
                return Err(ApiError::internal("a write left its batch's transaction unusable; batch rolled back"));
            }
        }
        Ok(())
    });
    if outcome.is_err() {
        roll_back_completely(&mut conn);
    }
    outcome
}

/// After a write that broke off inside its savepoint, the rollback of the batch
/// leaves the outer transaction open; the connection must not go back to the pool so.
fn roll_back_completely(conn: &mut DbConnection) {
    type Manager = <DbConnection as Connection>::TransactionManager;
    while let Ok(Some(_)) = Manager::transaction_manager_status_mut(conn).transaction_depth() {
        if let Err(err) = Manager::rollback_transaction(conn) {
            // The connection now counts as broken, and the pool discards it.
            tracing::error!(error = %err, "rolling back a failed batch failed");
            return;
        }
    }
}
