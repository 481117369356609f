//! `jifen-bench`: how fast jifen is on this machine, next to what its database can do raw.
//!
//! ```text
//! cargo run --release --bin jifen-bench -- --backend sqlite      # the full run (docs/benchmarks.md)
//! cargo run --release --bin jifen-bench -- --backend postgres
//! cargo run --bin jifen-bench -- --smoke                         # tiny counts, seconds (CI)
//! ```
//!
//! For each backend it builds and starts the real `jifen` binary on a fresh database, seeds a
//! dataset through the API, runs the scenarios (exports, balance, history pages, awards, hot
//! account, orders), checks the ledger's invariants after each, stops the server and measures
//! the raw reference on the same database. It prints one table per backend and exits non-zero
//! if a request failed or an invariant broke; a missed target is reported, not an error.

mod invariants;
mod load;
mod raw;
mod report;
mod scenarios;
mod seed;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use reqwest::Client;

use crate::invariants::Sql;
use crate::load::{Operation, Outcome, closed_loop, open_loop};
use crate::report::{Export, Row, Target};
use crate::seed::{AWARD_POINTS, Dataset, Size};
use crate::server::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
#[command(
    name = "jifen-bench",
    about = "Load-test jifen's release build against the raw database (docs/benchmarks.md)"
)]
struct Cli {
    /// Backend to measure; repeat for both. Default: SQLite, and PostgreSQL if it answers.
    #[arg(long, value_enum)]
    backend: Vec<Backend>,
    /// Tiny counts and one-second runs: checks that the harness works (CI), measures nothing.
    #[arg(long)]
    smoke: bool,
    /// The server's database on PostgreSQL (dropped and made anew); the raw reference uses
    /// the same name with `_raw` appended.
    #[arg(long, env = "JIFEN_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/jifen_bench")]
    postgres_url: String,
    /// Seconds of each measured run [default: 10; smoke 1].
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds of unmeasured load before each closed-loop run [default: 2; smoke 0].
    #[arg(long)]
    warmup: Option<u64>,
    /// Concurrent clients of the closed-loop runs and of pgbench [default: 16; smoke 4].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Offered rate of the open-loop runs, as a fraction of the closed-loop maximum.
    #[arg(long, default_value_t = 0.5)]
    open_fraction: f64,
    /// Communities [default: 50; smoke 2].
    #[arg(long)]
    communities: Option<usize>,
    /// Residents per community [default: 200; smoke 8].
    #[arg(long)]
    residents: Option<usize>,
    /// Rewards in all [default: 100; smoke 4].
    #[arg(long)]
    rewards: Option<usize>,
    /// Ledger postings of the seeded history [default: 1000000; smoke 1500].
    #[arg(long)]
    postings: Option<usize>,
    /// Single-resident awards in the first community, whose history is paged [default: 50000; smoke 160].
    #[arg(long)]
    history_transactions: Option<usize>,
    /// The deep history page to read (50 per page) [default: 1000; smoke 3].
    #[arg(long)]
    deep_page: Option<usize>,
    /// Residents who sign in, order and read their balance [default: 200; smoke 4].
    #[arg(long)]
    redeemers: Option<usize>,
    /// The jifen binary [default: `jifen` beside this program, built first when run through cargo].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Do not run `cargo build --bin jifen` first.
    #[arg(long)]
    no_build: bool,
    /// The server's RUST_LOG (every request is logged at info, as in production).
    #[arg(long, default_value = "info")]
    server_log: String,
    /// pgbench [default: on PATH, else the newest in /usr/lib/postgresql/*/bin].
    #[arg(long)]
    pgbench: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Plan {
    size: Size,
    duration: Duration,
    warmup: Duration,
}

impl Cli {
    fn plan(&self) -> Plan {
        let pick =
            |value: Option<usize>, full: usize, smoke: usize| value.unwrap_or(if self.smoke { smoke } else { full });
        let concurrency = pick(self.concurrency, 16, 4).max(1);
        let size = Size {
            communities: pick(self.communities, 50, 2).max(1),
            residents: pick(self.residents, 200, 8).max(2),
            rewards: pick(self.rewards, 100, 4),
            postings: pick(self.postings, 1_000_000, 1_500),
            history_transactions: pick(self.history_transactions, 50_000, 160),
            deep_page: pick(self.deep_page, 1000, 3).max(1),
            redeemers: pick(self.redeemers, 200, 4).max(1),
            concurrency,
        };
        let seconds = |value: Option<u64>, full: u64, smoke: u64| {
            Duration::from_secs(value.unwrap_or(if self.smoke { smoke } else { full }))
        };
        Plan {
            size,
            duration: seconds(self.duration, 10, 1).max(Duration::from_secs(1)),
            warmup: seconds(self.warmup, 2, 0),
        }
    }
}

fn main() -> anyhow::Result<()> {
    if !run(Cli::parse())? {
        std::process::exit(1);
    }
    Ok(())
}

/// Every backend asked for; false if one of them failed (a request or an invariant).
fn run(cli: Cli) -> anyhow::Result<bool> {
    let binary = server::server_binary(cli.server.clone(), !cli.no_build)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut backends = cli.backend.clone();
    if backends.is_empty() {
        backends.push(Backend::Sqlite);
        match <diesel::PgConnection as diesel::Connection>::establish(&postgres_admin_url(&cli.postgres_url)) {
            Ok(_) => backends.push(Backend::Postgres),
            Err(err) => println!("PostgreSQL does not answer ({err}); measuring SQLite only"),
        }
    }
    let mut reports = Vec::new();
    let mut failed = false;
    for backend in backends {
        let started = Instant::now();
        println!("== {backend:?}: {}", if cli.smoke { "smoke run" } else { "full run" });
        match runtime.block_on(run_backend(&cli, backend, &binary)) {
            Ok(rows) => {
                println!("\n{}", report::table(&format!("{backend:?}"), &rows));
                println!("{backend:?} took {:.0} s\n", started.elapsed().as_secs_f64());
                reports.push((format!("{backend:?}").to_lowercase(), rows));
            }
            Err(err) => {
                eprintln!("{backend:?} FAILED after {:.0} s: {err:#}", started.elapsed().as_secs_f64());
                failed = true;
            }
        }
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report::json(&reports))?)?;
    }
    Ok(!failed)
}

fn postgres_admin_url(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/postgres"),
        None => url.to_owned(),
    }
}

/// Runs `check` and fails loudly if an invariant is broken.
async fn assert_invariants(
    client: &Client,
    sql: &mut Sql,
    dataset: &Dataset,
    hot_balance: i64,
    after: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let broken = invariants::check(client, sql, dataset, hot_balance).await?;
    if !broken.is_empty() {
        bail!("INVARIANT BROKEN after {after}:\n  {}", broken.join("\n  "));
    }
    println!("  invariants hold after {after} (checked in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

async fn run_backend(cli: &Cli, backend: Backend, binary: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let plan = cli.plan();
    let size = &plan.size;
    let dir = tempfile::tempdir()?;
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("jifen.db").display()),
        Backend::Postgres => {
            raw::fresh_postgres(&cli.postgres_url)?;
            cli.postgres_url.clone()
        }
    };
    let mut server = Server::start(binary, &url, dir.path().join("server.log"), &cli.server_log).await?;
    // Idle connections are dropped before the server's keep-alive (actix-web's 5 s) closes them:
    // a request sent on a connection just as the server closes it gets no answer.
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(3))
        .build()?;
    let started = Instant::now();
    println!("seeding {size:?}");
    let mut dataset = seed::seed(&client, &server.base, size).await?;
    // Seeding can outlast the first sessions' 15-minute access tokens (the auditor's).
    dataset.refresh(&client).await?;
    let mut sql = Sql::open(&url)?;
    let total_postings = sql.postings(None)?;
    println!("seeded in {:.0} s: {total_postings} postings", started.elapsed().as_secs_f64());
    let (hot_community, hot_user) = dataset.hot.clone();
    let hot_url =
        format!("{}/api/v1/communities/{}/accounts/{hot_user}", server.base, dataset.communities[hot_community].id);
    let hot_account = seed::send(client.get(&hot_url).bearer_auth(&dataset.communities[hot_community].staff.access));
    let mut hot_balance = hot_account.await?["balance"].as_i64().context("the hot account's balance")?;
    assert_invariants(&client, &mut sql, &dataset, hot_balance, "seeding").await?;

    let mut rows = Vec::new();
    // Exports first, on the seeded history: the first community's, then the whole district's.
    dataset.refresh(&client).await?;
    let history_id = dataset.communities[dataset.history].id.clone();
    let community_rows = sql.postings(Some(&history_id))?;
    let small = export(
        &client,
        &server,
        &format!("{}/api/v1/communities/{history_id}/exports/ledger.csv?bom=false", server.base),
        &dataset.auditor.access,
        community_rows,
    )
    .await?;
    let district = dataset.district.clone();
    let large = export(
        &client,
        &server,
        &format!("{}/api/v1/units/{district}/exports/ledger.csv?bom=false", server.base),
        &dataset.auditor.access,
        total_postings,
    )
    .await?;
    let floor = if backend == Backend::Postgres { 300_000.0 } else { 250_000.0 };
    rows.push(Row::export("export, 1 community", &small, floor, None));
    rows.push(Row::export("export, district", &large, floor, Some(&small)));
    assert_invariants(&client, &mut sql, &dataset, hot_balance, "the exports").await?;

    // Reads.
    let deep = format!("history page {}", size.deep_page);
    let reads = [
        ("GET balance", Target::Absolute(10_000.0)),
        ("history page 1", Target::Latency),
        (deep.as_str(), Target::SameAs("history page 1")),
    ];
    for (n, (name, target)) in reads.into_iter().enumerate() {
        dataset.refresh(&client).await?;
        let operation: Arc<dyn Operation> = match n {
            0 => scenarios::Balance::new(&dataset),
            1 => scenarios::History::new(&dataset, false),
            _ => scenarios::History::new(&dataset, true),
        };
        let measured = measure(&client, &mut server, operation, cli, &plan, name).await?;
        rows.push(Row::requests(name, &measured, target));
        assert_invariants(&client, &mut sql, &dataset, hot_balance, name).await?;
    }

    // Writes.
    for name in ["award", "award, hot account", "redeem"] {
        dataset.refresh(&client).await?;
        if backend == Backend::Postgres {
            raw::checkpoint(&url)?;
        }
        let (operation, target): (Arc<dyn Operation>, Target) = match name {
            "award" => (scenarios::Award::new(&dataset), Target::Raw(raw::Kind::Award, 1.0)),
            "award, hot account" => (scenarios::HotAward::new(&dataset), Target::Raw(raw::Kind::Hot, 0.8)),
            _ => (scenarios::Redeem::new(&dataset), Target::Raw(raw::Kind::Redeem, 1.0)),
        };
        let measured = measure(&client, &mut server, operation, cli, &plan, name).await?;
        // The warm-up's requests were answered too.
        let answered = measured.warmup_ok + measured.closed.ok + measured.open.ok;
        dataset.transactions += answered;
        match name {
            "award, hot account" => hot_balance += AWARD_POINTS * i64::try_from(answered)?,
            "redeem" => dataset.orders += answered,
            _ => {}
        }
        rows.push(Row::requests(name, &measured, target));
        assert_invariants(&client, &mut sql, &dataset, hot_balance, name).await?;
    }
    let log = server.log.clone();
    drop(server);
    drop(sql);
    let _ = std::fs::copy(&log, std::env::temp_dir().join(format!("jifen-bench-{backend:?}.log").to_lowercase()));

    // The raw reference, with the server stopped.
    let clients = size.concurrency;
    let mut raw_rates = Vec::new();
    match backend {
        Backend::Postgres => {
            let raw_url = format!("{}_raw", cli.postgres_url);
            raw::prepare_postgres(&raw_url)?;
            let pgbench = raw::find_pgbench(cli.pgbench.clone())?;
            for kind in [raw::Kind::Award, raw::Kind::Hot, raw::Kind::Redeem] {
                let tps = raw::pgbench(&pgbench, &raw_url, kind, clients, plan.duration)?;
                println!("  raw {kind:?}: pgbench -c {clients}: {tps:.0} tps");
                raw_rates.push((kind, tps));
            }
            raw::drop_postgres(&raw_url)?;
            raw::drop_postgres(&cli.postgres_url)?;
        }
        Backend::Sqlite => {
            for kind in [raw::Kind::Award, raw::Kind::Hot, raw::Kind::Redeem] {
                let tps = raw::sqlite(dir.path(), kind, plan.duration)?;
                println!("  raw {kind:?}: one SQLite connection: {tps:.0} tps");
                raw_rates.push((kind, tps));
            }
        }
    }
    report::judge(&mut rows, &raw_rates);
    Ok(rows)
}

/// What [`measure`] found.
struct Measured {
    closed: Outcome,
    /// Successes during the warm-up (writes that the invariants must account for).
    warmup_ok: u64,
    offered: f64,
    open: Outcome,
    peak_mib: f64,
}

/// Closed loop (maximum throughput), then open loop at a fraction of it (latency); the
/// server's peak memory over both.
async fn measure(
    client: &Client,
    server: &mut Server,
    operation: Arc<dyn Operation>,
    cli: &Cli,
    plan: &Plan,
    name: &str,
) -> anyhow::Result<Measured> {
    server.reset_peak()?;
    let concurrency = plan.size.concurrency;
    let (warmup, duration) = (plan.warmup, plan.duration);
    let warm =
        if warmup.is_zero() { None } else { Some(closed_loop(client, operation.clone(), concurrency, warmup).await) };
    let outcome = closed_loop(client, operation.clone(), concurrency, duration).await;
    let rate = outcome.per_second() * cli.open_fraction;
    let open = open_loop(client, operation, rate, duration).await;
    server.check_running()?;
    let peak = server.peak_kib()? as f64 / 1024.0;
    let warmup_ok = warm.as_ref().map_or(0, |warm| warm.ok);
    let failures: u64 = outcome.failed + open.failed + warm.as_ref().map_or(0, |warm| warm.failed);
    println!(
        "  {name}: closed loop {:.0}/s (p99 {:.1} ms), open loop at {rate:.0}/s: p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms; \
         peak RSS {peak:.1} MiB; ok {} refused {} failed {failures}",
        outcome.per_second(),
        outcome.ms(0.99),
        open.ms(0.5),
        open.ms(0.99),
        open.ms(0.999),
        outcome.ok + open.ok + warmup_ok,
        outcome.refused + open.refused,
    );
    if failures > 0 {
        let mut examples = outcome.failures.clone();
        examples.extend(open.failures.iter().cloned());
        if let Some(warm) = &warm {
            examples.extend(warm.failures.iter().cloned());
        }
        bail!("{name}: {failures} requests failed, e.g.:\n  {}", examples.join("\n  "));
    }
    Ok(Measured { closed: outcome, warmup_ok, offered: rate, open, peak_mib: peak })
}

/// Streams one CSV export, counting its rows without keeping them.
async fn export(
    client: &Client,
    server: &Server,
    url: &str,
    token: &str,
    expected_rows: i64,
) -> anyhow::Result<Export> {
    let rss_before = server.rss_kib()?;
    server.reset_peak()?;
    let started = Instant::now();
    let mut response = client.get(url).bearer_auth(token).send().await?;
    if !response.status().is_success() {
        bail!("export {url}: {}: {}", response.status(), response.text().await.unwrap_or_default());
    }
    let (mut lines, mut bytes, mut first_byte) = (0i64, 0usize, None);
    while let Some(chunk) = response.chunk().await? {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as i64;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = server.peak_kib()?;
    let rows = lines - 1;
    if rows != expected_rows {
        bail!("INVARIANT BROKEN: the export {url} has {rows} rows, the database {expected_rows} postings");
    }
    let export = Export {
        rows,
        seconds,
        first_byte: first_byte.unwrap_or_default().as_secs_f64(),
        peak_mib: peak as f64 / 1024.0,
        growth_mib: peak.saturating_sub(rss_before) as f64 / 1024.0,
    };
    println!(
        "  export of {rows} rows ({:.1} MB) in {seconds:.2} s: {:.0} rows/s, first byte after {:.0} ms, \
         peak RSS {:.1} MiB (+{:.1} MiB)",
        bytes as f64 / 1e6,
        rows as f64 / seconds,
        export.first_byte * 1000.0,
        export.peak_mib,
        export.growth_mib
    );
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke run against the debug build that `cargo test` made, on SQLite and, when the
    /// test suite runs on PostgreSQL (`JIFEN_TEST_POSTGRES_URL`), on PostgreSQL too, in a
    /// database of its own. `.ci/run`: `cargo test --bin jifen-bench -- --ignored`, which
    /// compiles nothing that `cargo test` did not.
    #[test]
    #[ignore = "starts the server for half a minute per backend; .ci/run runs it"]
    fn smoke() {
        let mut args =
            vec!["jifen-bench".to_owned(), "--smoke".into(), "--no-build".into(), "--backend".into(), "sqlite".into()];
        if let Ok(url) = std::env::var("JIFEN_TEST_POSTGRES_URL") {
            let (server, _) = url.rsplit_once('/').expect("a PostgreSQL URL ends in /DATABASE");
            args.extend([
                "--backend".into(),
                "postgres".into(),
                "--postgres-url".into(),
                format!("{server}/jifen_bench"),
            ]);
        }
        assert!(run(Cli::parse_from(args)).expect("the smoke run"), "the smoke run failed");
    }
}
