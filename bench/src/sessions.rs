//! The default benchmark, per browser variant: warm-pool creates, create→navigate→PNG→destroy
//! cycles, PSS of idle sessions, a soak and what it leaves behind; and its markdown table.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};

use crate::{
    Args,
    procfs::{browser_pids, pids_mentioning, pss_kib},
    report::machine,
    server::{Client, Server},
    stats::{Stats, stats},
};

pub(crate) struct VariantResult {
    name: String,
    create_client: Stats,
    create_server: Stats,
    cycle: Stats,
    /// create, navigate, capture, delete medians within a cycle.
    steps: [f64; 4],
    idle_sessions: usize,
    idle_pss_mib: f64,
    pool_pss_mib: f64,
    soak_cycles: usize,
    soak_ms: f64,
    leftover_processes: usize,
    expected_processes: usize,
    leftover_dirs: usize,
    after_stop: usize,
}

pub(crate) async fn run_variant(
    args: &Args,
    name: &str,
    chromium: &Path,
    url: &str,
) -> anyhow::Result<VariantResult> {
    const POOL: usize = 4;
    eprintln!("== {name}: starting server");
    let server = Server::start(&args.binary, chromium, POOL)?;
    let pid = server.child.id();
    let root = format!("/driftstack-{pid}/");
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(POOL as u64).await?;
    let pool_pss: u64 = browser_pids(pid, &root).into_iter().map(pss_kib).sum();
    let pool_processes = browser_pids(pid, &root).len();

    eprintln!("== {name}: {} creates with a warm pool", args.creates);
    let mut client_ms = Vec::new();
    let mut server_ms = Vec::new();
    for _ in 0..args.creates {
        c.wait_pool(POOL as u64).await?;
        let t0 = Instant::now();
        let v: Value = c.post("/v1/sessions", json!({})).await?.json().await?;
        client_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        server_ms.push(v["create_ms"].as_f64().unwrap_or(0.0));
        c.delete(v["id"].as_str().context("id")?).await?;
    }

    eprintln!(
        "== {name}: {} create→navigate→PNG→destroy cycles",
        args.cycles
    );
    c.wait_pool(POOL as u64).await?;
    let mut cycles = Vec::new();
    let mut steps: [Vec<f64>; 4] = Default::default();
    for _ in 0..args.cycles {
        c.wait_pool(1).await?;
        let [total, rest @ ..] = c.cycle(url).await?;
        let _ = &rest;
        cycles.push(total);
        for (i, v) in rest.into_iter().enumerate() {
            steps[i].push(v);
        }
    }

    eprintln!("== {name}: {} idle sessions", args.idle);
    c.wait_pool(POOL as u64).await?;
    let mut ids = Vec::new();
    for _ in 0..args.idle {
        let id = c.create().await?;
        c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
            .await?;
        ids.push(id);
    }
    c.wait_pool(POOL as u64).await?;
    let total_pss: u64 = browser_pids(pid, &root).into_iter().map(pss_kib).sum();
    let idle_pss = total_pss.saturating_sub(pool_pss);
    for id in &ids {
        c.delete(id).await?;
    }

    eprintln!("== {name}: soak of {} cycles", args.soak);
    c.wait_pool(POOL as u64).await?;
    let t0 = Instant::now();
    for i in 0..args.soak {
        c.cycle(url).await?;
        if i % 100 == 99 {
            eprintln!("   {} cycles", i + 1);
        }
    }
    let soak_ms = t0.elapsed().as_secs_f64() * 1000.0 / args.soak.max(1) as f64;
    c.wait_pool(POOL as u64).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leftover_processes = browser_pids(pid, &root).len();
    let temp_root = std::env::temp_dir().join(format!("driftstack-{pid}"));
    let leftover_dirs = std::fs::read_dir(&temp_root)
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    server.stop()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_stop = pids_mentioning(&root).len() + usize::from(temp_root.exists());

    Ok(VariantResult {
        name: name.to_owned(),
        create_client: stats(client_ms),
        create_server: stats(server_ms),
        cycle: stats(cycles),
        steps: steps.map(|v| stats(v).p50),
        idle_sessions: args.idle,
        idle_pss_mib: idle_pss as f64 / 1024.0,
        pool_pss_mib: pool_pss as f64 / 1024.0,
        soak_cycles: args.soak,
        soak_ms,
        leftover_processes,
        expected_processes: pool_processes,
        leftover_dirs,
        after_stop,
    })
}

pub(crate) fn render(results: &[VariantResult], base: Option<&Value>, args: &Args) -> String {
    let date = crate::report::now();
    let mut md = String::new();
    md.push_str(&format!(
        "Measured {date} on {} with the release binary, pool size 4, pages served on loopback.\n\n",
        machine()
    ));
    let base_cycle = base.and_then(|b| b["warm_cycle_ms"]["median"].as_f64());
    let base_create = base.and_then(|b| b["warm_create_ms"]["median"].as_f64());
    md.push_str("| metric | target |");
    for r in results {
        md.push_str(&format!(" {} |", r.name));
    }
    md.push_str("\n|---|---|");
    for _ in results {
        md.push_str("---|");
    }
    md.push('\n');
    let mut row = |name: &str, target: &str, f: &dyn Fn(&VariantResult) -> String| {
        md.push_str(&format!("| {name} | {target} |"));
        for r in results {
            md.push_str(&format!(" {} |", f(r)));
        }
        md.push('\n');
    };
    row(
        &format!(
            "session create p50 / p99, client-side ({} creates)",
            args.creates
        ),
        "≤ 20 / ≤ 80 ms",
        &|r| format!("{:.1} / {:.1} ms", r.create_client.p50, r.create_client.p99),
    );
    row(
        "session create p50 / p99, server-side `create_ms`",
        "",
        &|r| format!("{:.0} / {:.0} ms", r.create_server.p50, r.create_server.p99),
    );
    row(
        &format!(
            "create→navigate→PNG→destroy cycle, median ({} cycles)",
            args.cycles
        ),
        "",
        &|r| format!("{:.1} ms (p95 {:.1})", r.cycle.p50, r.cycle.p95),
    );
    row(
        "  of which create / navigate / PNG / destroy (medians)",
        "",
        &|r| {
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} ms",
                r.steps[0], r.steps[1], r.steps[2], r.steps[3]
            )
        },
    );
    if let Some(b) = base_cycle {
        row("cycle ÷ puppeteer-core warm cycle", "≤ 0.5×", &|r| {
            format!("{:.2}×", r.cycle.p50 / b)
        });
    }
    row(
        &format!("PSS of {} idle sessions (each navigated once)", args.idle),
        "≤ 8 GiB",
        &|r| {
            format!(
                "{:.2} GiB ({:.0} MiB each)",
                r.idle_pss_mib / 1024.0,
                r.idle_pss_mib / r.idle_sessions.max(1) as f64
            )
        },
    );
    row("PSS of the idle warm pool (4 browsers)", "", &|r| {
        format!("{:.0} MiB", r.pool_pss_mib)
    });
    row(
        &format!("soak: {} back-to-back cycles, mean", args.soak),
        "",
        &|r| format!("{:.1} ms/cycle ({} cycles)", r.soak_ms, r.soak_cycles),
    );
    row(
        "processes after the soak (vs. the idle pool's)",
        "no growth",
        &|r| format!("{} (pool: {})", r.leftover_processes, r.expected_processes),
    );
    row("browser dirs after the soak (pool size 4)", "4", &|r| {
        r.leftover_dirs.to_string()
    });
    row("processes + temp dir after SIGTERM", "0", &|r| {
        r.after_stop.to_string()
    });
    if let Some(b) = base {
        md.push_str(&format!(
            "\nBaseline (raw puppeteer-core on the same Chromium, `../shared/bench/run-baseline.sh 30`, same run): \
             warm cycle median {:.1} ms (context+page {:.1} ms, goto {:.1} ms, PNG {:.1} ms, close {:.1} ms); \
             cold cycle median {:.1} ms.\n",
            base_cycle.unwrap_or(0.0),
            base_create.unwrap_or(0.0),
            b["warm_goto_ms"]["median"].as_f64().unwrap_or(0.0),
            b["warm_png_ms"]["median"].as_f64().unwrap_or(0.0),
            b["warm_release_ms"]["median"].as_f64().unwrap_or(0.0),
            b["cold_cycle_ms"]["median"].as_f64().unwrap_or(0.0),
        ));
    }
    md
}
