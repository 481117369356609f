//! What a large ledger export costs the running server: its peak memory growth, its speed,
//! and the latency of other requests meanwhile.
//!
//! ```text
//! cargo bench --bench export_memory                     # SQLite and PostgreSQL, 1,000,000 postings
//! cargo bench --bench export_memory -- sqlite --postings 200000
//! ```
//!
//! For each backend it seeds a fresh database (migrated, then bulk inserts of one community's
//! ledger: awards of 10 points from the issuance account to 1,000 residents in turn, two postings
//! each, with a valid hash chain), starts the release `jifen` binary on it, and streams the whole
//! `ledger.csv` over HTTP, counting bytes and rows without keeping them, while another task asks
//! for `/readyz` and a resident's balance every 100 ms. Memory is read from `/proc/<pid>/status`:
//! the peak (`VmHWM`) is reset just before the export, so its growth is the export's.
//! PostgreSQL: `JIFEN_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/jifen_bench_exports`); that database is dropped and made anew.
//! Lots are not seeded (the export does not read them), so the seeded ledger cannot be spent from.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use jifen::auth::model::User;
use jifen::clock::SystemClock;
use jifen::db::schema::{ledger_postings, ledger_transactions};
use jifen::db::{Database, DatabaseUrl, DbConnection, new_id};
use jifen::ledger::chain::{GENESIS_HASH, chained_hash};
use jifen::ledger::model::{Account, AccountKind, LedgerHead, LedgerTransaction, Posting};
use jifen::units::model::{Membership, MembershipStatus, Roles, Unit, UnitKind};
use serde_json::{Value, json};

const RESIDENTS: usize = 1_000;
/// Transactions per INSERT: within both backends' limits on bound parameters.
const BATCH: usize = 1_000;
const PASSWORD: &str = "bench password, not secret";
const JWT_SECRET: &str = "bench secret: thirty-two bytes or more, really";
const PROBE_EVERY: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let mut backends = Vec::new();
    let mut postings = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "sqlite" | "postgres" => backends.push(arg),
            "--postings" => postings = args.next().context("--postings N")?.parse()?,
            // `cargo bench` passes --bench; a filter may follow.
            _ => {}
        }
    }
    if backends.is_empty() {
        backends = vec!["sqlite".to_owned(), "postgres".to_owned()];
    }
    for backend in backends {
        let dir = tempfile::tempdir()?;
        let url = match backend.as_str() {
            "sqlite" => format!("sqlite://{}", dir.path().join("bench.db").display()),
            _ => fresh_postgres()?,
        };
        let seeded = Instant::now();
        let seed = seed(DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?, postings / 2)?;
        println!("{backend}: seeded {postings} postings in {:.1} s", seeded.elapsed().as_secs_f64());
        let report = tokio::runtime::Runtime::new()?.block_on(measure(&url, &seed))?;
        println!("{backend}: {report}");
    }
    Ok(())
}

fn fresh_postgres() -> anyhow::Result<String> {
    let url = std::env::var("JIFEN_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/jifen_bench_exports".to_owned());
    let (server, name) = url.rsplit_once('/').context("the URL ends in /DATABASE")?;
    let mut admin = diesel::PgConnection::establish(&format!("{server}/postgres"))?;
    // Two statements: PostgreSQL runs a multi-statement string in one transaction, which DROP DATABASE refuses.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(url)
}

struct Seed {
    community_id: String,
    resident_id: String,
    transactions: i64,
}

fn unit(kind: UnitKind, name: &str, parent: &Unit, now: NaiveDateTime) -> Unit {
    let id = new_id();
    let community = kind == UnitKind::Community;
    Unit {
        path: parent.child_path(&id),
        id,
        kind: kind.as_str().to_owned(),
        parent_id: Some(parent.id.clone()),
        name: name.to_owned(),
        timezone: community.then(|| "Asia/Shanghai".to_owned()),
        join_code: community.then(|| "BENCH234".to_owned()),
        created_at: now,
        updated_at: now,
        expiry_policy: community.then(|| "never".to_owned()),
        expiry_days: None,
        max_open_claims: community.then_some(5),
        pickup_window_days: community.then_some(14),
    }
}

fn member(conn: &mut DbConnection, unit: &Unit, username: &str, roles: Roles, hash: &str) -> anyhow::Result<User> {
    let now = Utc::now().naive_utc();
    let user = User::new(username.to_owned(), format!("居民{username}"), None, hash.to_owned(), now);
    user.insert(conn)?;
    Membership::new(&unit.id, &user.id, roles, MembershipStatus::Active, now).insert(conn)?;
    Ok(user)
}

/// A district, a street and a community with an auditor, staff and residents, and
/// `transactions` awards, each chained to the one before.
fn seed(url: DatabaseUrl, transactions: usize) -> anyhow::Result<Seed> {
    let db = Database::connect(url, 2)?;
    jifen::startup::bootstrap(&db, &SystemClock, Some(PASSWORD))?;
    let mut pooled = db.blocking_connection()?;
    let conn = &mut *pooled;
    if let DbConnection::Postgresql(pg) = conn {
        // Seeding only: the benchmark measures reading.
        pg.batch_execute("SET synchronous_commit = off")?;
    }
    let now = Utc::now().naive_utc();
    let platform = Unit::platform(conn)?.context("bootstrap made the platform")?;
    let district = unit(UnitKind::District, "基准区", &platform, now);
    let street = unit(UnitKind::Street, "基准街道", &district, now);
    let community = unit(UnitKind::Community, "基准社区", &street, now);
    let auditor_hash = jifen::auth::password::hash(PASSWORD)?;
    let (issuance, residents, staff) = conn.transaction(|conn| -> anyhow::Result<_> {
        for unit in [&district, &street, &community] {
            unit.insert(conn)?;
        }
        Account::open_community(conn, &community.id, now)?;
        member(conn, &street, "bench.auditor", Roles { auditor: true, ..Roles::default() }, &auditor_hash)?;
        let staff = member(conn, &community, "bench.staff", Roles { staff: true, ..Roles::default() }, "-")?;
        let mut residents = Vec::with_capacity(RESIDENTS);
        for n in 0..RESIDENTS {
            let resident = Roles { resident: true, ..Roles::default() };
            let user = member(conn, &community, &format!("bench.resident{n}"), resident, "-")?;
            Account::open_resident(conn, &community.id, &user.id, now)?;
            residents.push(Account::resident(conn, &community.id, &user.id)?.context("resident account")?);
        }
        Ok((Account::system(conn, &community.id, AccountKind::Issuance)?, residents, staff))
    })?;

    let start = now - chrono::Duration::minutes(i64::try_from(transactions)?);
    let mut previous_hash = GENESIS_HASH.to_owned();
    let mut sequence = 0i64;
    for first in (0..transactions).step_by(BATCH) {
        let batch = first..transactions.min(first + BATCH);
        let mut rows = Vec::with_capacity(BATCH);
        let mut postings = Vec::with_capacity(2 * BATCH);
        for n in batch {
            sequence += 1;
            let mut transaction = LedgerTransaction {
                id: new_id(),
                community_id: community.id.clone(),
                sequence,
                kind: "award".to_owned(),
                rule_code: Some("volunteering".to_owned()),
                memo: format!("参加志愿服务 第{n}次"),
                actor_id: Some(staff.id.clone()),
                cause_type: None,
                cause_id: None,
                reverses_id: None,
                created_at: start + chrono::Duration::minutes(i64::try_from(n)?),
                previous_hash: previous_hash.clone(),
                hash: String::new(),
            };
            let resident = &residents[n % RESIDENTS];
            let legs = [(1, &issuance.id, -10), (2, &resident.id, 10)].map(|(line, account_id, amount)| Posting {
                transaction_id: transaction.id.clone(),
                line,
                account_id: account_id.clone(),
                amount,
            });
            transaction.hash = chained_hash(&previous_hash, &transaction, &legs);
            previous_hash = transaction.hash.clone();
            rows.push(transaction);
            postings.extend(legs);
        }
        conn.transaction(|conn| -> QueryResult<()> {
            jifen::insert_all!(&mut *conn, ledger_transactions::table, &rows, ledger_transactions::id)?;
            jifen::insert_all!(&mut *conn, ledger_postings::table, &postings, ledger_postings::transaction_id)?;
            Ok(())
        })?;
    }
    let mut lock = LedgerHead::lock(conn, &community.id)?;
    LedgerHead::advance(conn, &mut lock, sequence, previous_hash)?;
    conn.batch_execute(
        "UPDATE accounts SET balance = (SELECT COALESCE(SUM(amount), 0) FROM ledger_postings WHERE account_id = accounts.id)",
    )?;
    if let DbConnection::Postgresql(pg) = conn {
        // What autovacuum does soon after a bulk load; without statistics the planner sorts
        // the whole ledger before the first row.
        pg.batch_execute("ANALYZE")?;
    }
    Ok(Seed {
        community_id: community.id,
        resident_id: residents[0].user_id.clone().unwrap_or_default(),
        transactions: sequence,
    })
}

/// The running server, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of /proc/<pid>/status, in KiB.
fn proc_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with(field)).context("no such field")?;
    Ok(line.split_whitespace().nth(1).context("a number")?.parse()?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn latencies(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "n={} p50={:.1} ms p95={:.1} ms max={:.1} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// `/readyz` and a balance, every [`PROBE_EVERY`] until `stop`; their latencies in ms.
async fn probe(
    client: reqwest::Client,
    base: String,
    balance: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<f64> {
    let mut ms = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for url in [format!("{base}/readyz"), format!("{base}{balance}")] {
            let started = Instant::now();
            let response = client.get(url).bearer_auth(&token).send().await;
            if response.is_ok_and(|response| response.status().is_success()) {
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            } else {
                ms.push(f64::INFINITY);
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    ms
}

async fn measure(url: &str, seed: &Seed) -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_jifen"))
            .env("JIFEN_DATABASE_URL", url)
            // As jifen-bench: no TLS to a database on the same machine unless PGSSLMODE says so.
            .env("PGSSLMODE", std::env::var("PGSSLMODE").unwrap_or_else(|_| "disable".to_owned()))
            .env("JIFEN_BIND", format!("127.0.0.1:{port}"))
            .env("JIFEN_JWT_SECRET", JWT_SECRET)
            .env("JIFEN_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = json!({"username": "bench.auditor", "password": PASSWORD});
    let tokens: Value = client.post(format!("{base}/api/v1/auth/login")).json(&login).send().await?.json().await?;
    let token = tokens["access_token"].as_str().context("an access token")?.to_owned();
    let export = format!("{base}/api/v1/communities/{}/exports/ledger.csv", seed.community_id);
    let balance = format!("/api/v1/communities/{}/accounts/{}", seed.community_id, seed.resident_id);

    // Warm up every path once, then measure the probes with nothing else going on.
    client.get(format!("{export}?from=9998-01-01")).bearer_auth(&token).send().await?.bytes().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn(probe(client.clone(), base.clone(), balance.clone(), token.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let idle = idle.await?;

    let rss_before = proc_kib(pid, "VmRSS:")?;
    // Resets VmHWM to the current RSS (see proc(5), clear_refs).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn(probe(client.clone(), base.clone(), balance, token.clone(), stop.clone()));
    let started = Instant::now();
    let mut response = client.get(&export).bearer_auth(&token).send().await?.error_for_status()?;
    let head = response.headers().get("x-jifen-chain-sequence").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (mut bytes, mut lines, mut first_byte, mut rss_max) = (0usize, 0usize, None, 0);
    while let Some(chunk) = response.chunk().await? {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
        rss_max = rss_max.max(proc_kib(pid, "VmRSS:")?);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy = busy.await?;
    let peak = proc_kib(pid, "VmHWM:")?;
    drop(server);

    let rows = lines.saturating_sub(1);
    if head.as_deref() != Some(seed.transactions.to_string().as_str()) || rows != 2 * seed.transactions as usize {
        bail!(
            "expected {} rows at head {}, got {rows} rows at head {head:?}",
            2 * seed.transactions,
            seed.transactions
        );
    }
    let seconds = elapsed.as_secs_f64();
    Ok(format!(
        "{rows} rows, {:.1} MB in {seconds:.1} s: {:.0} rows/s, {:.1} MB/s, first byte after {:.0} ms\n  \
         RSS before {:.1} MB, peak during the export {:.1} MB (growth {:.1} MB; highest sampled RSS {:.1} MB)\n  \
         other requests idle: {}\n  other requests during the export: {}",
        bytes as f64 / 1e6,
        rows as f64 / seconds,
        bytes as f64 / 1e6 / seconds,
        first_byte.unwrap_or_default().as_secs_f64() * 1000.0,
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak as f64 - rss_before as f64) / 1024.0,
        rss_max as f64 / 1024.0,
        latencies(idle),
        latencies(busy),
    ))
}
