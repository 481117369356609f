//! Persistence: one diesel code base over SQLite (embedded default) and PostgreSQL.
//!
//! Everything backend-specific lives here: the connection enum, the pool and its
//! per-connection settings, the embedded migrations and the one way to open a
//! write transaction ([`Database::write`], or [`Database::write_or_else`] for a write
//! that answers its own failure with a write).
//!
//! Row structs insert `None` as NULL (`treat_none_as_default_value = false`; no nullable
//! column has a default): diesel can then prepare each INSERT once and keep it, where
//! an INSERT that might write DEFAULT is prepared again every time.

mod checkpoint;
pub mod group_commit;
pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, DefaultLoadingMode, SimpleConnection, TransactionManager};
use diesel::pg::PgRowByRowLoadingMode;
use diesel::prelude::*;
use diesel::query_dsl::methods::LoadQuery;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::ApiError;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// SQLite waits this long for a lock held by another process (e.g. `jifen ledger
/// expire` next to `jifen serve`) before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Where the data lives, parsed from `JIFEN_DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Picks the backend from the URL scheme. Anything else is refused with a
    /// message naming the accepted forms, so a typo never silently creates a new
    /// empty SQLite file.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains(":memory:") {
                return Err(format!(
                    "JIFEN_DATABASE_URL {url:?} names no database file; use sqlite://PATH, e.g. sqlite://./data/jifen.db"
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(format!(
            "JIFEN_DATABASE_URL {url:?} is not supported: use sqlite://PATH (e.g. sqlite://./data/jifen.db) or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Opens connections of the backend the URL names, and sets SQLite's
/// per-connection pragmas on each new connection.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Connection(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Postgresql(diesel::PgConnection::establish(url)?)),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
                // One statement each (diesel's advice), busy_timeout first so the
                // others already wait for locks. synchronous=FULL makes every commit
                // durable in WAL mode; NORMAL could lose acknowledged commits on power loss.
                // temp_store=MEMORY keeps temporary files in memory, savepoint journals above all:
                // every write of a group commit runs in a savepoint, which otherwise copies each
                // page it first touches to a file. They only serve rolling back to a savepoint;
                // crash recovery never reads them. Sorts and temporary indexes stay in memory
                // too, so long reads that may sort a lot (exports) ask for files again.
                for pragma in [
                    format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"),
                    "PRAGMA journal_mode = WAL".to_owned(),
                    "PRAGMA synchronous = FULL".to_owned(),
                    "PRAGMA foreign_keys = ON".to_owned(),
                    "PRAGMA temp_store = MEMORY".to_owned(),
                    // Checkpoints are a thread's of their own (see `checkpoint`); commits
                    // checkpoint only when it could not keep the WAL short.
                    format!("PRAGMA wal_autocheckpoint = {}", checkpoint::FALLBACK_PAGES),
                ] {
                    conn.batch_execute(&pragma)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        Ok(conn.ping()?)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

type DbPool = Pool<ConnectionManager>;
pub type PooledDbConnection = PooledConnection<ConnectionManager>;

/// The pools of one database.
///
/// SQLite admits one writer at a time. Rather than letting writers spin in
/// SQLite's busy handler, writes queue for the single connection of the writer
/// pool; reads use the reader pool concurrently (WAL). On PostgreSQL both are
/// the same pool. Requests' writes are grouped into shared transactions by the
/// writer lanes (see [`group_commit`]).
#[derive(Clone)]
pub struct Database {
    readers: DbPool,
    writers: DbPool,
    lanes: Arc<group_commit::Lanes>,
    manager: ConnectionManager,
    /// Permits for dedicated readers: each holds a connection outside the pools and a
    /// blocking thread for minutes, so only a few may run at once.
    long_reads: Arc<tokio::sync::Semaphore>,
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

/// How many dedicated readers (exports) one server runs at once.
pub const MAX_LONG_READS: usize = 4;

impl Database {
    /// Connects, creating the SQLite file and its folder if needed, and applies
    /// pending migrations before anything else touches the database.
    pub fn connect(url: DatabaseUrl, pool_size: u32) -> anyhow::Result<Self> {
        if let DatabaseUrl::Sqlite(path) = &url
            && let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|err| anyhow::anyhow!("cannot create the data folder {}: {err}", dir.display()))?;
        }
        let manager = ConnectionManager { url: url.clone() };
        let build = |size: u32| {
            Pool::builder()
                .max_size(size)
                .min_idle(Some(1))
                // r2d2 would otherwise run a query (a round trip on PostgreSQL) at every
                // checkout. A connection that broke is dropped by `has_broken` when it comes
                // back, so after a database restart each stale pooled connection fails once:
                // one request, or on PostgreSQL the one write batch it carried.
                .test_on_check_out(false)
                .connection_timeout(Duration::from_secs(10))
                .build(manager.clone())
        };
        let readers = build(pool_size).map_err(|err| connect_error(&url, err))?;
        let writers = if url.is_sqlite() { build(1).map_err(|err| connect_error(&url, err))? } else { readers.clone() };
        // PostgreSQL: at most half the pool may be writing, the rest stays for reads; and no
        // more lanes than this machine has cores, but two. Lanes beyond what can run at once
        // do not add throughput, they split the writes that queue into smaller batches, each
        // paying its own statements and COMMIT: on two cores, 2 lanes wrote a quarter more
        // awards and redemptions per second than 5. One lane wrote fewer redemptions, which
        // then had no group path and queued behind each other (docs/benchmarks.md, session 9).
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let lane_count = if url.is_sqlite() { 1 } else { (pool_size as usize / 2).min(cores.max(2)).max(1) };
        let lanes = Arc::new(group_commit::Lanes::start(&writers, url.is_sqlite(), lane_count)?);
        let checkpointer = checkpoint::Checkpointer::start(&manager)?.map(Arc::new);
        let db = Database {
            readers,
            writers,
            lanes,
            manager,
            long_reads: Arc::new(tokio::sync::Semaphore::new(MAX_LONG_READS)),
            _checkpointer: checkpointer,
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn migrate(&self) -> anyhow::Result<usize> {
        let mut conn = self.writers.get()?;
        let migrations = migrations_for(&conn);
        let applied = conn
            .run_pending_migrations(migrations)
            .map_err(|err| anyhow::anyhow!("database migration failed: {err}"))?;
        Ok(applied.len())
    }

    /// (pool, connections open, connections idle), for the metrics.
    pub fn pool_usage(&self) -> Vec<(&'static str, u32, u32)> {
        let usage = |name, pool: &DbPool| {
            let state = pool.state();
            (name, state.connections, state.idle_connections)
        };
        vec![usage("readers", &self.readers), usage("writers", &self.writers)]
    }

    /// What the group commit has run so far, for the metrics.
    pub fn write_batches(&self) -> &group_commit::BatchCounts {
        self.lanes.counts()
    }

    /// A pooled connection for blocking code outside requests (start-up checks, CLI, tests).
    pub fn blocking_connection(&self) -> anyhow::Result<PooledDbConnection> {
        Ok(self.writers.get()?)
    }

    /// A permit to open a dedicated reader, if fewer than [`MAX_LONG_READS`] are open.
    pub fn reserve_long_read(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.long_reads.clone().try_acquire_owned().ok()
    }

    /// A new connection outside the pools, for one long read such as an export, so that it
    /// never holds a pooled connection other requests wait for. It refuses writes, and
    /// PostgreSQL cancels any of its statements still running after `statement_timeout`
    /// (SQLite has no such setting: the caller keeps its own deadline). Blocking.
    pub fn dedicated_reader(&self, statement_timeout: Duration) -> Result<DbConnection, ConnectError> {
        let mut conn = self.manager.connect()?;
        match &mut conn {
            DbConnection::Postgresql(pg) => {
                let timeout_ms = statement_timeout.as_millis();
                pg.batch_execute(&format!(
                    "SET statement_timeout = {timeout_ms}; SET default_transaction_read_only = on"
                ))?
            }
            DbConnection::Sqlite(sqlite) => sqlite.batch_execute("PRAGMA query_only = ON; PRAGMA temp_store = FILE")?,
        }
        Ok(conn)
    }

    /// Runs `f` on a reader connection, off the async workers.
    ///
    /// On SQLite `f` runs in one read transaction: it takes the WAL's read lock once
    /// instead of at every statement, and its reads see one state of the database.
    /// While it runs, checkpoints cannot pass its snapshot, so `f` should be short
    /// (long reads such as exports use a dedicated reader). PostgreSQL would pay two
    /// round trips more for a transaction, so there each statement stands alone.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.readers.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(ApiError::pool_timeout)?;
            match &*conn {
                DbConnection::Sqlite(_) => read_snapshot(&mut conn, f),
                DbConnection::Postgresql(_) => f(&mut conn),
            }
        })
        .await
        .map_err(ApiError::from)?
    }

    /// Runs `f` as one atomic write, off the async workers: it is applied with the
    /// writes queued beside it in one transaction (group commit), each in a savepoint
    /// of its own. Returns after COMMIT; if `f` fails, everything it wrote is rolled
    /// back and the other writes of its batch are unaffected.
    ///
    /// `lane` is the community or unit the write belongs to, or empty for writes of
    /// no unit (sign-ins, one's own account): writes of the same lane queue behind
    /// each other.
    pub async fn write<T, F>(&self, lane: &str, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.lanes.write(lane, f, None::<group_commit::OnError<T>>).await
    }

    /// [`Database::write`], but if `f` fails, `on_error` runs in its place, in the same
    /// transaction and after everything `f` wrote was rolled back: it may answer the
    /// failure with a write of its own (or pass the error on). One savepoint fewer than
    /// nesting `f` in a savepoint of its own inside the write.
    pub async fn write_or_else<T, F, G>(&self, lane: &str, f: F, on_error: G) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        G: FnOnce(&mut DbConnection, ApiError) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.lanes.write(lane, f, Some(on_error)).await
    }

    /// A seat in the writer lane of `lane_key`, for a write queued later by [`Database::write_in`]
    /// on behalf of this one: while it is held, writes of `lane_key` go to the same lane.
    pub fn seat(&self, lane_key: &str) -> group_commit::Seat {
        self.lanes.seat(lane_key)
    }

    /// [`Database::write`] in writer lane number `lane`, for a write that carries writes holding
    /// seats there ([`Database::seat`]).
    pub async fn write_in<T, F>(&self, lane: usize, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.lanes.write_in(lane, f).await
    }

    /// The same as [`Database::write`] for code outside a request (CLI, start-up).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error> + From<r2d2::PoolError>,
    {
        let mut conn = self.writers.get()?;
        write_transaction(&mut conn, f)
    }

    /// Runs `job` unless another server sharing this PostgreSQL database is running
    /// the job of the same name (a session advisory lock). SQLite has one server.
    pub fn exclusively<T>(&self, name: &str, job: impl FnOnce() -> T) -> anyhow::Result<Option<T>> {
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        let mut conn = self.readers.get()?;
        let DbConnection::Postgresql(pg) = &mut *conn else {
            return Ok(Some(job()));
        };
        let key = name.bytes().fold(0i64, |hash, byte| hash.wrapping_mul(31).wrapping_add(i64::from(byte)));
        let acquired: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(key)
            .get_result(pg)?;
        if !acquired.locked {
            return Ok(None);
        }
        // Released even if the job panics: a lock left on a pooled connection would stop
        // the job on every server until that connection closed.
        struct Unlock<'a>(&'a mut diesel::PgConnection, i64);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(self.1)
                    .execute(self.0);
                if let Err(err) = unlocked {
                    tracing::error!(error = %err, "releasing an advisory lock failed");
                }
            }
        }
        let _unlock = Unlock(pg, key);
        Ok(Some(job()))
    }

    /// PostgreSQL can be configured to acknowledge commits it has not made
    /// durable; say so loudly, since a 2xx must mean committed. A SQLite built
    /// without jifen's options works, but slowly; say so too.
    pub fn warn_about_unsafe_settings(&self) -> anyhow::Result<()> {
        #[derive(QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            setting: String,
        }
        let mut conn = self.readers.get()?;
        if let DbConnection::Postgresql(pg) = &mut *conn {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                let value: Setting =
                    diesel::sql_query(format!("SELECT current_setting('{name}') AS setting")).get_result(pg)?;
                if value.setting == "off" {
                    tracing::warn!(
                        setting = name,
                        "PostgreSQL has {name}=off: committed points may be lost on a crash"
                    );
                }
            }
        }
        if let DbConnection::Sqlite(sqlite) = &mut *conn {
            let missing = missing_sqlite_build_options(sqlite)?;
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    "SQLite was built without options jifen sets in .cargo/config.toml: it works, but several times slower"
                );
            }
        }
        Ok(())
    }
}

/// The compile-time options `.cargo/config.toml` builds SQLite with, as `PRAGMA compile_options` lists them.
const SQLITE_BUILD_OPTIONS: [&str; 2] = ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"];

fn missing_sqlite_build_options(conn: &mut diesel::SqliteConnection) -> QueryResult<Vec<&'static str>> {
    #[derive(QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }
    let built: Vec<CompileOption> = diesel::sql_query("PRAGMA compile_options").load(conn)?;
    Ok(SQLITE_BUILD_OPTIONS
        .into_iter()
        .filter(|wanted| !built.iter().any(|option| option.compile_options == *wanted))
        .collect())
}

/// The embedded migrations of the connection's backend.
pub fn migrations_for(conn: &DbConnection) -> EmbeddedMigrations {
    match conn {
        DbConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    }
}

fn connect_error(url: &DatabaseUrl, err: r2d2::PoolError) -> anyhow::Error {
    match url {
        DatabaseUrl::Postgres(_) => anyhow::anyhow!("cannot connect to PostgreSQL: {err}"),
        DatabaseUrl::Sqlite(path) => {
            anyhow::anyhow!("cannot open the SQLite database {}: {err}", path.display())
        }
    }
}

/// Runs `f` in a top-level transaction that may write.
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`: a deferred BEGIN that
/// reads and then writes fails with SQLITE_BUSY at once, whatever the busy
/// timeout, when another writer got there first.
fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?,
        DbConnection::Postgresql(_) => return conn.transaction(f),
    }
    finish_transaction(conn, f)
}

/// Runs `f` in a read-only transaction that sees one snapshot of the database throughout,
/// whatever is committed meanwhile: PostgreSQL's REPEATABLE READ; on SQLite (WAL) a read
/// transaction, whose snapshot is taken by its first read.
pub fn read_snapshot<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN DEFERRED")?,
        DbConnection::Postgresql(pg) => {
            AnsiTransactionManager::begin_transaction_sql(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?
        }
    }
    finish_transaction(conn, f)
}

/// Runs `f` in the transaction just begun, and commits, or rolls back if it failed.
fn finish_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The original error is what the caller must see; a failed rollback only needs logging
            // (the broken connection is then discarded by the pool).
            if let Err(rollback) = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// For the rest of the current transaction, asks PostgreSQL for plans that follow an index
/// rather than sort: a stream in index order sends its first row at once and keeps memory
/// flat, where PostgreSQL left to itself would sort a whole ledger (spilling to disk) first.
pub fn prefer_index_order(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgresql(pg) => pg.batch_execute("SET LOCAL enable_sort = off"),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Hands the rows of `query` to `each` as the database returns them, never holding the
/// whole result: PostgreSQL in single-row mode, SQLite stepping its statement lazily.
/// Stops at the first error of the query or of `each`.
pub fn for_each_row<'query, Q, U, E>(
    conn: &mut DbConnection,
    query: Q,
    mut each: impl FnMut(U) -> Result<(), E>,
) -> Result<(), E>
where
    Q: LoadQuery<'query, diesel::PgConnection, U, PgRowByRowLoadingMode>
        + LoadQuery<'query, diesel::SqliteConnection, U, DefaultLoadingMode>
        + 'query,
    U: 'query,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Postgresql(pg) => {
            for row in query.load_iter::<U, PgRowByRowLoadingMode>(pg)? {
                each(row?)?;
            }
        }
        DbConnection::Sqlite(sqlite) => {
            for row in query.load_iter::<U, DefaultLoadingMode>(sqlite)? {
                each(row?)?;
            }
        }
    }
    Ok(())
}

/// Runs a query on the concrete connection behind a [`DbConnection`], for the queries of the
/// hot paths: every request's caller, balance reads, and the ledger's writes.
///
/// diesel's `MultiConnection` builds a query's SQL twice at every execution, even when the
/// statement is cached (its `SerializedQuery` wrapper): 43 % of the database work of a
/// balance read. On the concrete connection most cached statements are found by the query's
/// type, without building SQL at all ([`KeepPrepared`] ones by their SQL, built once). The
/// query is written once and compiled for each backend; `|conn|` names the concrete
/// connection in it.
#[macro_export]
macro_rules! direct {
    ($conn:expr, |$concrete:ident| $query:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($concrete) => $query,
            $crate::db::DbConnection::Sqlite($concrete) => $query,
        }
    };
}

/// A statement diesel would prepare anew at every execution, kept prepared instead.
///
/// diesel never caches an UPDATE, raw SQL, an `IN` list or a multi-row INSERT, because such
/// a statement's SQL may change from one execution to the next. Preparing again costs SQLite a
/// parse and a plan each time (a tenth of the writer thread in the award benchmark) and
/// PostgreSQL a parse. Wrapped, the statement is cached under its SQL text, which describes it
/// fully: each shape it takes is prepared once per connection. Only for statements of few
/// shapes; a changeset of optional fields may take 2ⁿ.
///
/// An UPDATE or INSERT must return its rows' ids (`returning(table::id)`) and run through
/// [`KeepPrepared::execute`]: diesel's own `execute` passes the statement on by reference,
/// and a reference is never asked whether it may be cached.
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<Q>(Q);

impl<Q> KeepPrepared<Q> {
    /// Runs the statement and counts the ids it returns: the rows it changed.
    pub fn execute<'query, Conn>(self, conn: &mut Conn) -> QueryResult<usize>
    where
        Self: diesel::query_dsl::LoadQuery<'query, Conn, String>,
    {
        Ok(RunQueryDsl::load::<String>(self, conn)?.len())
    }
}

pub trait KeepPreparedDsl: Sized {
    fn keep_prepared(self) -> KeepPrepared<Self> {
        KeepPrepared(self)
    }
}

impl<Q> KeepPreparedDsl for Q {}

impl<Q, DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for KeepPrepared<Q>
where
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the statement cache keys the statement by its SQL.
impl<Q> diesel::query_builder::QueryId for KeepPrepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for KeepPrepared<Q> {}

/// The id of a row a raw UPDATE changed (its `RETURNING`). Rows of raw SQL are untyped and
/// load only into a `QueryableByName` type, so [`KeepPrepared::execute`] (ids as `String`) does not apply.
#[derive(diesel::QueryableByName)]
pub struct ChangedId {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = id)]
    _id: String,
}

/// Checks that a statement of many rows changed every one of them: a row that went missing
/// would lose a credit or a chain head silently, and a guard that held one back means a check
/// made in memory was wrong.
pub fn changed_all(changed: Vec<ChangedId>, expected: usize, what: &str) -> QueryResult<()> {
    if changed.len() == expected {
        return Ok(());
    }
    let message = format!("{what}: {} of {expected} rows changed", changed.len());
    Err(diesel::result::Error::QueryBuilderError(message.into()))
}

/// Inserts many rows. PostgreSQL takes them in one statement, to save round trips, kept
/// prepared for each number of rows up to [`MAX_KEPT_ROWS`] (it returns `$id`, a text
/// column, as [`KeepPrepared`] requires); larger inserts are rare and prepared each time.
/// SQLite has no round trips to save: a cached single-row INSERT per row costs less than
/// preparing a multi-row one. The MultiConnection backend has no batch insert, so this
/// dispatches to the concrete connection.
#[macro_export]
macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr, $id:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql(conn) if ($rows).len() <= $crate::db::MAX_KEPT_ROWS => {
                $crate::db::KeepPreparedDsl::keep_prepared(diesel::insert_into($table).values($rows).returning($id))
                    .execute(conn)
            }
            $crate::db::DbConnection::Postgresql(conn) => {
                diesel::RunQueryDsl::execute(diesel::insert_into($table).values($rows), conn)
            }
            $crate::db::DbConnection::Sqlite(conn) => ($rows).into_iter().try_fold(0, |inserted, row| {
                diesel::RunQueryDsl::execute(diesel::insert_into($table).values(row), conn).map(|one| inserted + one)
            }),
        }
    };
}

/// A migrated SQLite database in a temporary folder, for unit tests; the folder goes with the guard.
#[cfg(test)]
pub fn migrated_sqlite() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = Database::connect(DatabaseUrl::Sqlite(dir.path().join("jifen.db")), 1).expect("a migrated database");
    (dir, db)
}

/// The values of a statement kept prepared ([`KeepPrepared`]) whose SQL grows with them (an
/// `IN` list on SQLite, a chain of ORs), padded to a power of two with copies of the last,
/// which match nothing more: each length is a statement of its own, and lists of up to 1,024
/// values make at most 11. (PostgreSQL binds an `IN` list as one array, whatever its length.)
pub fn kept_in_list<T: Clone>(values: &[T]) -> Vec<T> {
    let mut padded = values.to_vec();
    if let Some(last) = values.last() {
        padded.resize(values.len().next_power_of_two(), last.clone());
    }
    padded
}

/// Rows up to which [`insert_all!`] keeps a multi-row INSERT prepared: the postings of an
/// award to a few residents, a debit's lot movements. Each number of rows is a statement of
/// its own in every pooled connection.
pub const MAX_KEPT_ROWS: usize = 8;

/// Declares a constant that queries spell out in their SQL instead of binding it.
///
/// A partial index (`… WHERE kind = 'resident'`, `… WHERE remaining > 0`) serves a query
/// only if the query's own condition shows that the index's condition holds, and a bound
/// `?` cannot show it: SQLite (built with `SQLITE_ENABLE_QPSG`, see `.cargo/config.toml`)
/// and PostgreSQL's generic plans would scan instead. Each constant is a type of its own,
/// so diesel still caches the statements that use it.
#[macro_export]
macro_rules! sql_constant {
    ($(#[$doc:meta])* $name:ident: $sql_type:ty = $sql:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, diesel::query_builder::QueryId, diesel::expression::ValidGrouping)]
        pub struct $name;

        impl $name {
            pub const SQL: &'static str = $sql;
        }

        impl diesel::expression::Expression for $name {
            type SqlType = $sql_type;
        }

        impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for $name {
            fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl<QS> diesel::expression::AppearsOnTable<QS> for $name {}
        impl<QS> diesel::expression::SelectableExpression<QS> for $name {}
    };
}

/// A new row id: UUIDv7, so ids sort by creation time and keyset pages follow it.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_built_with_jifens_options() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        assert_eq!(missing_sqlite_build_options(&mut conn).expect("compile options"), Vec::<&str>::new());
    }

    diesel::table! {
        counters (id) {
            id -> Text,
            hits -> BigInt,
        }
    }

    /// Prepares statements on `conn` and counts those diesel keeps in its cache.
    fn count_cached(conn: &mut impl Connection) -> Arc<std::sync::atomic::AtomicUsize> {
        let cached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = cached.clone();
        conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if matches!(event, diesel::connection::InstrumentationEvent::CacheQuery { .. }) {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        cached
    }

    #[test]
    fn kept_statements_are_prepared_once() {
        let connect = || {
            let mut sqlite = diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite");
            sqlite
                .batch_execute("CREATE TABLE counters (id TEXT PRIMARY KEY, hits BIGINT NOT NULL); INSERT INTO counters VALUES ('a', 0)")
                .expect("table");
            sqlite
        };
        let mut sqlite = connect();
        let bump = || diesel::update(counters::table.find("a")).set(counters::hits.eq(counters::hits + 1));

        let cached = count_cached(&mut sqlite);
        for _ in 0..3 {
            bump().execute(&mut sqlite).expect("plain update");
        }
        assert_eq!(cached.load(std::sync::atomic::Ordering::Relaxed), 0, "diesel caches no UPDATE by itself");

        for _ in 0..3 {
            let changed = bump().returning(counters::id).keep_prepared().execute(&mut sqlite).expect("kept update");
            assert_eq!(changed, 1);
        }
        assert_eq!(cached.load(std::sync::atomic::Ordering::Relaxed), 1, "directly: prepared once, then reused");

        let mut multi = DbConnection::Sqlite(connect());
        let cached = count_cached(&mut multi);
        for _ in 0..3 {
            bump().returning(counters::id).keep_prepared().execute(&mut multi).expect("kept update");
        }
        assert_eq!(cached.load(std::sync::atomic::Ordering::Relaxed), 1, "through DbConnection: prepared once");
        let hits: i64 = counters::table.select(counters::hits).first(&mut multi).expect("hits");
        assert_eq!(hits, 3);
    }

    /// Writes reach the database file without a commit checkpointing: 4 MB of them stay
    /// below the commits' own threshold, so only the checkpoint thread can have copied them.
    #[test]
    fn the_wal_is_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("jifen.db");
        let db = Database::connect(DatabaseUrl::Sqlite(path.clone()), 2).expect("database");
        let before = std::fs::metadata(&path).expect("database file").len();
        db.write_blocking(|conn| -> anyhow::Result<()> {
            Ok(conn.batch_execute(
                "CREATE TABLE scratch (data BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
                 INSERT INTO scratch SELECT randomblob(1000) FROM n",
            )?)
        })
        .expect("4 MB written");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).expect("database file").len() < before + 3_000_000 {
            assert!(std::time::Instant::now() < deadline, "the WAL was not checkpointed within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn backend_comes_from_the_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://./data/jifen.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("./data/jifen.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/jifen.db"),
            Ok(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/jifen.db")))
        );
        assert!(matches!(DatabaseUrl::parse("postgres://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        assert!(matches!(DatabaseUrl::parse("postgresql://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        for bad in ["mysql://h/db", "./jifen.db", "\"sqlite://x.db\"", "sqlite://", "sqlite://:memory:"] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(err.contains("JIFEN_DATABASE_URL"), "{err}");
        }
    }
}
