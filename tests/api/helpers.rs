//! The test harness: every scenario runs against the real server, spoken to over
//! HTTP, once on a fresh SQLite file and once on a fresh PostgreSQL database
//! (cloned from a migrated template) when `JIFEN_TEST_POSTGRES_URL` is set.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use actix_web::dev::ServerHandle;
use chrono::{TimeZone, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use jifen::clock::ManualClock;
use jifen::config::Settings;
use jifen::db::{Database, DatabaseUrl};
use jifen::security::RateLimits;
use jifen::startup::Application;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const JWT_SECRET: &str = "test secret: thirty-two bytes or more, really";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
pub const PASSWORD: &str = "a good password";

/// Runs each listed scenario (`async fn name(app: &TestApp)`) as two tests,
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::helpers::TestApp::spawn_sqlite().await;
                super::$name(&app).await;
                app.stop().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(app) = $crate::helpers::TestApp::spawn_postgres().await else { return };
                super::$name(&app).await;
                app.stop().await;
            }
        }
    )*};
}

enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the async runtime: do the blocking work on a thread of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(mut conn) = PgConnection::establish(&admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
                }
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub database_url: DatabaseUrl,
    server: ServerHandle,
    /// Dropped (and, on PostgreSQL, the database with it) when the test ends; None for a sibling.
    _database: Option<TestDatabase>,
}

/// The browser origin the test servers accept for CORS.
pub const DASHBOARD_ORIGIN: &str = "https://dashboard.example.org";

fn test_settings(database_url: DatabaseUrl) -> Settings {
    let unlimited = NonZeroU32::MAX;
    Settings {
        database_url,
        bind: "127.0.0.1:0".to_owned(),
        jwt_secret: JWT_SECRET.as_bytes().to_vec(),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        cors_origins: vec![DASHBOARD_ORIGIN.to_owned()],
        trusted_proxies: Vec::new(),
        rate_limits: RateLimits { auth_per_ip: unlimited, writes_per_user: unlimited },
    }
}

fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("JIFEN_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty());
    if url.is_none() && std::env::var("JIFEN_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("JIFEN_TEST_REQUIRE_POSTGRES=1 but JIFEN_TEST_POSTGRES_URL is not set");
    }
    url
}

fn with_database(url: &str, database: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("JIFEN_TEST_POSTGRES_URL ends in /DATABASE");
    format!("{server}/{database}")
}

/// A migrated template database, named after the migrations it holds, made once.
fn postgres_template(admin_url: &str) -> String {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
            let mut files: Vec<_> = walk(std::path::Path::new(dir));
            files.sort();
            let mut hasher = Sha256::new();
            for file in files {
                hasher.update(file.to_string_lossy().as_bytes());
                hasher.update(std::fs::read(&file).expect("migration file"));
            }
            let digest = hasher.finalize();
            let name =
                format!("jifen_template_{}", digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>());
            let mut conn = PgConnection::establish(admin_url).expect("connect to JIFEN_TEST_POSTGRES_URL");
            diesel::sql_query("SELECT pg_advisory_lock(7355608)").execute(&mut conn).expect("lock");
            let exists = diesel::sql_query(format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))
                .execute(&mut conn)
                .expect("query pg_database")
                > 0;
            if !exists {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .execute(&mut conn)
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE {building}")).execute(&mut conn).expect("create template");
                Database::connect(DatabaseUrl::Postgres(with_database(admin_url, &building)), 1)
                    .expect("migrate template");
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut conn)
                    .expect("rename template");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(7355608)").execute(&mut conn).expect("unlock");
            name
        })
        .clone()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("migrations folder").flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

impl TestApp {
    pub async fn spawn_sqlite() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("jifen.db"));
        Self::start(url, TestDatabase::Sqlite(dir)).await
    }

    /// None when PostgreSQL tests are not configured.
    pub async fn spawn_postgres() -> Option<TestApp> {
        let admin_url = postgres_admin_url()?;
        let name = format!("jifen_test_{}", uuid::Uuid::new_v4().simple());
        let database = {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            tokio::task::spawn_blocking(move || {
                let template = postgres_template(&admin_url);
                let mut conn = PgConnection::establish(&admin_url).expect("connect to JIFEN_TEST_POSTGRES_URL");
                diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                    .execute(&mut conn)
                    .expect("create test database");
                TestDatabase::Postgres { admin_url, name }
            })
            .await
            .expect("create test database")
        };
        let url = DatabaseUrl::Postgres(with_database(&admin_url, &name));
        Some(Self::start(url, database).await)
    }

    async fn start(database_url: DatabaseUrl, database: TestDatabase) -> TestApp {
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).unwrap()));
        Self::start_with(test_settings(database_url), clock, Some(database)).await
    }

    /// A second server on the same database and clock, with changed settings (e.g. low rate limits).
    pub async fn sibling(&self, change: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(self.database_url.clone());
        change(&mut settings);
        Self::start_with(settings, self.clock.clone(), None).await
    }

    async fn start_with(settings: Settings, clock: Arc<ManualClock>, database: Option<TestDatabase>) -> TestApp {
        if std::env::var("TEST_LOG").is_ok() {
            jifen::telemetry::init();
        }
        let database_url = settings.database_url.clone();
        let application = Application::build(settings, clock.clone()).await.expect("start the application");
        let address = format!("http://127.0.0.1:{}", application.port());
        let server = application.handle();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            clock,
            database_url,
            server,
            _database: database,
        }
    }

    pub async fn stop(self) {
        self.server.stop(false).await;
    }

    /// A connection to the app's database, for what no API shows (a rogue DBA, weak legacy hashes).
    pub fn database(&self) -> Database {
        Database::connect(self.database_url.clone(), 3).expect("connect to the test database")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn login_response(&self, username: &str, password: &str) -> Response {
        self.request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Signs in and returns the whole token response.
    pub async fn login_tokens(&self, username: &str, password: &str) -> Value {
        json_of(expect_status(self.login_response(username, password).await, StatusCode::OK).await).await
    }

    /// Signs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        self.login_tokens(username, password).await["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn create_unit(&self, token: &str, kind: &str, name: &str, parent_id: Option<&str>) -> Value {
        let mut body = json!({"kind": kind, "name": name});
        if let Some(parent_id) = parent_id {
            body["parent_id"] = json!(parent_id);
        }
        json_of(expect_status(self.post("/api/v1/units", token, body).await, StatusCode::CREATED).await).await
    }

    /// A district, a street under it and a community under that.
    pub async fn community_tree(&self, token: &str, name: &str) -> Tree {
        let district = self.create_unit(token, "district", &format!("{name}区"), None).await;
        let street = self.create_unit(token, "street", &format!("{name}街道"), Some(id(&district))).await;
        let community = self.create_unit(token, "community", &format!("{name}社区"), Some(id(&street))).await;
        Tree { district, street, community }
    }

    pub async fn add_member_raw(&self, token: &str, unit_id: &str, body: Value) -> Response {
        self.post(&format!("/api/v1/units/{unit_id}/members"), token, body).await
    }

    /// Adds a new user with the given roles to a unit; returns the membership.
    pub async fn add_member(&self, token: &str, unit_id: &str, username: &str, roles: &[&str]) -> Value {
        let body = json!({
            "new_user": {"username": username, "display_name": username, "password": PASSWORD},
            "roles": roles,
        });
        let response = self.post(&format!("/api/v1/units/{unit_id}/members"), token, body).await;
        json_of(expect_status(response, StatusCode::CREATED).await).await
    }

    /// Adds a new member and signs them in; returns (user id, access token).
    pub async fn member_with_token(
        &self,
        admin: &str,
        unit_id: &str,
        username: &str,
        roles: &[&str],
    ) -> (String, String) {
        let member = self.add_member(admin, unit_id, username, roles).await;
        (member["user"]["id"].as_str().unwrap().to_owned(), self.login(username, PASSWORD).await)
    }
}

pub struct Tree {
    pub district: Value,
    pub street: Value,
    pub community: Value,
}

pub fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// The values of counters in `/metrics`, by name.
pub async fn counters<const N: usize>(app: &TestApp, names: [&str; N]) -> [u64; N] {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    names.map(|name| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    })
}

pub async fn json_of(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Asserts the status, printing the body when it differs.
pub async fn expect_status(response: Response, status: StatusCode) -> Response {
    if response.status() != status {
        let actual = response.status();
        let body = response.text().await.unwrap_or_default();
        panic!("expected {status}, got {actual}: {body}");
    }
    response
}

/// Asserts an `application/problem+json` answer with this status and code; returns the problem.
pub async fn expect_problem(response: Response, status: StatusCode, code: &str) -> Value {
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let response = expect_status(response, status).await;
    assert_eq!(content_type, "application/problem+json");
    let problem = json_of(response).await;
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    assert!(problem["title"].is_string() && problem["detail"].is_string() && problem["type"].is_string(), "{problem}");
    problem
}
