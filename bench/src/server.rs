//! The jifen server under test: the real binary, started on a free port with a fresh database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const ADMIN_PASSWORD: &str = "bench admin password, not secret";
pub const JWT_SECRET: &str = "bench secret: thirty-two bytes or more, really";
/// High enough that no request of the benchmark is rate limited.
const UNLIMITED_PER_MINUTE: &str = "1000000000";

/// The running server, stopped when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    pub async fn start(binary: &Path, database_url: &str, log: PathBuf, log_level: &str) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let output = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("serve")
            .env("JIFEN_DATABASE_URL", database_url)
            .env("PGSSLMODE", crate::raw::ssl_mode())
            .env("JIFEN_BIND", format!("127.0.0.1:{port}"))
            .env("JIFEN_JWT_SECRET", JWT_SECRET)
            .env("JIFEN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("JIFEN_AUTH_REQUESTS_PER_MINUTE", UNLIMITED_PER_MINUTE)
            .env("JIFEN_WRITES_PER_MINUTE", UNLIMITED_PER_MINUTE)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", server.base)).send().await
                && response.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("the server exited with {status} during start-up:\n{}", server.log_tail());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the server did not answer /readyz within 2 minutes:\n{}", server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the server has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server exited with {status}:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        proc_kib(self.pid(), "VmRSS:")
    }

    /// Peak resident memory since the last [`Server::reset_peak`], in KiB.
    pub fn peak_kib(&self) -> anyhow::Result<u64> {
        proc_kib(self.pid(), "VmHWM:")
    }

    /// Resets the peak (`VmHWM`) to the current resident memory (proc(5), clear_refs).
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").context("resetting VmHWM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of /proc/<pid>/status, in KiB.
fn proc_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with(field)).with_context(|| format!("no {field} line"))?;
    Ok(line.split_whitespace().nth(1).context("a number")?.parse()?)
}

/// The `jifen` binary beside this one (same cargo profile). Run through cargo, it is built
/// first, so the benchmark always measures the code in this tree.
pub fn server_binary(explicit: Option<PathBuf>, build: bool) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("the benchmark's folder")?;
    // A test binary lives in deps/ below the profile's folder.
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().context("the profile's folder")?;
    }
    let binary = dir.join("jifen");
    if let (true, Ok(cargo)) = (build, std::env::var("CARGO")) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut command = Command::new(cargo);
        command.args(["build", "--bin", "jifen", "--manifest-path"]).arg(&manifest);
        if dir.file_name().is_some_and(|name| name == "release") {
            command.arg("--release");
        }
        let status = command.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --bin jifen failed");
        }
    }
    if !binary.exists() {
        bail!("{} is missing: build it first (`cargo build --release`), or pass --server PATH", binary.display());
    }
    Ok(binary)
}
