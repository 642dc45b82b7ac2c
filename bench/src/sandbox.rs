//! `--sandbox`: creates and cycles with the browser sandbox off and on, interleaved, next to the
//! puppeteer-core baseline on the same browser binary.

use std::{path::Path, time::Instant};

use crate::{
    Args,
    baseline::baseline_on,
    report::machine,
    server::{Client, Server},
    stats::stats,
};

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
pub(crate) async fn sandbox_bench(args: &Args, url: &str) -> anyhow::Result<String> {
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
    let date = crate::report::now();
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
