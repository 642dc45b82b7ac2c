//! The driftstack server under test (a child process on loopback), the HTTP client the
//! benchmarks drive it with, and the loopback page its browsers load.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) key: String,
    pub(crate) dir: PathBuf,
}

impl Server {
    pub(crate) fn start(binary: &Path, chromium: &Path, pool: usize) -> anyhow::Result<Self> {
        Self::start_with(binary, chromium, pool, &[])
    }

    pub(crate) fn start_with(
        binary: &Path,
        chromium: &Path,
        pool: usize,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn(binary, chromium, pool, env, Stdio::null())
    }

    /// Like [`Server::start_with`], with the server's stderr (its logs) written to `log`.
    pub(crate) fn start_logged(
        binary: &Path,
        chromium: &Path,
        pool: usize,
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        Self::spawn(binary, chromium, pool, env, Stdio::from(file))
    }

    fn spawn(
        binary: &Path,
        chromium: &Path,
        pool: usize,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> anyhow::Result<Self> {
        use std::io::{BufRead, BufReader};
        let dir = std::env::temp_dir().join(format!("driftstack-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new(binary)
            .arg("serve")
            .env("DRIFTSTACK_LISTEN", "127.0.0.1:0")
            .env("DRIFTSTACK_DATA_DIR", dir.join("data"))
            .env("DRIFTSTACK_POOL_SIZE", pool.to_string())
            .env("DRIFTSTACK_MAX_SESSIONS", "128")
            .env("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.0/8")
            .env("DRIFTSTACK_CHROMIUM", chromium)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut key = String::new();
        let mut base = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(k) = line
                .split_whitespace()
                .last()
                .filter(|w| w.starts_with("ds_"))
            {
                key = k.to_owned();
            }
            if let Some(addr) = line.strip_prefix("listening on ") {
                base = addr.trim().to_owned();
                break;
            }
        }
        if base.is_empty() || key.is_empty() {
            bail!("server did not start");
        }
        Ok(Server {
            child,
            base,
            key,
            dir,
        })
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait()?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) key: String,
}

impl Client {
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<reqwest::Response> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "POST {path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(r)
    }

    pub(crate) async fn create(&self) -> anyhow::Result<String> {
        self.create_with(json!({})).await
    }

    /// Creates a session with this create body.
    pub(crate) async fn create_with(&self, body: Value) -> anyhow::Result<String> {
        let v: Value = self.post("/v1/sessions", body).await?.json().await?;
        Ok(v["id"].as_str().context("id")?.to_owned())
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    pub(crate) async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/v1/sessions/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn ready_browsers(&self) -> anyhow::Result<u64> {
        let v: Value = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["runner"]["ready_browsers"].as_u64().unwrap_or(0))
    }

    pub(crate) async fn wait_pool(&self, size: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ready_browsers().await? < size {
            if Instant::now() > deadline {
                bail!("the pool did not refill within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// One cycle; returns the total and the four steps in milliseconds.
    pub(crate) async fn cycle(&self, url: &str) -> anyhow::Result<[f64; 5]> {
        self.cycle_with(url, json!({})).await
    }

    /// A cycle whose session is created with this body.
    pub(crate) async fn cycle_with(&self, url: &str, body: Value) -> anyhow::Result<[f64; 5]> {
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        let id = self.create_with(body).await?;
        let create = ms(t0);
        let t = Instant::now();
        self.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
            .await?;
        let navigate = ms(t);
        let t = Instant::now();
        let png = self
            .post(
                &format!("/v1/sessions/{id}/capture"),
                json!({"format": "png"}),
            )
            .await?
            .bytes()
            .await?;
        if !png.starts_with(b"\x89PNG") {
            bail!("capture is not a PNG");
        }
        let capture = ms(t);
        let t = Instant::now();
        self.delete(&id).await?;
        Ok([ms(t0), create, navigate, capture, ms(t)])
    }
}

pub(crate) async fn serve_page() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let page = format!(
        "<!doctype html><title>bench</title><h1>Driftstack bench page</h1><p>{}</p>",
        "x".repeat(2000)
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}
