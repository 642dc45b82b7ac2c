//! Driftstack's session benchmarks, run against the release binary on loopback and compared with
//! raw puppeteer-core on the same Chromium (`../shared/bench/run-baseline.sh`).
//!
//! ```text
//! cargo build --release --bin driftstack
//! cargo run --release -p bench -- [--creates 200] [--cycles 50] [--idle 50] [--soak 1000]
//!                                 [--binary target/release/driftstack] [--no-baseline]
//! ```
//!
//! `--sandbox` instead measures creates and cycles with the browser sandbox off and on
//! (interleaved), next to the baseline on the same browser binary.
//!
//! `--profiles N` instead measures loading and saving a profile of 200 cookies and 50 origins of
//! localStorage: in the store alone and through real sessions.
//!
//! Measures, for Debian's `chromium` (new headless) and `chromium-headless-shell` when present:
//! session create latency with a warm pool (p50/p99), the create→navigate→PNG→destroy cycle,
//! total PSS of N idle sessions, and processes and temp dirs left after many cycles. Writes the
//! results, with the machine and date, into `docs/PERFORMANCE.md` between marker comments.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

struct Args {
    binary: PathBuf,
    creates: usize,
    cycles: usize,
    idle: usize,
    soak: usize,
    baseline: bool,
    out: PathBuf,
    /// A binary to compare cycles with (e.g. one built before a change), headless-shell only.
    compare: Option<PathBuf>,
    /// Run the webhook benchmark with this many events instead.
    webhooks: Option<usize>,
    /// Run the profile load/save benchmark with this many rounds instead.
    profiles: Option<usize>,
    /// Measure metering + rate limiting with this many requests instead.
    limits: Option<usize>,
    /// Run the mixed soak (timeouts, killed browsers, server memory) with this many cycles.
    soak_mixed: Option<usize>,
    /// Compare the browser sandbox on and off (creates and cycles), with the baseline on the
    /// same browser.
    sandbox: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut args = Args {
        binary: PathBuf::from(target).join("release/driftstack"),
        creates: 200,
        cycles: 50,
        idle: 50,
        soak: 1000,
        baseline: true,
        out: PathBuf::from("docs/PERFORMANCE.md"),
        compare: None,
        webhooks: None,
        profiles: None,
        limits: None,
        soak_mixed: None,
        sandbox: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().context("a value must follow the flag");
        match flag.as_str() {
            "--binary" => args.binary = PathBuf::from(value()?),
            "--creates" => args.creates = value()?.parse()?,
            "--cycles" => args.cycles = value()?.parse()?,
            "--idle" => args.idle = value()?.parse()?,
            "--soak" => args.soak = value()?.parse()?,
            "--out" => args.out = PathBuf::from(value()?),
            "--no-baseline" => args.baseline = false,
            "--compare" => args.compare = Some(PathBuf::from(value()?)),
            "--webhooks" => args.webhooks = Some(value()?.parse()?),
            "--profiles" => args.profiles = Some(value()?.parse()?),
            "--limits" => args.limits = Some(value()?.parse()?),
            "--soak-mixed" => args.soak_mixed = Some(value()?.parse()?),
            "--sandbox" => args.sandbox = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[derive(Default, Clone, Copy)]
struct Stats {
    p50: f64,
    p95: f64,
    p99: f64,
}

fn stats(mut xs: Vec<f64>) -> Stats {
    if xs.is_empty() {
        return Stats::default();
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| xs[((xs.len() - 1) as f64 * p).floor() as usize];
    Stats {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    }
}

struct Server {
    child: Child,
    base: String,
    key: String,
    dir: PathBuf,
}

impl Server {
    fn start(binary: &Path, chromium: &Path, pool: usize) -> anyhow::Result<Self> {
        Self::start_with(binary, chromium, pool, &[])
    }

    fn start_with(
        binary: &Path,
        chromium: &Path,
        pool: usize,
        env: &[(&str, &str)],
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
            .stderr(Stdio::null())
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

    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait()?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<reqwest::Response> {
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

    async fn create(&self) -> anyhow::Result<String> {
        let v: Value = self.post("/v1/sessions", json!({})).await?.json().await?;
        Ok(v["id"].as_str().context("id")?.to_owned())
    }

    async fn delete(&self, id: &str) -> anyhow::Result<()> {
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

    async fn wait_pool(&self, size: u64) -> anyhow::Result<()> {
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
    async fn cycle(&self, url: &str) -> anyhow::Result<[f64; 5]> {
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        let id = self.create().await?;
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

/// Pids of every process whose arguments mention `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The server's browser processes: its descendants, plus strays that mention its temp root
/// (crashpad handlers are re-parented to init).
fn browser_pids(server: u32, root: &str) -> Vec<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        after.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<u32> = all
        .iter()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..16 {
                match parent_of(p) {
                    Some(pp) if pp == server => return true,
                    Some(pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect();
    for pid in pids_mentioning(root) {
        if !found.contains(&pid) {
            found.push(pid);
        }
    }
    found
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct VariantResult {
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

async fn run_variant(
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

async fn serve_page() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
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

fn baseline() -> anyhow::Result<Value> {
    baseline_on(None)
}

/// The baseline, on `chromium` when given (`BASELINE_CHROMIUM`).
fn baseline_on(chromium: Option<&str>) -> anyhow::Result<Value> {
    let script = Path::new("../shared/bench/run-baseline.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg("30");
    if let Some(c) = chromium {
        cmd.env("BASELINE_CHROMIUM", c);
    }
    let out = cmd.output().context("run-baseline.sh")?;
    if !out.status.success() {
        bail!("baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON from baseline")?;
    Ok(serde_json::from_str(line)?)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let chromium = Command::new("/usr/lib/chromium/chromium")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM, {chromium}")
}

fn render(results: &[VariantResult], base: Option<&Value>, args: &Args) -> String {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
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

/// Median cycle time of `binary` with headless-shell, `n` cycles after a warm pool.
async fn cycle_median(binary: &Path, url: &str, n: usize) -> anyhow::Result<f64> {
    let server = Server::start(
        binary,
        Path::new("/usr/lib/chromium/chromium-headless-shell"),
        4,
    )?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(4).await?;
    let mut xs = Vec::with_capacity(n);
    for _ in 0..n {
        c.wait_pool(1).await?;
        xs.push(c.cycle(url).await?[0]);
    }
    server.stop()?;
    Ok(stats(xs).p50)
}

/// Create latencies (client-side, warm pool) and cycle times of the binary on headless-shell
/// with `DRIFTSTACK_BROWSER_SANDBOX` set to `mode`.
async fn sandbox_round(args: &Args, url: &str, mode: &str) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    const POOL: usize = 4;
    let server = Server::start_with(
        &args.binary,
        Path::new(HEADLESS_SHELL),
        POOL,
        &[("DRIFTSTACK_BROWSER_SANDBOX", mode)],
    )?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(POOL as u64).await?;
    let mut creates = Vec::with_capacity(args.creates);
    for _ in 0..args.creates {
        c.wait_pool(POOL as u64).await?;
        let t0 = Instant::now();
        let id = c.create().await?;
        creates.push(t0.elapsed().as_secs_f64() * 1000.0);
        c.delete(&id).await?;
    }
    let mut cycles = Vec::with_capacity(args.cycles);
    for _ in 0..args.cycles {
        c.wait_pool(1).await?;
        cycles.push(c.cycle(url).await?[0]);
    }
    server.stop()?;
    Ok((creates, cycles))
}

const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";

/// The sandbox's cost: sandbox on and off interleaved (off, on, off, on), and the raw
/// puppeteer-core baseline on the same browser binary in the same run.
async fn sandbox_bench(args: &Args, url: &str) -> anyhow::Result<String> {
    let (mut on, mut off) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for round in 0..2 {
        for (mode, into) in [("off", &mut off), ("on", &mut on)] {
            eprintln!("== sandbox {mode}, round {}", round + 1);
            let (c, y) = sandbox_round(args, url, mode).await?;
            into.0.extend(c);
            into.1.extend(y);
        }
    }
    let base = if args.baseline {
        // Like for like: the baseline drives the same browser binary the runner uses.
        match baseline_on(Some(HEADLESS_SHELL)) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("baseline skipped: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let (con, yon) = (stats(on.0.clone()), stats(on.1.clone()));
    let (coff, yoff) = (stats(off.0.clone()), stats(off.1.clone()));
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut md = format!(
        "Measured {date} on {} with the release binary, chromium-headless-shell, pool size 4, {} \
         creates and {} cycles per round, 2 interleaved rounds per mode.\n\n",
        machine(),
        args.creates,
        args.cycles
    );
    md.push_str("| metric | sandbox off | sandbox on | on ÷ off |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| session create p50 / p99, client-side | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2}× / {:.2}× |\n",
        coff.p50, coff.p99, con.p50, con.p99, con.p50 / coff.p50, con.p99 / coff.p99
    ));
    md.push_str(&format!(
        "| create→navigate→PNG→destroy cycle, median (p95) | {:.1} ({:.1}) ms | {:.1} ({:.1}) ms | {:.2}× |\n",
        yoff.p50, yoff.p95, yon.p50, yon.p95, yon.p50 / yoff.p50
    ));
    if let Some(b) = base {
        let warm = b["warm_cycle_ms"]["median"].as_f64().unwrap_or(0.0);
        md.push_str(&format!(
            "\nBaseline, same run, same browser binary (`BASELINE_CHROMIUM={HEADLESS_SHELL} \
             ../shared/bench/run-baseline.sh 30`): raw puppeteer-core warm cycle median {warm:.1} ms; \
             the service's sandboxed cycle is {:.2}× that.\n",
            yon.p50 / warm.max(0.001)
        ));
    }
    Ok(md)
}

/// Cycles of two binaries, interleaved A B A B so that drift hits both alike.
async fn compare(args: &Args, other: &Path, url: &str) -> anyhow::Result<String> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..2 {
        eprintln!("== compare round {}: {}", round + 1, other.display());
        b.push(cycle_median(other, url, args.cycles).await?);
        eprintln!("== compare round {}: {}", round + 1, args.binary.display());
        a.push(cycle_median(&args.binary, url, args.cycles).await?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (a, b) = (mean(&a), mean(&b));
    Ok(format!(
        "Egress guard cost, chromium-headless-shell, {} cycles × 2 interleaved rounds each: \
         create→navigate→PNG→destroy median **{a:.1} ms with the guard** vs {b:.1} ms without \
         ({}; {:+.1} %).\n",
        args.cycles,
        other.display(),
        (a / b - 1.0) * 100.0
    ))
}

fn write_section(path: &Path, body: &str) -> anyhow::Result<()> {
    write_named_section(path, "sessions", body)
}

fn write_named_section(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let (start, end) = (start.as_str(), end.as_str());
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{start}\n{body}{end}");
    let next = match (current.find(start), current.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &current[..a], &current[b + end.len()..])
        }
        _ => format!("{current}\n{section}\n"),
    };
    std::fs::write(path, next)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !args.binary.exists() {
        bail!(
            "{} not found: run `cargo build --release --bin driftstack` first",
            args.binary.display()
        );
    }
    let (url, _site) = serve_page().await?;
    if let Some(n) = args.webhooks {
        let mut md = String::new();
        md.push_str(&format!(
            "Measured on {} with the release binary, receiver on loopback.\n\n",
            machine()
        ));
        md.push_str("| database | deliveries/s (burst of events written to the outbox) | event → first attempt p50 / p95 (API-triggered, one at a time) |\n|---|---|---|\n");
        for backend in ["sqlite", "postgres"] {
            let (rate, p50, p95) = webhooks_bench(&args.binary, backend, n).await?;
            md.push_str(&format!(
                "| {backend} | {rate:.0} ({n} events) | {p50:.1} / {p95:.1} ms |\n"
            ));
        }
        print!("{md}");
        write_named_section(&args.out, "webhooks", &md)?;
        return Ok(());
    }
    if let Some(n) = args.soak_mixed {
        let md = soak_mixed(&args.binary, n, &url).await?;
        print!("{md}");
        write_named_section(&args.out, "soak", &md)?;
        return Ok(());
    }
    if let Some(n) = args.limits {
        let md = limits_bench(&args.binary, n).await?;
        print!("{md}");
        write_named_section(&args.out, "limits", &md)?;
        return Ok(());
    }
    if let Some(rounds) = args.profiles {
        let md = profiles_bench(&args.binary, rounds).await?;
        print!("{md}");
        write_named_section(&args.out, "profiles", &md)?;
        return Ok(());
    }
    if args.sandbox {
        let md = sandbox_bench(&args, &url).await?;
        print!("{md}");
        write_named_section(&args.out, "sandbox", &md)?;
        return Ok(());
    }
    if let Some(other) = args.compare.clone() {
        let md = compare(&args, &other, &url).await?;
        print!("{md}");
        write_named_section(&args.out, "egress", &md)?;
        return Ok(());
    }
    let mut results = Vec::new();
    for (name, path) in [
        ("chromium (new headless)", "/usr/lib/chromium/chromium"),
        (
            "chromium-headless-shell",
            "/usr/lib/chromium/chromium-headless-shell",
        ),
    ] {
        if Path::new(path).exists() {
            results.push(run_variant(&args, name, Path::new(path), &url).await?);
        }
    }
    let base = if args.baseline {
        eprintln!("== baseline: raw puppeteer-core");
        match baseline() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("baseline skipped: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let md = render(&results, base.as_ref(), &args);
    print!("{md}");
    write_section(&args.out, &md)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

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
async fn webhooks_bench(binary: &Path, backend: &str, n: usize) -> anyhow::Result<(f64, f64, f64)> {
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

/// A profile state of `cookies` cookies over 20 domains and `origins` origins with 20
/// localStorage items each, random enough not to compress away.
fn synthetic_state(cookies: usize, origins: usize) -> profiles::ProfileState {
    let random = |n: usize| -> String {
        let mut s = String::new();
        while s.len() < n {
            s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        s.truncate(n);
        s
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let cookies = (0..cookies)
        .map(|i| profiles::Cookie {
            name: format!("c{i}"),
            value: random(32),
            domain: format!(".site{}.example", i % 20),
            path: "/".into(),
            expires: (i % 5 != 0).then_some(now + 30.0 * 86400.0),
            http_only: i % 2 == 0,
            secure: true,
            same_site: Some("Lax".into()),
            partition_key: None,
        })
        .collect();
    let origins = (0..origins)
        .map(|j| {
            let items = (0..20).map(|k| (format!("key{k}"), random(64))).collect();
            (
                format!("https://o{j}.example"),
                profiles::OriginStorage {
                    local_storage: items,
                },
            )
        })
        .collect();
    profiles::ProfileState {
        version: profiles::ProfileState::VERSION,
        cookies,
        origins,
        indexed_db: None,
    }
}

/// Loading and saving a 200-cookie, 50-origin profile: in the store (encode, write, read back,
/// verify; read and decode) and through real sessions (create with the profile vs. without;
/// release with `persist` vs. without).
async fn profiles_bench(binary: &Path, rounds: usize) -> anyhow::Result<String> {
    let chromium = Path::new("/usr/lib/chromium/chromium-headless-shell");
    let server = Server::start(binary, chromium, 2)?;
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    let profile: Value = client
        .post("/v1/profiles", json!({"name": "bench"}))
        .await?
        .json()
        .await?;
    let pid: common::ids::ProfileId = profile["id"].as_str().context("id")?.parse()?;
    let me: Value = client
        .http
        .get(format!("{}/v1/account/me", client.base))
        .bearer_auth(&client.key)
        .send()
        .await?
        .json()
        .await?;
    let account: common::ids::AccountId = me["id"].as_str().context("account id")?.parse()?;

    // The server's own profile service, opened on its data dir (same database, same key).
    let data_dir = server.dir.join("data");
    let config = api::config::Config::from_lookup(|k| {
        (k == "DRIFTSTACK_DATA_DIR").then(|| data_dir.display().to_string())
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = api::build_state(config, "http://127.0.0.1".into(), false).await?;
    let service = &state.profiles;
    let limit = 50 << 20;

    let mut synthetic = synthetic_state(200, 50);
    let json_bytes = serde_json::to_vec(&synthetic)?.len();
    let (mut saves, mut loads) = (Vec::new(), Vec::new());
    let mut blob_bytes = 0;
    for round in 0..rounds {
        // A different state each round, so every save writes a new blob.
        synthetic.cookies[0].value = format!("round{round}");
        let t = Instant::now();
        let summary = service.save(&account, &pid, &synthetic, limit).await?;
        saves.push(t.elapsed().as_secs_f64() * 1000.0);
        blob_bytes = summary.bytes;
        let t = Instant::now();
        let record = service.get(&account, &pid).await?;
        let loaded = service.read_state(&record).await?;
        loads.push(t.elapsed().as_secs_f64() * 1000.0);
        if loaded.cookies.len() != 200 || loaded.origins.len() != 50 {
            bail!("the state did not read back whole");
        }
    }
    let (save, load) = (stats(saves), stats(loads));

    // Through real sessions: the browser part (cookies in, storage script; cookies and
    // storage out) on top of the store.
    let timed = |with: bool| {
        let client = &client;
        let pid = pid.to_string();
        async move {
            let (mut creates, mut releases) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let body = if with {
                    json!({"profile_id": pid, "persist": true})
                } else {
                    json!({})
                };
                let t = Instant::now();
                let v: Value = client.post("/v1/sessions", body).await?.json().await?;
                creates.push(t.elapsed().as_secs_f64() * 1000.0);
                let id = v["id"].as_str().context("id")?.to_owned();
                let t = Instant::now();
                client.delete(&id).await?;
                releases.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            anyhow::Ok((stats(creates), stats(releases)))
        }
    };
    let (plain_create, plain_release) = timed(false).await?;
    let (prof_create, prof_release) = timed(true).await?;
    let after: Value = client
        .http
        .get(format!("{}/v1/profiles/{pid}", client.base))
        .bearer_auth(&client.key)
        .send()
        .await?
        .json()
        .await?;
    if after["state"]["cookies"] != 200 || after["state"]["origins"] != 50 {
        bail!("a session round trip lost state: {}", after["state"]);
    }
    server.stop()?;

    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {} with the release binary, SQLite, chromium-headless-shell; a profile of \
         200 cookies (20 domains) and 50 origins × 20 localStorage items; {rounds} rounds.\n\n",
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
        machine()
    ));
    md.push_str("| metric | target | p50 | p95 |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| save: encode → write → read back → verify → point the profile at it | ≤ 50 ms | {:.1} ms | {:.1} ms |\n",
        save.p50, save.p95
    ));
    md.push_str(&format!(
        "| load: read → decrypt → decompress → decode | ≤ 50 ms | {:.1} ms | {:.1} ms |\n",
        load.p50, load.p95
    ));
    md.push_str(&format!(
        "| session create without / with the profile (client-side) | | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
        plain_create.p50, prof_create.p50, plain_create.p95, prof_create.p95
    ));
    md.push_str(&format!(
        "| session release without / with `persist` (client-side; includes the save) | | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
        plain_release.p50, prof_release.p50, plain_release.p95, prof_release.p95
    ));
    md.push_str(&format!(
        "\nState size: {json_bytes} bytes of JSON → {blob_bytes} bytes stored (zstd level 3 + \
         AES-256-GCM), {:.0}% of the original. After {rounds} session round trips the profile \
         still held 200 cookies and 50 origins.\n",
        blob_bytes as f64 * 100.0 / json_bytes as f64
    ));
    Ok(md)
}

/// Authenticated reads per second (`GET /v1/account/me`, 16 at a time) with metering and rate
/// limiting on, and with both off.
async fn limits_bench(binary: &Path, n: usize) -> anyhow::Result<String> {
    let chromium = Path::new("/usr/lib/chromium/chromium-headless-shell");
    // Limits high enough never to refuse: this measures their cost, not their effect.
    let tiers = std::env::temp_dir().join(format!(
        "driftstack-bench-tiers-{}.json",
        std::process::id()
    ));
    std::fs::write(
        &tiers,
        json!({"self_hosted": {
            "display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": null, "max_session_seconds": 86400,
            "idle_timeout_seconds": 1800, "monthly_sessions": null, "monthly_session_minutes": null,
            "rate_limit_per_second": 1_000_000, "rate_limit_burst": 1_000_000,
            "max_profiles": null, "max_profile_state_bytes": 52428800
        }})
        .to_string(),
    )?;
    let tiers = tiers.display().to_string();
    let mut rates = Vec::new();
    for (label, env) in [
        (
            "off",
            vec![
                ("DRIFTSTACK_RATE_LIMITS", "off"),
                ("DRIFTSTACK_METERING", "off"),
            ],
        ),
        ("on", vec![]),
        (
            "off (again)",
            vec![
                ("DRIFTSTACK_RATE_LIMITS", "off"),
                ("DRIFTSTACK_METERING", "off"),
            ],
        ),
        ("on (again)", vec![]),
    ] {
        let mut env = env;
        env.push(("DRIFTSTACK_EMBEDDED_RUNNER", "false"));
        env.push(("DRIFTSTACK_TIERS_FILE", &tiers));
        let server = Server::start_with(binary, chromium, 0, &env)?;
        let http = reqwest::Client::new();
        let url = format!("{}/v1/account/me", server.base);
        // Warm up.
        for _ in 0..200 {
            http.get(&url).bearer_auth(&server.key).send().await?;
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (http, url, key) = (http.clone(), url.clone(), server.key.clone());
            let per = n / 16;
            tasks.push(tokio::spawn(async move {
                for _ in 0..per {
                    let r = http.get(&url).bearer_auth(&key).send().await?;
                    if !r.status().is_success() {
                        anyhow::bail!("status {}", r.status());
                    }
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let rate = (n / 16 * 16) as f64 / started.elapsed().as_secs_f64();
        eprintln!("limits {label}: {rate:.0} req/s");
        rates.push((label, rate));
        server.stop()?;
    }
    let off = (rates[0].1 + rates[2].1) / 2.0;
    let on = (rates[1].1 + rates[3].1) / 2.0;
    Ok(format!(
        "Measured on {} with the release binary (API-only node, SQLite), `GET /v1/account/me` \
         with an API key, 16 concurrent clients, {n} requests per run, two runs each.\n\n\
         | metering + rate limiting | requests/s |\n|---|---|\n| off | {off:.0} |\n| on | {on:.0} |\n\n\
         On/off: {:.1} % (target ≥ 90 %).\n",
        machine(),
        on / off * 100.0
    ))
}

/// The server process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `n` create → navigate → capture → destroy cycles where every 7th session idles out and every
/// 10th cycle kills a browser; the server's RSS after 100 cycles and at the end, and what is left.
async fn soak_mixed(binary: &Path, n: usize, url: &str) -> anyhow::Result<String> {
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
