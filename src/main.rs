use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use jifen::clock::Clock;
use jifen::clock::SystemClock;
use jifen::config::{AdminCommand, Cli, Command, LedgerCommand, Settings};
use jifen::db::{Database, DatabaseUrl};
use jifen::startup::{self, Application};
use jifen::{demo, ledger, maintenance, openapi, telemetry};

/// glibc keeps what each thread freed in that thread's arena: with argon2's 19 MiB per
/// password hash on many blocking threads, the server held 0.5 to 1.4 GB after
/// registering a thousand residents. mimalloc gives large blocks back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = Settings::resolve(&cli.config)?;
            Application::build(settings, Arc::new(SystemClock)).await?.run_until_stopped().await?;
        }
        Command::Demo => {
            let settings = Settings::resolve(&cli.config)?;
            let (url, admin_password) = (settings.database_url.clone(), settings.admin_password.clone());
            let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Database> {
                let db = Database::connect(url, 2)?;
                startup::bootstrap(&db, &SystemClock, admin_password.as_deref())?;
                Ok(db)
            })
            .await??;
            if demo::seed(db, &settings.jwt_secret, SystemClock.now()).await? {
                tracing::info!("seeded the demo district");
            }
            let logins = demo::LOGINS;
            println!(
                "jifen demo: 平城区 → 新旺街道 → 福寓苑社区 (煤气小区), password {} for every account:",
                demo::DEMO_PASSWORD
            );
            println!("  district admin  {}", logins.admin);
            println!("  community staff {}", logins.staff);
            println!("  street auditor  {}", logins.auditor);
            println!("  resident        {} (and fuyuyuan.r02 … fuyuyuan.r36)", logins.resident);
            Application::build(settings, Arc::new(SystemClock)).await?.run_until_stopped().await?;
        }
        Command::Migrate => {
            let url = DatabaseUrl::parse(&cli.config.database_url).map_err(anyhow::Error::msg)?;
            tokio::task::spawn_blocking(move || Database::connect(url, 1)).await??;
            tracing::info!("the database is up to date");
        }
        Command::Openapi => print!("{}", openapi::spec_yaml()?),
        Command::Admin(AdminCommand::Create { username }) => {
            let url = DatabaseUrl::parse(&cli.config.database_url).map_err(anyhow::Error::msg)?;
            let password = read_password()?;
            tokio::task::spawn_blocking(move || {
                let db = Database::connect(url, 1)?;
                startup::create_platform_admin(&db, &SystemClock, &username, &password)
            })
            .await??;
            tracing::info!("created the platform administrator");
        }
        Command::Ledger(command) => {
            let url = DatabaseUrl::parse(&cli.config.database_url).map_err(anyhow::Error::msg)?;
            let intact = tokio::task::spawn_blocking(move || ledger_command(url, command)).await??;
            if !intact {
                anyhow::bail!("the ledger's hash chain is broken");
            }
        }
    }
    Ok(())
}

/// False when a verified chain is broken.
fn ledger_command(url: DatabaseUrl, command: LedgerCommand) -> anyhow::Result<bool> {
    let db = Database::connect(url, 2)?;
    match command {
        LedgerCommand::Verify { community } => {
            let mut conn = db.blocking_connection()?;
            let communities = match community {
                Some(id) => vec![id.to_string()],
                None => ledger::service::community_ids(&mut conn)?,
            };
            let mut intact = true;
            for community_id in communities {
                let result = ledger::service::verify_chain(&mut conn, &community_id)?;
                match result.first_bad_sequence {
                    None => println!("{community_id} ok sequence={} hash={}", result.head.sequence, result.head.hash),
                    Some(bad) => {
                        intact = false;
                        println!(
                            "{community_id} BROKEN at sequence {bad} (head sequence={} hash={})",
                            result.head.sequence, result.head.hash
                        );
                    }
                }
            }
            Ok(intact)
        }
        LedgerCommand::Expire => {
            match maintenance::run_once(&db, SystemClock.now())? {
                Some(report) => println!(
                    "uncollected orders cancelled: {}; expiry transactions written: {}; idempotency records purged: {}",
                    report.uncollected_orders_cancelled, report.expiry_transactions, report.idempotency_records_purged
                ),
                None => println!("another server is running maintenance right now; nothing done"),
            }
            Ok(true)
        }
    }
}

/// From a prompt on a terminal, else the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Password: ")?);
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    Ok(input.lines().next().unwrap_or_default().to_owned())
}
