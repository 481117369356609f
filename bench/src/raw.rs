//! The raw reference: the least a points ledger must do per operation, on the same database
//! and machine, one transaction per operation with durable commits. PostgreSQL through pgbench
//! (shared/reference/perf.md §2), SQLite from Rust in WAL mode with synchronous=FULL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// INSERT one entry and UPDATE one of 10,000 balances.
    Award,
    /// The same, always on the same balance.
    Hot,
    /// Guarded stock decrement of one of 100 rewards, guarded debit of a balance, one entry.
    Redeem,
}

const PG_SCHEMA: &str = include_str!("../sql/schema.sql");
const SQLITE_SCHEMA: &str = include_str!("../sql/schema_sqlite.sql");

fn script(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Award => ("award.sql", include_str!("../sql/award.sql")),
        Kind::Hot => ("award_hot.sql", include_str!("../sql/award_hot.sql")),
        Kind::Redeem => ("redeem.sql", include_str!("../sql/redeem.sql")),
    }
}

/// The `PGSSLMODE` jifen and pgbench connect with: `disable` unless set. The database shares
/// the machine, as in docker-compose.yml, whose connection is not encrypted either (the
/// postgres image runs with ssl off). TLS on loopback would tax jifen's twenty-odd round trips
/// per award and pgbench's few alike, and measure the cipher rather than the ledger.
pub fn ssl_mode() -> String {
    std::env::var("PGSSLMODE").unwrap_or_else(|_| "disable".to_owned())
}

/// Drops and creates the database the URL names (on the same server's `postgres` database).
pub fn fresh_postgres(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("the PostgreSQL URL ends in /DATABASE")?;
    let mut admin = diesel::PgConnection::establish(&format!("{server}/postgres"))
        .with_context(|| format!("cannot connect to {server}/postgres"))?;
    // Two statements: PostgreSQL runs a multi-statement string in one transaction, which DROP DATABASE refuses.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(())
}

pub fn drop_postgres(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("the PostgreSQL URL ends in /DATABASE")?;
    let mut admin = diesel::PgConnection::establish(&format!("{server}/postgres"))?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(())
}

/// Writes what is in memory to disk now, so that no run pays for the previous one's checkpoint.
pub fn checkpoint(url: &str) -> anyhow::Result<()> {
    diesel::PgConnection::establish(url)?.batch_execute("CHECKPOINT")?;
    Ok(())
}

/// A fresh reference database with 10,000 accounts and 100 rewards.
pub fn prepare_postgres(url: &str) -> anyhow::Result<()> {
    fresh_postgres(url)?;
    let mut conn = diesel::PgConnection::establish(url)?;
    conn.batch_execute(PG_SCHEMA)?;
    conn.batch_execute("VACUUM ANALYZE")?;
    Ok(())
}

/// pgbench on PATH, or the newest under /usr/lib/postgresql.
pub fn find_pgbench(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    if Command::new("pgbench").arg("--version").output().is_ok_and(|out| out.status.success()) {
        return Ok(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|dir| dir.path().join("bin/pgbench")).filter(|path| path.exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().context("pgbench not found: install postgresql-client or pass --pgbench PATH")
}

/// Transactions per second of `clients` pgbench clients for `duration`.
pub fn pgbench(pgbench: &Path, url: &str, kind: Kind, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let (name, text) = script(kind);
    let path = dir.path().join(name);
    std::fs::write(&path, text)?;
    checkpoint(url)?;
    let output = Command::new(pgbench)
        .env("PGSSLMODE", ssl_mode())
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&path)
        .args(["-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg(url)
        .output()
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    let tps = stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))?;
    Ok(tps.parse()?)
}

#[derive(QueryableByName)]
struct Cost {
    #[diesel(sql_type = BigInt)]
    cost: i64,
}

/// Operations per second of one SQLite connection for `duration` (SQLite has one writer at a
/// time, so this is its ceiling at any concurrency), on a fresh database in `dir`.
pub fn sqlite(dir: &Path, kind: Kind, duration: Duration) -> anyhow::Result<f64> {
    let path = dir.join(format!("raw-{kind:?}.db").to_lowercase());
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
    for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"] {
        conn.batch_execute(pragma)?;
    }
    conn.batch_execute(SQLITE_SCHEMA)?;
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < duration {
        let account: i64 = if matches!(kind, Kind::Hot) { 1 } else { rng.gen_range(1..=10_000) };
        conn.batch_execute("BEGIN IMMEDIATE")?;
        let commit = match kind {
            Kind::Award | Kind::Hot => {
                let points: i64 = rng.gen_range(1..=100);
                diesel::sql_query(
                    "INSERT INTO ledger_entries (account_id, kind, delta, reason) VALUES (?, 'award', ?, 'raw')",
                )
                .bind::<BigInt, _>(account)
                .bind::<BigInt, _>(points)
                .execute(&mut conn)?;
                diesel::sql_query(
                    "UPDATE accounts SET balance = balance + ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?",
                )
                .bind::<BigInt, _>(points)
                .bind::<BigInt, _>(account)
                .execute(&mut conn)?;
                true
            }
            Kind::Redeem => {
                let reward: i64 = rng.gen_range(1..=100);
                let cost: Vec<Cost> =
                    diesel::sql_query("UPDATE rewards SET stock = stock - 1 WHERE id = ? AND stock > 0 RETURNING cost")
                        .bind::<BigInt, _>(reward)
                        .load(&mut conn)?;
                match cost.first() {
                    Some(Cost { cost }) => {
                        let debited = diesel::sql_query(
                            "UPDATE accounts SET balance = balance - ?, updated_at = CURRENT_TIMESTAMP WHERE id = ? AND balance >= ?",
                        )
                        .bind::<BigInt, _>(cost)
                        .bind::<BigInt, _>(account)
                        .bind::<BigInt, _>(cost)
                        .execute(&mut conn)?;
                        if debited == 1 {
                            diesel::sql_query("INSERT INTO ledger_entries (account_id, kind, delta, reward_id, reason) VALUES (?, 'redeem', ?, ?, 'raw')")
                                .bind::<BigInt, _>(account)
                                .bind::<BigInt, _>(-cost)
                                .bind::<BigInt, _>(reward)
                                .execute(&mut conn)?;
                        }
                        debited == 1
                    }
                    None => false,
                }
            }
        };
        conn.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })?;
        done += 1;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}
