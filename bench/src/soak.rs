//! `--soak-mixed N`: cycles mixed with idle timeouts and killed browsers, watching the server's
//! memory and what is left after it stops.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};

use crate::{
    procfs::{browser_pids, pids_mentioning, rss_kib},
    report::machine,
    server::{Client, Server},
};

/// `n` create → navigate → capture → destroy cycles where every 7th session idles out and every
/// 10th cycle kills a browser; the server's RSS after 100 cycles and at the end, and what is left.
pub(crate) async fn soak_mixed(binary: &Path, n: usize, url: &str) -> anyhow::Result<String> {
    let chromium = Path::new("/usr/lib/chromium/chromium-headless-shell");
    // `BENCH_DATABASE_URL` runs it on another database (e.g. PostgreSQL, to tell the server's
    // own memory from SQLite's in-process page caches).
    let db = std::env::var("BENCH_DATABASE_URL").ok();
    let env: Vec<(&str, &str)> = db.iter().map(|u| ("DATABASE_URL", u.as_str())).collect();
    let server = Server::start_with(binary, chromium, 2, &env)?;
    let pid = server.child.id();
    let root = format!("/driftstack-{pid}/");
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    let started = Instant::now();
    let (mut rss_100, mut killed, mut idled, mut failed_captures) = (0, 0, 0, 0);
    for i in 0..n {
        let idle = i % 7 == 3;
        let body = if idle {
            json!({"idle_timeout_seconds": 1})
        } else {
            json!({})
        };
        let v: Value = c.post("/v1/sessions", body).await?.json().await?;
        let id = v["id"].as_str().context("id")?.to_owned();
        c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
            .await?;
        if i % 10 == 5 {
            let pids = browser_pids(pid, &root);
            if let Some(victim) = pids.first() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(victim.to_string())
                    .status();
                killed += 1;
            }
            // If the victim was a warm browser, this session is still live: end it.
            let _ = c
                .http
                .delete(format!("{}/v1/sessions/{id}", c.base))
                .bearer_auth(&c.key)
                .send()
                .await?;
        } else {
            let r = c
                .http
                .post(format!("{}/v1/sessions/{id}/capture", c.base))
                .bearer_auth(&c.key)
                .json(&json!({"format": "png"}))
                .send()
                .await?;
            if !r.status().is_success() {
                failed_captures += 1;
            }
            if idle {
                idled += 1;
            } else {
                c.delete(&id).await?;
            }
        }
        if i + 1 == 100.min(n) {
            rss_100 = rss_kib(pid);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.wait_pool(2).await?;
    let rss_end = rss_kib(pid);
    let processes = browser_pids(pid, &root).len();
    let temp_root = std::env::temp_dir().join(format!("driftstack-{pid}"));
    let dirs = std::fs::read_dir(&temp_root)
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    server.stop()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_stop = pids_mentioning(&root).len() + usize::from(temp_root.exists());
    let growth = (rss_end as f64 / rss_100.max(1) as f64 - 1.0) * 100.0;
    Ok(format!(
        "Measured on {} with the release binary, chromium-headless-shell, pool of 2: {n} cycles \
         in {elapsed:.0} s ({killed} browsers killed, {idled} sessions left to idle out, \
         {failed_captures} captures refused because their browser was gone).\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | server RSS after 100 cycles → at the end | {:.1} → {:.1} MiB ({growth:+.1} %) | within 10 % |\n\
         | browser processes left (warm pool of 2 with helpers) | {processes} | the pool's |\n\
         | browser temp dirs left | {dirs} | ≤ 2 (the pool) |\n\
         | processes or temp root after stop | {after_stop} | 0 |\n",
        machine(),
        rss_100 as f64 / 1024.0,
        rss_end as f64 / 1024.0,
    ))
}
