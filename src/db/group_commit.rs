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
//! SQLite admits one writer, so it has one lane. PostgreSQL has one per core, at least
//! two and at most half the pool ([`super::Database::connect`]), and a write's lane key
//! (the community or unit it belongs to) picks the lane: while a community has writes queued or in a batch not yet committed, its writes go
//! to the same lane, so two open batches never wait for each other's locks. This
//! holds because the rows a write locks belong to its community (ledger head,
//! accounts, rewards); user rows are locked only by sign-ins and changes to one's
//! own account, which all share the empty lane key. A community with nothing in
//! flight goes to the lane with the fewest writes in flight, so busy communities
//! spread over the lanes instead of meeting where a hash happens to put them.
//! A write may also carry others ([`Lanes::write_in`], the group writes of `ledger::batch`): it is
//! queued in a lane directly, and each write it carries holds its own seat there
//! ([`Lanes::seat`]) until the batch is over, so the rule above holds for them as well.
//! Should two batches still meet in a cycle (say, on a unique index), PostgreSQL
//! breaks it, and only the write whose statement it cancels fails (503, retryable).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use diesel::Connection;
use diesel::connection::TransactionManager;
use prometheus::IntCounter;

use super::{DbConnection, DbPool, write_transaction};
use crate::error::ApiError;

/// A batch is cut at this many writes, so that one burst cannot make the first
/// write of the batch wait for hundreds behind it.
const MAX_BATCH_SQLITE: usize = 64;
/// PostgreSQL keeps the ids of 64 subtransactions per session in shared memory; past
/// that, every other session's snapshot has to look them up on disk until the batch
/// commits. A write takes one savepoint (two if it records its refusal), so batches stay well below.
const MAX_BATCH_POSTGRES: usize = 16;
/// Writes waiting per lane; beyond it a write is refused at once (503) rather than
/// left to wait behind a queue the database cannot drain.
const QUEUE_DEPTH: usize = 4096;

/// One queued write, as its lane sees it.
trait QueuedWrite: Send {
    /// Runs the write in a savepoint of the batch's transaction.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers the caller once the batch is over: `batch` is `Ok` if it committed.
    fn answer(self: Box<Self>, batch: Result<(), ApiError>);
    /// The caller stopped waiting (its request timed out or the client went away):
    /// it was answered with an error, so the write must not happen.
    fn abandoned(&self) -> bool;
}

struct PendingWrite<T, F, G> {
    work: Option<F>,
    on_error: Option<G>,
    outcome: Option<Result<T, ApiError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, ApiError>>,
    /// Dropped with the write, once its batch is over. None for a write that carries others,
    /// which hold seats of their own ([`Lanes::write_in`]).
    _seat: Option<Seat>,
}

/// What a write whose work failed does next: it runs in a savepoint of its own, after
/// the work's has been rolled back, and its result is the write's.
pub type OnError<T> = fn(&mut DbConnection, ApiError) -> Result<T, ApiError>;

impl<T, F, G> QueuedWrite for PendingWrite<T, F, G>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send,
    G: FnOnce(&mut DbConnection, ApiError) -> Result<T, ApiError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        if let Some(work) = self.work.take() {
            // Nested in the batch's transaction, `transaction` is a savepoint.
            let outcome = match (conn.transaction(work), self.on_error.take()) {
                (Err(err), Some(on_error)) => conn.transaction(|conn| on_error(conn, err)),
                (outcome, _) => outcome,
            };
            self.outcome = Some(outcome);
        }
    }

    fn answer(self: Box<Self>, batch: Result<(), ApiError>) {
        let result = match (self.outcome, batch) {
            // A refused write is refused whatever became of the batch: none of it was kept.
            (Some(Err(refused)), _) => Err(refused),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(batch_failed)) => Err(batch_failed),
            (None, batch) => Err(batch.err().unwrap_or_else(|| ApiError::internal("a write did not complete"))),
        };
        // The caller may have gone since the write ran; the write stands regardless.
        let _ = self.reply.send(result);
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The writer threads of one database, each owning the queue of its lane.
pub struct Lanes {
    queues: Vec<mpsc::SyncSender<Box<dyn QueuedWrite>>>,
    router: Arc<Router>,
    counts: BatchCounts,
}

/// Which lane each lane key with writes in flight is bound to.
struct Router {
    state: Mutex<Routes>,
}

struct Routes {
    /// Lane key → (its lane, its writes in flight).
    bound: HashMap<String, (usize, usize)>,
    /// Writes in flight per lane.
    load: Vec<usize>,
}

impl Router {
    fn new(lanes: usize) -> Self {
        Router { state: Mutex::new(Routes { bound: HashMap::new(), load: vec![0; lanes] }) }
    }

    /// The lane for one more write of `key`: the one its writes in flight are in, else the least loaded.
    fn enter(self: &Arc<Self>, key: &str) -> Seat {
        let mut routes = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let least_loaded = (0..routes.load.len()).min_by_key(|&lane| routes.load[lane]).unwrap_or(0);
        let (lane, writes) = routes.bound.entry(key.to_owned()).or_insert((least_loaded, 0));
        *writes += 1;
        let lane = *lane;
        routes.load[lane] += 1;
        Seat { router: Arc::clone(self), key: key.to_owned(), lane }
    }
}

/// One write in flight in `lane`, from before it is queued until its batch is over; dropping
/// it then frees its key to move.
pub struct Seat {
    router: Arc<Router>,
    key: String,
    lane: usize,
}

impl Seat {
    pub fn lane(&self) -> usize {
        self.lane
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut routes = self.router.state.lock().unwrap_or_else(PoisonError::into_inner);
        routes.load[self.lane] -= 1;
        if let Some((_, writes)) = routes.bound.get_mut(&self.key) {
            *writes -= 1;
            if *writes == 0 {
                routes.bound.remove(&self.key);
            }
        }
    }
}

/// Batches run and writes run in them so far, counted by the lanes themselves and
/// registered with the server's metrics as they are: writes ÷ batches is the mean batch size.
#[derive(Clone)]
pub struct BatchCounts {
    pub batches: IntCounter,
    pub writes: IntCounter,
}

impl Lanes {
    /// Starts `count` writer threads. Each takes a connection from `pool` for each
    /// batch and gives it back after, so blocking writes (`write_blocking`) still get
    /// their turn. The threads end when the `Lanes` is dropped.
    pub fn start(pool: &DbPool, is_sqlite: bool, count: usize) -> anyhow::Result<Self> {
        let max_batch = if is_sqlite { MAX_BATCH_SQLITE } else { MAX_BATCH_POSTGRES };
        let counts = BatchCounts {
            batches: IntCounter::new("db_write_batches_total", "Database transactions run by the group commit")?,
            writes: IntCounter::new(
                "db_writes_total",
                "Writes run by the group commit, committed or not; divided by db_write_batches_total, the mean batch size",
            )?,
        };
        let mut queues = Vec::new();
        for lane in 0..count.max(1) {
            let (queue, writes) = mpsc::sync_channel(QUEUE_DEPTH);
            let (pool, counts) = (pool.clone(), counts.clone());
            std::thread::Builder::new()
                .name(format!("jifen-writer-{lane}"))
                .spawn(move || run_lane(&pool, &writes, max_batch, &counts))?;
            queues.push(queue);
        }
        Ok(Lanes { router: Arc::new(Router::new(queues.len())), queues, counts })
    }

    pub fn counts(&self) -> &BatchCounts {
        &self.counts
    }

    /// Queues `work` in the lane of `lane_key` and waits for its answer, which comes
    /// after the COMMIT of its batch. If `work` fails, everything it wrote is rolled
    /// back and `on_error` (if any) runs instead.
    pub async fn write<T, F, G>(&self, lane_key: &str, work: F, on_error: Option<G>) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        G: FnOnce(&mut DbConnection, ApiError) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let seat = self.seat(lane_key);
        self.send(seat.lane, Some(seat), work, on_error).await
    }

    /// A seat in the lane of `lane_key`, for a write that [`Lanes::write_in`] will carry.
    pub fn seat(&self, lane_key: &str) -> Seat {
        self.router.enter(lane_key)
    }

    /// Queues `work` in `lane` itself: a write that carries others, each holding its seat there.
    pub async fn write_in<T, F>(&self, lane: usize, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.send(lane, None, work, None::<OnError<T>>).await
    }

    async fn send<T, F, G>(&self, lane: usize, seat: Option<Seat>, work: F, on_error: Option<G>) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        G: FnOnce(&mut DbConnection, ApiError) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.queues.get(lane).ok_or_else(|| ApiError::internal("no such writer lane"))?;
        let write = Box::new(PendingWrite { work: Some(work), on_error, outcome: None, reply, _seat: seat });
        queue.try_send(write).map_err(|err| match err {
            mpsc::TrySendError::Full(_) => ApiError::pool_timeout("the write queue is full"),
            mpsc::TrySendError::Disconnected(_) => ApiError::internal("the database writer has stopped"),
        })?;
        answer.await.map_err(|_| ApiError::internal("the database writer dropped a write"))?
    }
}

fn run_lane(pool: &DbPool, writes: &mpsc::Receiver<Box<dyn QueuedWrite>>, max_batch: usize, counts: &BatchCounts) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        batch.retain(|write| !write.abandoned());
        if batch.is_empty() {
            continue;
        }
        let outcome = run_batch(pool, &mut batch);
        counts.batches.inc();
        counts.writes.inc_by(batch.len() as u64);
        for write in batch {
            write.answer(outcome.clone());
        }
    }
}

fn run_batch(pool: &DbPool, batch: &mut [Box<dyn QueuedWrite>]) -> Result<(), ApiError> {
    let mut conn = pool.get().map_err(ApiError::pool_timeout)?;
    let outcome = write_transaction(&mut conn, |conn| {
        for write in batch.iter_mut() {
            // A panicking write is a bug; it must take neither the lane nor its batch down
            // with it. It is answered with an error, and whatever it began is rolled back.
            if catch_unwind(AssertUnwindSafe(|| write.run(conn))).is_err() {
                tracing::error!("a write panicked; it was rolled back");
                roll_back_to_batch(conn)?;
            }
            if depth(conn) != Some(1) {
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

type Manager = <DbConnection as Connection>::TransactionManager;

/// How many transactions and savepoints are open; None if none, or if the connection is broken.
fn depth(conn: &mut DbConnection) -> Option<u32> {
    Manager::transaction_manager_status_mut(conn).transaction_depth().ok().flatten().map(|depth| depth.get())
}

/// Rolls back the savepoints a write broke off in, back to its batch's transaction.
fn roll_back_to_batch(conn: &mut DbConnection) -> Result<(), ApiError> {
    while depth(conn).is_some_and(|depth| depth > 1) {
        Manager::rollback_transaction(conn)
            .map_err(|err| ApiError::internal(format!("rolling back a panicked write failed: {err}")))?;
    }
    Ok(())
}

/// After a write that broke off inside its savepoint, the rollback of the batch
/// leaves the outer transaction open; the connection must not go back to the pool so.
fn roll_back_completely(conn: &mut DbConnection) {
    while depth(conn).is_some() {
        if let Err(err) = Manager::rollback_transaction(conn) {
            // The connection now counts as broken, and the pool discards it.
            tracing::error!(error = %err, "rolling back a failed batch failed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_lane_while_it_has_writes_in_flight_and_busy_keys_spread() {
        let router = Arc::new(Router::new(3));
        let first = router.enter("community a");
        let second = router.enter("community a");
        assert_eq!(first.lane, second.lane, "writes in flight of one key share a lane");
        let other = router.enter("community b");
        assert_ne!(other.lane, first.lane, "a new key goes to a lane with less in flight");
        let third = router.enter("community c");
        assert!(![first.lane, other.lane].contains(&third.lane), "and so does the next");

        drop(first);
        let again = router.enter("community a");
        assert_eq!(again.lane, second.lane, "one write still in flight holds the key to its lane");

        drop((second, again));
        // Lane loads: a's lane 0, b's 1, c's 1: a's lane is now the least loaded, and so a
        // returns there; a key with nothing in flight goes wherever the load is least.
        let returned = router.enter("community a");
        assert_eq!(returned.lane, 0);
        let routes = router.state.lock().unwrap();
        assert_eq!(routes.bound.len(), 3);
        assert_eq!(routes.load.iter().sum::<usize>(), 3);
    }

    #[test]
    fn a_failed_write_is_rolled_back_before_its_on_error_step_and_holds_its_lane_until_answered() {
        use diesel::connection::SimpleConnection;
        use diesel::{RunQueryDsl, SqliteConnection};

        use crate::error::ErrorCode;

        let mut conn = DbConnection::Sqlite(SqliteConnection::establish(":memory:").expect("in-memory SQLite"));
        conn.batch_execute("CREATE TABLE notes (text TEXT NOT NULL)").expect("table");
        let note = |conn: &mut DbConnection, text: &str| {
            diesel::sql_query(format!("INSERT INTO notes VALUES ('{text}')")).execute(conn).map(drop)
        };
        let router = Arc::new(Router::new(2));
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let mut write = Box::new(PendingWrite {
            work: Some(move |conn: &mut DbConnection| -> Result<&str, ApiError> {
                note(conn, "effect")?;
                Err(ApiError::new(ErrorCode::InsufficientPoints, "refused"))
            }),
            on_error: Some(move |conn: &mut DbConnection, err: ApiError| -> Result<&str, ApiError> {
                note(conn, err.code().as_str())?;
                Ok("refusal recorded")
            }),
            outcome: None,
            reply,
            _seat: Some(router.enter("community a")),
        });

        write_transaction(&mut conn, |conn| {
            write.run(conn);
            assert_eq!(depth(conn), Some(1), "both savepoints are closed");
            Ok::<_, ApiError>(())
        })
        .expect("batch");
        assert!(router.state.lock().unwrap().bound.contains_key("community a"), "bound until answered");
        write.answer(Ok(()));
        assert!(router.state.lock().unwrap().bound.is_empty(), "free to move once answered");
        assert_eq!(answer.try_recv().expect("answered").expect("the on_error step's answer"), "refusal recorded");

        #[derive(diesel::QueryableByName)]
        struct Note {
            #[diesel(sql_type = diesel::sql_types::Text)]
            text: String,
        }
        let notes: Vec<Note> = diesel::sql_query("SELECT text FROM notes").load(&mut conn).expect("notes");
        let notes: Vec<String> = notes.into_iter().map(|note| note.text).collect();
        assert_eq!(notes, vec!["insufficient_points".to_owned()], "the effect was rolled back first");
    }

    #[test]
    fn keys_with_nothing_in_flight_are_forgotten() {
        let router = Arc::new(Router::new(2));
        drop((router.enter("a"), router.enter("b")));
        let routes = router.state.lock().unwrap();
        assert!(routes.bound.is_empty());
        assert_eq!(routes.load, vec![0, 0]);
    }
}
