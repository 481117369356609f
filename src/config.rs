//! Command line and environment. Every setting has a sensible default so that
//! `jifen` alone starts a working server on an embedded SQLite database.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use rand::RngCore;

use crate::db::DatabaseUrl;
use crate::security::{RateLimits, parse_trusted_proxies};
use ipnet::IpNet;

const ENVIRONMENT_HELP: &str = "\
Environment:
  JIFEN_DATABASE_URL    sqlite://PATH (default sqlite://./data/jifen.db, created on first start)
                        or postgres://USER:PASSWORD@HOST:PORT/DATABASE
  JIFEN_BIND            address to listen on (default 127.0.0.1:8080)
  JIFEN_JWT_SECRET      token signing secret, at least 32 bytes; required with PostgreSQL.
                        On SQLite without it, one is generated into the data folder.
  JIFEN_ADMIN_PASSWORD  password of the 'admin' user created on first start
                        (default: a random one, printed once in the log)
  JIFEN_CORS_ORIGINS    origins whose pages may call the API, comma-separated
                        (e.g. https://dashboard.example.org; default none)
  JIFEN_TRUSTED_PROXIES addresses or networks of reverse proxies whose X-Forwarded-For
                        is believed, comma-separated (default none)
  JIFEN_AUTH_REQUESTS_PER_MINUTE  sign-in requests per client address (default 60)
  JIFEN_WRITES_PER_MINUTE         changes per signed-in user (default 600)
  RUST_LOG              log filter, e.g. info or jifen=debug (default info)";

#[derive(Debug, Parser)]
#[command(name = "jifen", version, about = "积分 jifen: the points-and-rewards ledger for neighbourhood communities")]
#[command(after_help = ENVIRONMENT_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Database URL (sqlite://PATH or postgres://...)
    #[arg(long, env = "JIFEN_DATABASE_URL", default_value = "sqlite://./data/jifen.db", global = true)]
    pub database_url: String,
    /// Address to listen on
    #[arg(long, env = "JIFEN_BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: String,
    /// Token signing secret (at least 32 bytes); prefer the environment variable
    #[arg(long, env = "JIFEN_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Password for the 'admin' user created on first start; prefer the environment variable
    #[arg(long, env = "JIFEN_ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<String>,
    /// Origins whose pages may call the API, comma-separated
    #[arg(long, env = "JIFEN_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
    /// Reverse proxies whose X-Forwarded-For is believed: addresses or networks, comma-separated
    #[arg(long, env = "JIFEN_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Requests to /api/v1/auth/* per client address and minute
    #[arg(long, env = "JIFEN_AUTH_REQUESTS_PER_MINUTE", default_value = "60", global = true)]
    pub auth_requests_per_minute: NonZeroU32,
    /// Changes (POST, PUT, PATCH, DELETE) per signed-in user and minute
    #[arg(long, env = "JIFEN_WRITES_PER_MINUTE", default_value = "600", global = true)]
    pub writes_per_minute: NonZeroU32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default)
    Serve,
    /// Seed a demo district (平城区 → 新旺街道 → 福寓苑社区) with five weeks of history
    /// if it is not there yet, print its logins, and serve. For trying jifen out only.
    Demo,
    /// Apply pending database migrations and exit
    Migrate,
    /// Print the OpenAPI description of the API
    Openapi,
    /// Manage platform administrators
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check and maintain the points ledger
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute the hash chains; exit code 1 if any is broken
    Verify {
        /// Only this community (its id); default: every community
        #[arg(long)]
        community: Option<uuid::Uuid>,
    },
    /// Expire due points and purge old Idempotency-Key records now
    Expire,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform administrator; the password is read from standard input
    Create {
        #[arg(long)]
        username: String,
    },
}

/// The resolved configuration of a server.
#[derive(Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: String,
    pub jwt_secret: Vec<u8>,
    pub admin_password: Option<String>,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limits: RateLimits,
}

pub const MIN_JWT_SECRET_BYTES: usize = 32;
const JWT_SECRET_FILE: &str = "jwt_secret";

impl Settings {
    pub fn resolve(args: &ConfigArgs) -> anyhow::Result<Self> {
        let database_url = DatabaseUrl::parse(&args.database_url).map_err(anyhow::Error::msg)?;
        // An empty variable (e.g. `JIFEN_ADMIN_PASSWORD=` in a compose file) counts as unset.
        let jwt_secret = args.jwt_secret.as_deref().filter(|secret| !secret.is_empty());
        let jwt_secret = match (jwt_secret, &database_url) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, DatabaseUrl::Sqlite(path)) => load_or_create_secret(&data_folder(path))?,
            (None, DatabaseUrl::Postgres(_)) => {
                anyhow::bail!(
                    "JIFEN_JWT_SECRET is required with PostgreSQL (at least {MIN_JWT_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32`)"
                )
            }
        };
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            anyhow::bail!(
                "JIFEN_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            );
        }
        Ok(Settings {
            database_url,
            bind: args.bind.clone(),
            jwt_secret,
            admin_password: args.admin_password.clone().filter(|password| !password.is_empty()),
            cors_origins: args
                .cors_origins
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect(),
            trusted_proxies: parse_trusted_proxies(&args.trusted_proxies).map_err(anyhow::Error::msg)?,
            rate_limits: RateLimits {
                auth_per_ip: args.auth_requests_per_minute,
                writes_per_user: args.writes_per_minute,
            },
        })
    }
}

fn data_folder(database: &Path) -> PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// On the zero-configuration SQLite default, the secret is generated once and
/// kept beside the database, so restarts keep sessions valid.
fn load_or_create_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(JWT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= MIN_JWT_SECRET_BYTES => return Ok(secret.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!("the token secret in {} is shorter than {MIN_JWT_SECRET_BYTES} bytes", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => anyhow::bail!("cannot read {}: {err}", path.display()),
    }
    std::fs::create_dir_all(dir)
        .map_err(|err| anyhow::anyhow!("cannot create the data folder {}: {err}", dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(&path) {
        Ok(file) => file,
        // Another process created it a moment ago: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return load_or_create_secret(dir),
        Err(err) => anyhow::bail!("cannot create {}: {err}", path.display()),
    };
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a token signing secret");
    Ok(secret.into_bytes())
}
