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
//! `--perf` instead compares like with like (issue #25): the same browser binary and 800×600
//! viewport as raw puppeteer-core, back-to-back cycles broken down by the server's phase spans,
//! throughput at 1/2/4/8 concurrent clients against puppeteer-core's, and 50 idle sessions' PSS.
//!
//! `--mcp N` instead measures the MCP server's cost over the same REST calls, and what a
//! realistic page weighs as HTML, snapshot and Markdown.
//!
//! `--profiles N` instead measures loading and saving a profile of 200 cookies and 50 origins of
//! localStorage: in the store alone and through real sessions.
//!
//! Measures, for Debian's `chromium` (new headless) and `chromium-headless-shell` when present:
//! session create latency with a warm pool (p50/p99), the create→navigate→PNG→destroy cycle,
//! total PSS of N idle sessions, and processes and temp dirs left after many cycles. Writes the
//! results, with the machine and date, into `docs/PERFORMANCE.md` between marker comments.

mod baseline;
mod compare;
mod inspector;
mod limits;
mod live_input;
mod mcp;
mod perf;
mod phases;
mod procfs;
mod profile;
mod report;
mod sandbox;
mod server;
mod sessions;
mod soak;
mod stats;
mod webhooks;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use baseline::baseline;
use compare::compare;
use limits::limits_bench;
use profile::profiles_bench;
use report::{machine, write_named_section, write_section};
use sandbox::sandbox_bench;
use server::serve_page;
use sessions::{render, run_variant};
use soak::soak_mixed;
use webhooks::webhooks_bench;

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
    /// Compare cycles with recording off and on, and measure a recorded minute's stored bytes.
    inspector: bool,
    /// Measure the interactive live view's input-to-frame latency with this many keystrokes.
    live_input: Option<usize>,
    /// Measure the MCP server's overhead over REST, and snapshot sizes, with this many calls.
    mcp: Option<usize>,
    /// Issue #25's like-for-like run: the same browser and viewport as the baseline, phases,
    /// throughput at 1/2/4/8 clients, idle memory.
    perf: bool,
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
        inspector: false,
        live_input: None,
        mcp: None,
        perf: false,
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
            "--inspector" => args.inspector = true,
            "--live-input" => args.live_input = Some(value()?.parse()?),
            "--mcp" => args.mcp = Some(value()?.parse()?),
            "--perf" => args.perf = true,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
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
    if let Some(keys) = args.live_input {
        let md = live_input::live_input_bench(&args, &url, keys).await?;
        print!("{md}");
        write_named_section(&args.out, "live-input", &md)?;
        return Ok(());
    }
    if let Some(n) = args.mcp {
        let md = mcp::mcp_bench(&args, n).await?;
        print!("{md}");
        write_named_section(&args.out, "mcp", &md)?;
        return Ok(());
    }
    if args.perf {
        let md = perf::perf_bench(&args, &url).await?;
        print!("{md}");
        write_named_section(&args.out, "perf", &md)?;
        return Ok(());
    }
    if args.inspector {
        let md = inspector::inspector_bench(&args, &url).await?;
        print!("{md}");
        write_named_section(&args.out, "inspector", &md)?;
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
