//! The binary as an operator meets it: zero-configuration first start, restarts,
//! and clear refusals of bad configuration.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_jifen");

struct Server {
    child: Child,
    port: u16,
    log: Vec<String>,
    /// The log lines written after start-up.
    rest: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn jifen(dir: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .current_dir(dir)
        .env_remove("JIFEN_DATABASE_URL")
        .env_remove("JIFEN_JWT_SECRET")
        .env_remove("JIFEN_ADMIN_PASSWORD")
        .env("JIFEN_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    command
}

/// Starts `jifen` (no subcommand: serve) with the default configuration in `dir`
/// and waits for it to say which port it listens on.
fn start(dir: &std::path::Path) -> Server {
    start_command(jifen(dir))
}

fn start_command(mut command: Command) -> Server {
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start jifen");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    // Generous: the demo seeds a district first, and CI machines are busy.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.push(line.clone());
        if let Some(port) = line.split("port=").nth(1) {
            let port = port.split_whitespace().next().unwrap().parse().unwrap();
            // Keep draining the log so the server never blocks on a full pipe.
            let (sender, rest) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
            return Server { child, port, log, rest };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("jifen did not start: {log:#?}");
}

async fn login(port: u16, password: &str) -> reqwest::Response {
    login_as(port, "admin", password).await
}

async fn login_as(port: u16, username: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_needs_no_configuration_and_restarts_keep_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    let announcement =
        first.log.iter().find(|line| line.contains("with password")).expect("the admin password is printed");
    let password = announcement.split("with password ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let response = login(first.port, &password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();

    let data = dir.path().join("data");
    assert!(data.join("jifen.db").exists());
    let secret = data.join("jwt_secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&secret).unwrap().trim().len() >= 32);
    drop(first);

    // The restart keeps the secret (the session still works) and creates no second admin.
    let second = start(dir.path());
    assert!(!second.log.iter().any(|line| line.contains("with password")), "the password is printed only once");
    let me = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/me", second.port))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(login(second.port, &password).await.status(), StatusCode::OK);
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (vec![("JIFEN_DATABASE_URL", "mysql://localhost/jifen")], "sqlite://PATH"),
        (vec![("JIFEN_DATABASE_URL", "./jifen.db")], "is not supported"),
        (
            vec![("JIFEN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
            "JIFEN_JWT_SECRET is required with PostgreSQL",
        ),
        (vec![("JIFEN_JWT_SECRET", "too short")], "at least 32 bytes"),
        (vec![("JIFEN_ADMIN_PASSWORD", "short")], "JIFEN_ADMIN_PASSWORD"),
    ];
    for (env, expected) in cases {
        let output = jifen(dir.path()).envs(env.clone()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} must be refused");
        assert!(stderr.contains(expected), "{env:?}: expected {expected:?} in {stderr}");
    }
    assert!(!dir.path().join("jifen.db").exists(), "a bad URL creates no database file");
}

#[test]
fn help_lists_the_configuration() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in ["JIFEN_DATABASE_URL", "JIFEN_BIND", "JIFEN_JWT_SECRET", "JIFEN_ADMIN_PASSWORD", "RUST_LOG"] {
        assert!(help.contains(variable), "--help mentions {variable}");
    }
}

#[test]
fn migrate_and_admin_create_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let status = jifen(dir.path()).arg("migrate").status().unwrap();
    assert!(status.success());
    let mut child = jifen(dir.path())
        .args(["admin", "create", "--username", "second.admin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"second admin password\n").unwrap();
    assert!(child.wait().unwrap().success());
    let mut again = jifen(dir.path())
        .args(["admin", "create", "--username", "second.admin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    again.stdin.take().unwrap().write_all(b"second admin password\n").unwrap();
    let output = again.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("taken"));
}

#[tokio::test]
async fn ledger_verify_on_the_command_line_finds_tampering() {
    use diesel::RunQueryDsl;

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let password = server
        .log
        .iter()
        .find_map(|line| line.split("with password ").nth(1))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let api = format!("http://127.0.0.1:{}/api/v1", server.port);
    let client = reqwest::Client::new();
    let token = login(server.port, &password).await.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut parent: Option<String> = None;
    for (kind, name) in [("district", "区"), ("street", "街道"), ("community", "社区")] {
        let body = json!({"kind": kind, "name": name, "parent_id": parent});
        let unit: serde_json::Value = client
            .post(format!("{api}/units"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        parent = Some(unit["id"].as_str().unwrap().to_owned());
    }
    let community = parent.unwrap();
    let body = json!({"new_user": {"username": "resident", "display_name": "x", "password": "a good password"}, "roles": ["resident"]});
    let member: serde_json::Value = client
        .post(format!("{api}/units/{community}/members"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rule = json!({"code": "volunteering", "name": "志愿服务", "category": "volunteering", "direction": "earn", "default_points": 10});
    client.post(format!("{api}/communities/{community}/rules")).bearer_auth(&token).json(&rule).send().await.unwrap();
    let award =
        json!({"rule_code": "volunteering", "memo": "x", "awards": [{"user_id": member["user"]["id"], "points": 10}]});
    let response = client
        .post(format!("{api}/communities/{community}/awards"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "k1")
        .json(&award)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    drop(server);

    let verify = || jifen(dir.path()).args(["ledger", "verify"]).output().unwrap();
    let output = verify();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("{community} ok sequence=1")));

    let db = jifen::db::Database::connect(jifen::db::DatabaseUrl::Sqlite(dir.path().join("data/jifen.db")), 1).unwrap();
    let mut conn = db.blocking_connection().unwrap();
    diesel::sql_query("DROP TRIGGER ledger_postings_no_update").execute(&mut *conn).unwrap();
    diesel::sql_query("UPDATE ledger_postings SET amount = amount * 10").execute(&mut *conn).unwrap();
    drop(conn);
    let output = verify();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("BROKEN at sequence 1"));
}

/// SIGTERM stops the server cleanly; nothing secret reaches its log on the way, even at debug level.
#[tokio::test]
async fn sigterm_stops_cleanly_and_the_log_holds_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let password = "a secret admin password";
    let secret = "a jwt secret that is long enough for jifen 0123456789";
    let mut command = jifen(dir.path());
    command.env("JIFEN_ADMIN_PASSWORD", password).env("JIFEN_JWT_SECRET", secret).env("RUST_LOG", "debug");
    let mut server = start_command(command);
    let tokens = login(server.port, password).await.json::<serde_json::Value>().await.unwrap();
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{}/api/v1", server.port);
    client.get(format!("{api}/me")).bearer_auth(access).send().await.unwrap();
    client.post(format!("{api}/auth/refresh")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    login(server.port, "a wrong password").await;

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "jifen did not stop within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let log: Vec<String> = server.log.iter().cloned().chain(server.rest.try_iter()).collect();
    assert!(log.iter().any(|line| line.contains("stopped")), "{log:#?}");
    let refresh_id = refresh.split('.').next().unwrap();
    for secret in [password, "a wrong password", secret, access, refresh, refresh_id] {
        assert!(!log.iter().any(|line| line.contains(secret)), "{secret:?} in the log: {log:#?}");
    }
}

/// `jifen demo` seeds a district with history whose books balance, prints the logins, and serves;
/// started again, it keeps what is there.
#[tokio::test]
async fn the_demo_seeds_a_district_with_balanced_books_once() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        let mut command = jifen(dir.path());
        command.arg("demo");
        command
    };
    let server = start_command(demo());
    let auditor = demo_login(server.port, "xinwang.auditor").await;
    let units = get_json(server.port, "/units?kind=community", &auditor).await;
    assert_eq!(units["items"][0]["name"], "福寓苑社区");
    let community = units["items"][0]["id"].as_str().unwrap().to_owned();
    let verified = get_json(server.port, &format!("/communities/{community}/ledger/verify"), &auditor).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["transactions_checked"].as_i64().unwrap() > 20, "{verified}");
    let resident = demo_login(server.port, "fuyuyuan.r01").await;
    let board = get_json(server.port, &format!("/communities/{community}/leaderboard"), &resident).await;
    assert!(board["residents"].as_array().unwrap().len() >= 10, "{board}");
    drop(server);

    let again = start_command(demo());
    let auditor = demo_login(again.port, "xinwang.auditor").await;
    let units = get_json(again.port, "/units?kind=community", &auditor).await;
    assert_eq!(units["items"].as_array().unwrap().len(), 1, "seeded once: {units}");
}

async fn demo_login(port: u16, username: &str) -> String {
    let response = login_as(port, username, "jifen-demo").await;
    response.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn get_json(port: u16, path: &str, token: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{port}/api/v1{path}");
    reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}
