//! The end-to-end test harness: starts the real `driftstack` binary on `127.0.0.1:0` with a fresh
//! data directory and a fresh database (a SQLite file, or a new PostgreSQL database on the local
//! server), and talks to it over HTTP. Everything it creates is removed when the handle drops.

#![allow(dead_code)]

pub mod cdp;
pub mod hooks;
pub mod mail;
pub mod mcp;
pub mod pages;
pub mod stripe;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_driftstack");

/// The PostgreSQL server used for tests; `.ci/run` makes sure one answers here.
pub fn pg_admin_url() -> String {
    std::env::var("DRIFTSTACK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Writes one `#[tokio::test]` per backend for a scenario `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Postgres).await
                }
            )+
        }
    };
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "driftstack-test-{tag}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PostgreSQL database created for one test and dropped afterwards.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let name = format!("ds_test_{}", uuid::Uuid::now_v7().simple());
        run_pg_admin(&format!("CREATE DATABASE {name}"));
        let admin = pg_admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        run_pg_admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one statement against the admin database on a private runtime (usable from `Drop`).
fn run_pg_admin(sql: &str) {
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for these tests at {} ({e}); \
                         `.ci/run` starts one",
                        pg_admin_url()
                    )
                });
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("admin statement");
        });
    })
    .join()
    .expect("pg admin thread");
}

/// Where a server keeps its state; survives restarts of the server within one test.
/// A fresh master key (base64 of 32 random bytes), as an operator would set it.
pub fn test_master_key() -> String {
    use base64::Engine;
    use sha2::Digest;
    // Unique per call (a v7 id carries 74 random bits); hashed to the 32 bytes a key has.
    let seed = format!("{}-{}", uuid::Uuid::now_v7(), std::process::id());
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(seed.as_bytes()))
}

pub struct Env {
    pub backend: Backend,
    pub dir: TempDir,
    pub pg: Option<PgDatabase>,
    pub vars: HashMap<String, String>,
}

impl Env {
    pub fn new(backend: Backend) -> Self {
        let dir = TempDir::new("env");
        let pg = (backend == Backend::Postgres).then(PgDatabase::create);
        let mut vars = HashMap::new();
        vars.insert("DRIFTSTACK_LISTEN".into(), "127.0.0.1:0".into());
        vars.insert(
            "DRIFTSTACK_DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        vars.insert(
            "DRIFTSTACK_TEST_CLOCK_FILE".into(),
            dir.path().join("clock-offset").display().to_string(),
        );
        vars.insert(
            "DRIFTSTACK_EGRESS_ALLOW".into(),
            "127.0.0.0/8,::1/128".into(),
        );
        vars.insert("RUST_LOG".into(), "info,sqlx=warn".into());
        vars.insert("DRIFTSTACK_POOL_SIZE".into(), "1".into());
        if let Some(pg) = &pg {
            vars.insert("DATABASE_URL".into(), pg.url.clone());
            // Nodes on PostgreSQL take the master key from the operator, never generate one.
            vars.insert("DRIFTSTACK_MASTER_KEY".into(), test_master_key());
        }
        Env {
            backend,
            dir,
            pg,
            vars,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// Moves the server's clock `seconds` ahead of real time (read within 50 ms).
    pub fn advance_clock(&self, seconds: i64) {
        let path = self.dir.path().join("clock-offset");
        let now: i64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&path, (now + seconds).to_string()).expect("write clock offset");
        std::thread::sleep(Duration::from_millis(80));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(&self.vars);
        cmd
    }

    /// Runs an admin CLI command and returns its trimmed stdout; panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run driftstack");
        assert!(
            out.status.success(),
            "driftstack {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts `driftstack serve` and waits until it listens.
    pub fn start(&self) -> Server {
        self.start_as(&["serve"])
    }

    /// Starts the binary with `args` (`serve`, `runner`) and waits until it listens.
    pub fn start_as(&self, args: &[&str]) -> Server {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn driftstack serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log_path = self
            .dir
            .path()
            .join(format!("server-{}.log", uuid::Uuid::now_v7().simple()));
        let log_copy = log_path.clone();
        let (log_done, log_copied) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&log_copy).expect("log file");
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
            drop(log_done);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut printed = Vec::new();
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break addr.trim().to_owned();
                    }
                    printed.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("server did not start; stdout: {printed:?}\nstderr:\n{log}");
                }
            }
        };
        let bootstrap_key = printed
            .iter()
            .find_map(|l| l.split_whitespace().last().filter(|w| w.starts_with("ds_")))
            .map(str::to_owned);
        Server {
            child: Some(child),
            base,
            bootstrap_key,
            stdout: printed,
            log_path,
            log_copied,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// The key printed by the first start on an empty database.
    pub bootstrap_key: Option<String>,
    pub stdout: Vec<String>,
    pub log_path: PathBuf,
    /// Disconnects once everything the server wrote to stderr is in `log_path`.
    log_copied: std::sync::mpsc::Receiver<()>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn key(&self) -> &str {
        self.bootstrap_key
            .as_deref()
            .expect("bootstrap key printed")
    }

    /// The Rust SDK, signed in with `token` (an API key or a dashboard token).
    pub fn sdk(&self, token: &str) -> driftstack_sdk::Client {
        driftstack_sdk::Client::new(&self.base, token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub async fn get(&self, key: &str, path: &str) -> Reply {
        Reply::read(self.http.get(self.url(path)).bearer_auth(key).send().await).await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Reply {
        Reply::read(
            self.http
                .delete(self.url(path))
                .bearer_auth(key)
                .send()
                .await,
        )
        .await
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Reply {
        Reply::read(
            self.http
                .post(self.url(path))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await,
        )
        .await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        Reply::read(req.send().await).await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("server did not exit within 30 s of SIGTERM");
        });
        // Its last lines may still be on their way to the log file (a process it left behind
        // holding stderr would keep it open: then at most 5 s).
        let _ = self.log_copied.recv_timeout(Duration::from_secs(5));
        status
    }

    /// SIGKILLs the server.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            if wait_timeout(&mut child, Duration::from_secs(15)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Pids of the Chromium processes (any type) started by the server with pid `server_pid`: their
/// user-data dirs live under `$TMPDIR/driftstack-<server pid>/`.
pub fn browser_processes(server_pid: u32) -> Vec<u32> {
    let needle = format!("/driftstack-{server_pid}/");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The main browser processes (not renderers or helpers, nor the sandbox around them) of a
/// server: Chromium's own browser process, one per browser.
pub fn main_browser_processes(server_pid: u32) -> Vec<u32> {
    browser_processes(server_pid)
        .into_iter()
        .filter(|pid| {
            let chromium = std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("chromium"));
            chromium
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| !String::from_utf8_lossy(&c).contains("--type="))
                    .unwrap_or(false)
        })
        .collect()
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A program of the tools venv scripts/test prepares (`python`, `moto_server`,
/// `kubernetes-validate`); `DRIFTSTACK_SDK_PYTHON` names that venv's python. Fails the test with
/// how to get it when it is missing.
pub fn tool(name: &str) -> String {
    let python = std::env::var("DRIFTSTACK_SDK_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/driftstack/sdk-python-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let path = python.replace("/bin/python", &format!("/bin/{name}"));
    assert!(
        Path::new(&path).exists(),
        "{name} is not installed: run scripts/test (it prepares {path})"
    );
    path
}

pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub async fn read(result: reqwest::Result<reqwest::Response>) -> Self {
        let response = result.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body").to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts this is a problem+json answer with `status` and `code`; returns the document.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not problem+json: {}",
            self.text()
        );
        let doc = self.json();
        assert_eq!(doc["status"], status);
        assert_eq!(doc["code"], code, "{doc}");
        assert!(doc["type"].as_str().is_some_and(|t| t.ends_with(code)));
        assert!(doc["title"].is_string() && doc["detail"].is_string());
        assert_eq!(
            doc["instance"].as_str(),
            self.header("x-request-id"),
            "instance must be the request id"
        );
        let text = self.text().to_lowercase();
        for leak in [
            "select ",
            "insert ",
            "panicked",
            "/src/",
            "sqlx",
            "stack backtrace",
        ] {
            assert!(
                !text.contains(leak),
                "problem leaks internals ({leak}): {text}"
            );
        }
        doc
    }
}
