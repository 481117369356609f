//! Building and running the server: state, first-start bootstrap, the App.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_actix_web::AppExt;

use crate::audit;
use crate::auth::model::User;
use crate::auth::password;
use crate::auth::tokens::TokenKeys;
use crate::clock::Clock;
use crate::codes::random_code;
use crate::config::Settings;
use crate::db::{Database, DbConnection};
use crate::error::ApiError;
use crate::ledger::batch::{Batches, GroupCounts};
use crate::ledger::service::AwardRequestChecked;
use crate::metrics::Metrics;
use crate::openapi::{self, RouteTable};
use crate::redemptions::service::OrderRequestChecked;
use crate::security::{self, Limiters};
use crate::telemetry;
use crate::units::model::{Membership, MembershipStatus, Roles, Unit, UnitKind};
use ipnet::IpNet;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client must send its request head within this time.
const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// On SIGTERM or SIGINT the server stops accepting and gives requests in flight this long to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_SIZE: u32 = 10;

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub clock: Arc<dyn Clock>,
    pub tokens: TokenKeys,
    pub openapi_yaml: String,
    pub trusted_proxies: Vec<IpNet>,
    pub limiters: Limiters,
    pub metrics: Arc<Metrics>,
    /// Writes waiting to be written together, by kind (see [`crate::ledger::batch`]).
    pub groups: GroupWrites,
}

/// Each kind of write that is written in groups, with the requests waiting for their group.
#[derive(Clone)]
pub struct GroupWrites {
    pub awards: Arc<Batches<AwardRequestChecked>>,
    pub orders: Arc<Batches<OrderRequestChecked>>,
}

impl GroupWrites {
    pub fn new() -> prometheus::Result<Self> {
        Ok(GroupWrites { awards: Arc::new(Batches::new()?), orders: Arc::new(Batches::new()?) })
    }

    pub fn counts(&self) -> [&GroupCounts; 2] {
        [self.awards.counts(), self.orders.counts()]
    }
}

pub struct Application {
    port: u16,
    server: Server,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connects and migrates the database, creates the platform and its first
    /// admin if needed, and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let url = settings.database_url.clone();
        let admin_password = settings.admin_password.clone();
        let bootstrap_clock = clock.clone();
        let db = tokio::task::spawn_blocking(move || -> anyhow::Result<Database> {
            let db = Database::connect(url, POOL_SIZE)?;
            db.warn_about_unsafe_settings()?;
            bootstrap(&db, bootstrap_clock.as_ref(), admin_password.as_deref())?;
            Ok(db)
        })
        .await??;
        let groups = GroupWrites::new()?;
        let metrics = Arc::new(Metrics::new(&db, &groups)?);
        let maintenance = crate::maintenance::spawn(db.clone(), clock.clone(), metrics.clone());
        let spec = openapi::spec();
        let state = web::Data::new(AppState {
            db,
            clock,
            tokens: TokenKeys::new(&settings.jwt_secret),
            openapi_yaml: spec.to_yaml()?,
            trusted_proxies: settings.trusted_proxies.clone(),
            limiters: Limiters::new(settings.rate_limits),
            metrics,
            groups,
        });
        let forgetting = spawn_forgetting_quiet_clients(state.clone().into_inner());
        let cors_origins = settings.cors_origins.clone();
        let routes = web::Data::new(RouteTable::new(&spec));
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || app(state.clone(), routes.clone(), cors_origins.clone()))
            .client_request_timeout(CLIENT_HEADER_TIMEOUT)
            .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
            .listen(listener)?
            .run();
        tracing::info!(address = %settings.bind, port, "jifen is listening");
        Ok(Application { port, server, background: vec![maintenance, forgetting] })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server: used by graceful shutdown and by tests.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in self.background {
            task.abort();
        }
        tracing::info!("stopped");
        result
    }
}

fn spawn_forgetting_quiet_clients(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(60));
        loop {
            interval.tick().await;
            state.limiters.forget_quiet_clients();
        }
    })
}

/// The whole application: routes, their settings and the middleware around them.
pub fn app(
    state: web::Data<AppState>,
    routes: web::Data<RouteTable>,
    cors_origins: Vec<String>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, _) = openapi::register(
        App::new()
            .app_data(state)
            .app_data(routes)
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(|err, _| ApiError::from_json_error(&err).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| ApiError::from_query_error(&err).into()))
            .app_data(web::PathConfig::default().error_handler(|err, _| ApiError::from_path_error(&err).into()))
            .into_utoipa_app(),
    )
    .split_for_parts();
    app.default_service(web::to(openapi::unmatched))
        .wrap(from_fn(audit::record))
        .wrap(from_fn(openapi::only_documented))
        .wrap(from_fn(security::guard))
        .wrap(security::cors(&cors_origins))
        .wrap(security::security_headers())
        .wrap(from_fn(telemetry::request_context))
}

/// On an empty database: the platform unit and, if nobody administers it, the
/// user `admin` with the given password or a random one printed once in the log.
pub fn bootstrap(db: &Database, clock: &dyn Clock, admin_password: Option<&str>) -> anyhow::Result<()> {
    let now = clock.now().naive_utc();
    let password = match admin_password {
        Some(password) => {
            password::validate_new_password(password).map_err(|err| anyhow::anyhow!("JIFEN_ADMIN_PASSWORD: {err}"))?;
            password.to_owned()
        }
        None => random_code(16),
    };
    let created = db.write_blocking(|conn| -> anyhow::Result<bool> {
        let platform = ensure_platform(conn, now)?;
        if Membership::platform_has_admin(conn, &platform.id)? {
            return Ok(false);
        }
        if User::username_exists(conn, "admin")? {
            anyhow::bail!("nobody administers the platform and the username 'admin' is taken; use `jifen admin create --username NAME`");
        }
        let hash = password::hash(&password).map_err(|err| anyhow::anyhow!("{err}"))?;
        create_admin(conn, &platform, "admin", "admin", hash, now)?;
        Ok(true)
    })?;
    if created {
        match admin_password {
            Some(_) => {
                tracing::info!("created the platform administrator 'admin' with the password from JIFEN_ADMIN_PASSWORD")
            }
            None => tracing::warn!(
                "created the platform administrator 'admin' with password {password} — it is shown only this once; change it after signing in"
            ),
        }
    }
    Ok(())
}

fn ensure_platform(conn: &mut DbConnection, now: chrono::NaiveDateTime) -> anyhow::Result<Unit> {
    if let Some(platform) = Unit::platform(conn)? {
        return Ok(platform);
    }
    let platform = Unit::new(UnitKind::Platform, "jifen".to_owned(), None, now);
    platform.insert(conn)?;
    Ok(platform)
}

/// A new user who administers `unit` (and everything below it).
pub(crate) fn create_admin(
    conn: &mut DbConnection,
    unit: &Unit,
    username: &str,
    display_name: &str,
    password_hash: String,
    now: chrono::NaiveDateTime,
) -> anyhow::Result<()> {
    let user = User::new(username.to_owned(), display_name.to_owned(), None, password_hash, now);
    user.insert(conn)?;
    let admin = Roles { admin: true, ..Roles::default() };
    Membership::new(&unit.id, &user.id, admin, MembershipStatus::Active, now).insert(conn)?;
    Ok(())
}

/// `jifen admin create`: a further platform administrator.
pub fn create_platform_admin(db: &Database, clock: &dyn Clock, username: &str, password: &str) -> anyhow::Result<()> {
    let username = crate::validation::username(username).map_err(|err| anyhow::anyhow!("{err}"))?;
    password::validate_new_password(password).map_err(|err| anyhow::anyhow!("{err}"))?;
    let hash = password::hash(password).map_err(|err| anyhow::anyhow!("{err}"))?;
    let now = clock.now().naive_utc();
    db.write_blocking(|conn| -> anyhow::Result<()> {
        let platform = ensure_platform(conn, now)?;
        if User::username_exists(conn, &username)? {
            anyhow::bail!("the username {username:?} is taken");
        }
        create_admin(conn, &platform, &username, &username, hash, now)
    })
}
