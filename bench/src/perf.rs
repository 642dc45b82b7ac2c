//! `--perf`: the service against raw puppeteer-core driving the **same browser binary at the same
//! 800×600 viewport**, measured in one run: creates, back-to-back cycles broken down by phase
//! (from the server's `phase` spans), throughput at 1/2/4/8 concurrent clients, and the memory of
//! 50 idle sessions with the sandbox on.

use std::{
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context;
use serde_json::{Value, json};

use crate::{
    Args,
    baseline::baseline_on,
    phases::{Phases, read_phases},
    procfs::{browser_pids, pss_kib},
    report::machine,
    server::{Client, Server},
    stats::stats,
};

const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";
const FULL_CHROMIUM: &str = "/usr/lib/chromium/chromium";
const POOL: usize = 8;
const LEVELS: [usize; 4] = [1, 2, 4, 8];

/// Puppeteer's default viewport, which the baseline uses.
fn body() -> Value {
    json!({"viewport": {"width": 800, "height": 600}})
}

/// Raw puppeteer-core's throughput at `concurrency` on `chromium` (`bench/js/throughput.mjs`).
fn puppeteer_throughput(
    chromium: &str,
    url: &str,
    concurrency: usize,
    cycles: usize,
) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("node")
        .arg("bench/js/throughput.mjs")
        .args(["--url", url, "--chromium", chromium])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--cycles", &cycles.to_string()])
        .output()
        .context("node bench/js/throughput.mjs")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON: {}", String::from_utf8_lossy(&out.stderr)))?;
    let v: Value = serde_json::from_str(line)?;
    Ok((
        v["cycles_per_s"].as_f64().unwrap_or(0.0),
        v["errors"].as_u64().unwrap_or(0),
    ))
}

/// The service's throughput: `concurrency` clients doing `cycles` cycles between them.
async fn service_throughput(
    c: &Client,
    url: &str,
    concurrency: usize,
    cycles: usize,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (c, url, next, errors) = (c.clone(), url.to_owned(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < cycles {
                if let Err(e) = c.cycle_with(&url, body()).await {
                    eprintln!("   cycle failed: {e:#}");
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::SeqCst);
    ((cycles - errors.min(cycles)) as f64 / seconds, errors)
}

struct Measured {
    creates: Vec<f64>,
    cycles: Vec<[f64; 5]>,
    phases: Phases,
    throughput: Vec<(f64, usize)>,
    idle_pss_mib: f64,
}

async fn measure_service(args: &Args, url: &str) -> anyhow::Result<Measured> {
    let log = std::env::temp_dir().join(format!("driftstack-perf-{}.log", std::process::id()));
    let server = Server::start_logged(
        &args.binary,
        Path::new(HEADLESS_SHELL),
        POOL,
        &[
            ("DRIFTSTACK_LOG_SPANS", "1"),
            ("DRIFTSTACK_LOG_FORMAT", "json"),
            ("RUST_LOG", "warn,phase=info"),
        ],
        &log,
    )?;
    let pid = server.child.id();
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(POOL as u64).await?;
    let pool_pss: u64 = browser_pids(pid, &format!("/driftstack-{pid}/"))
        .into_iter()
        .map(pss_kib)
        .sum();

    eprintln!("== perf: {} creates", args.creates);
    let mut creates = Vec::with_capacity(args.creates);
    for _ in 0..args.creates {
        c.wait_pool(POOL as u64).await?;
        let t0 = Instant::now();
        let id = c.create_with(body()).await?;
        creates.push(t0.elapsed().as_secs_f64() * 1000.0);
        c.delete(&id).await?;
    }

    eprintln!("== perf: {} back-to-back cycles", args.cycles);
    c.wait_pool(POOL as u64).await?;
    let from = std::fs::metadata(&log)?.len();
    let mut cycles = Vec::with_capacity(args.cycles);
    for _ in 0..args.cycles {
        cycles.push(c.cycle_with(url, body()).await?);
    }
    c.wait_pool(POOL as u64).await?;
    let phases = read_phases(&log, from)?;

    let mut throughput = Vec::new();
    for n in LEVELS {
        eprintln!("== perf: throughput, {n} clients");
        c.wait_pool(POOL as u64).await?;
        throughput.push(service_throughput(&c, url, n, (n * 10).max(args.cycles)).await);
    }

    eprintln!("== perf: 50 idle sessions");
    c.wait_pool(POOL as u64).await?;
    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = c.create().await?;
        c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
            .await?;
        ids.push(id);
    }
    c.wait_pool(POOL as u64).await?;
    let total: u64 = browser_pids(pid, &format!("/driftstack-{pid}/"))
        .into_iter()
        .map(pss_kib)
        .sum();
    for id in &ids {
        c.delete(id).await?;
    }
    server.stop()?;
    let _ = std::fs::remove_file(&log);
    Ok(Measured {
        creates,
        cycles,
        phases,
        throughput,
        idle_pss_mib: total.saturating_sub(pool_pss) as f64 / 1024.0,
    })
}

pub(crate) async fn perf_bench(args: &Args, url: &str) -> anyhow::Result<String> {
    eprintln!("== perf: baselines (raw puppeteer-core) on both browsers");
    let shell = baseline_on(Some(HEADLESS_SHELL))?;
    let full = baseline_on(Some(FULL_CHROMIUM))?;
    let mut raw = Vec::new();
    for n in LEVELS {
        eprintln!("== perf: puppeteer-core throughput, {n} workers");
        raw.push(puppeteer_throughput(
            HEADLESS_SHELL,
            url,
            n,
            (n * 10).max(args.cycles),
        )?);
    }
    let m = measure_service(args, url).await?;
    Ok(render(args, &shell, &full, &raw, &m))
}

fn render(args: &Args, shell: &Value, full: &Value, raw: &[(f64, u64)], m: &Measured) -> String {
    let median = |v: &Value, k: &str| v[k]["median"].as_f64().unwrap_or(0.0);
    let col = |i: usize| stats(m.cycles.iter().map(|c| c[i]).collect());
    let create = stats(m.creates.clone());
    let (cycle, base) = (col(0), median(shell, "warm_cycle_ms"));
    let mut md = format!(
        "Measured {} on {} with the release binary: chromium-headless-shell, sandbox and egress \
         proxy on, pool of {POOL}, viewport 800×600 on both sides, SQLite, page on loopback.\n\n",
        crate::report::now(),
        machine()
    );
    md.push_str(
        "| metric | target | Driftstack | raw puppeteer-core, same browser |\n|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| session create p50 / p99, client-side ({} creates) | ≤ 5 / ≤ 20 ms | {:.1} / {:.1} ms | context + page {:.1} ms (median) |\n",
        args.creates, create.p50, create.p99, median(shell, "warm_create_ms")
    ));
    md.push_str(&format!(
        "| create→navigate→PNG→destroy, median of {} back-to-back cycles (p95) | ≤ 1.0× | **{:.1} ms** ({:.1}) = **{:.2}×** | {base:.1} ms |\n",
        args.cycles, cycle.p50, cycle.p95, cycle.p50 / base
    ));
    for (i, (name, key)) in [
        ("create", "warm_create_ms"),
        ("navigate", "warm_goto_ms"),
        ("PNG", "warm_png_ms"),
        ("destroy", "warm_release_ms"),
    ]
    .into_iter()
    .enumerate()
    {
        md.push_str(&format!(
            "| — {name}, median | | {:.1} ms | {:.1} ms |\n",
            col(i + 1).p50,
            median(shell, key)
        ));
    }
    for (i, n) in LEVELS.iter().enumerate() {
        let (ours, errors) = m.throughput[i];
        let (theirs, their_errors) = raw[i];
        md.push_str(&format!(
            "| throughput, {n} concurrent client(s) | ≥ 2.5× | {ours:.2} cycles/s ({errors} errors) = **{:.2}×** | {theirs:.2} cycles/s ({their_errors} errors) |\n",
            ours / theirs.max(f64::MIN_POSITIVE)
        ));
    }
    md.push_str(&format!(
        "| PSS of 50 idle sessions (each navigated once), sandbox on | ≤ 4 GiB | {:.2} GiB ({:.0} MiB each) | |\n",
        m.idle_pss_mib / 1024.0,
        m.idle_pss_mib / 50.0
    ));
    md.push_str(&format!(
        "\nThe same baseline on full Chromium (`{FULL_CHROMIUM}`), same run: warm cycle median \
         {:.1} ms (context+page {:.1}, goto {:.1}, PNG {:.1}, close {:.1} ms).\n\n",
        median(full, "warm_cycle_ms"),
        median(full, "warm_create_ms"),
        median(full, "warm_goto_ms"),
        median(full, "warm_png_ms"),
        median(full, "warm_release_ms"),
    ));
    md.push_str(&m.phases.markdown(args.cycles));
    md
}
