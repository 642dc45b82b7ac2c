//! `--webhooks N`: delivery throughput for a burst written to the outbox and event → first
//! attempt latency, on SQLite and PostgreSQL, against a loopback receiver.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{server::Client, stats::stats};

/// A receiver that answers 204 and notes when each `webhook-id` first arrived.
async fn webhook_receiver() -> anyhow::Result<(
    String,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
)> {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
                    && let Ok(mut m) = s.lock()
                {
                    m.entry(id.to_owned()).or_insert_with(Instant::now);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, seen))
}

/// Deliveries per second for a burst of `n` events, and the delay from event to first attempt.
pub(crate) async fn webhooks_bench(
    binary: &Path,
    backend: &str,
    n: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    use sqlx::Connection;
    let (url, seen) = webhook_receiver().await?;
    let dir = std::env::temp_dir().join(format!("driftstack-bench-wh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let pg_admin = std::env::var("DRIFTSTACK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".into());
    let db_name = format!("ds_bench_{}", std::process::id());
    let database_url = if backend == "postgres" {
        let mut admin = sqlx::PgConnection::connect(&pg_admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db_name}"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin)
            .await?;
        format!(
            "{}/{db_name}",
            pg_admin
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&pg_admin)
        )
    } else {
        format!("sqlite://{}", dir.join("data/driftstack.db").display())
    };
    let mut child = Command::new(binary)
        .arg("serve")
        .env("DRIFTSTACK_LISTEN", "127.0.0.1:0")
        .env("DRIFTSTACK_DATA_DIR", dir.join("data"))
        .env("DATABASE_URL", &database_url)
        .env("DRIFTSTACK_POOL_SIZE", "0")
        .env("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.1/32")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (base, key) = {
        use std::io::{BufRead, BufReader};
        let stdout = child.stdout.take().context("stdout")?;
        let (mut base, mut key) = (String::new(), String::new());
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(k) = line
                .split_whitespace()
                .last()
                .filter(|w| w.starts_with("ds_"))
            {
                key = k.to_owned();
            }
            if let Some(a) = line.strip_prefix("listening on ") {
                base = a.trim().to_owned();
                break;
            }
        }
        (base, key)
    };
    let c = Client {
        http: reqwest::Client::new(),
        base,
        key,
    };
    let ep: Value = c
        .post("/v1/webhooks/endpoints", json!({"url": url}))
        .await?
        .json()
        .await?;
    let ep_id = ep["id"].as_str().context("endpoint id")?.to_owned();
    let me: Value = c
        .http
        .get(format!("{}/v1/account/me", c.base))
        .bearer_auth(&c.key)
        .send()
        .await?
        .json()
        .await?;
    let account = me["id"].as_str().context("account")?.to_owned();

    // Latency: events one at a time through the API, first arrival vs. the API's answer.
    let mut delays = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let v: Value = c
            .post(&format!("/v1/webhooks/endpoints/{ep_id}/test"), json!({}))
            .await?
            .json()
            .await?;
        let id = v["event_id"].as_str().context("event id")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(at) = seen.lock().ok().and_then(|m| m.get(&id).copied()) {
                delays.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!("event {id} not delivered within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let latency = stats(delays);

    // Throughput: a burst written straight into the outbox in one transaction.
    let before = seen.lock().map(|m| m.len()).unwrap_or(0);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let insert = "INSERT INTO webhook_events (id, account_id, type, data, created_at) VALUES ($1, $2, 'webhook.test', '{}', $3)";
    let t0 = Instant::now();
    if backend == "postgres" {
        let mut conn = sqlx::PgConnection::connect(&database_url).await?;
        let mut tx = conn.begin().await?;
        for _ in 0..n {
            sqlx::query(insert)
                .bind(format!("evt_{}", uuid::Uuid::now_v7().simple()))
                .bind(&account)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&database_url).await?;
        let mut tx = conn.begin().await?;
        for _ in 0..n {
            sqlx::query(insert)
                .bind(format!("evt_{}", uuid::Uuid::now_v7().simple()))
                .bind(&account)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().map(|m| m.len()).unwrap_or(0) < before + n {
        if Instant::now() > deadline {
            bail!("the burst was not delivered within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    if backend == "postgres" {
        let mut admin = sqlx::PgConnection::connect(&pg_admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    Ok((rate, latency.p50, latency.p95))
}
