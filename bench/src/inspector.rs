//! `--inspector`: what recording costs — the create→navigate→PNG→destroy cycle with `record`
//! off and on, interleaved, next to the puppeteer-core baseline on the same browser — and the
//! bytes a recorded session of the bench page stores per minute (recording and logs).

use std::{path::Path, time::Instant};

use serde_json::json;

use crate::{
    Args,
    baseline::baseline_on,
    report::machine,
    server::{Client, Server},
    stats::stats,
};

const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";
const POOL: usize = 4;

async fn client(args: &Args) -> anyhow::Result<(Server, Client)> {
    let server = Server::start_with(&args.binary, Path::new(HEADLESS_SHELL), POOL, &[])?;
    let c = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    c.wait_pool(POOL as u64).await?;
    Ok((server, c))
}

/// Stored bytes of a recorded session on the bench page over `seconds`, with a scroll and a
/// small DOM change every second: (recording bytes, log bytes).
async fn stored_per_session(c: &Client, url: &str, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let id = c.create_with(json!({"record": true})).await?;
    c.post(&format!("/v1/sessions/{id}/navigate"), json!({"url": url}))
        .await?;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed().as_secs() < seconds {
        i += 1;
        let expression = format!(
            "window.scrollTo(0, {}); document.body.insertAdjacentHTML('beforeend', '<p>tick {i}</p>'); console.log('tick {i}')",
            (i % 5) * 100
        );
        c.post(
            &format!("/v1/sessions/{id}/actions"),
            json!({"actions": [{"type": "evaluate", "expression": expression}]}),
        )
        .await?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    c.delete(&id).await?;
    let session = c.get(&format!("/v1/sessions/{id}")).await?;
    let recording = session["recording"]["bytes"].as_f64().unwrap_or(0.0);
    let mut logs = 0.0;
    let mut after = String::new();
    loop {
        let mut path = format!("/v1/sessions/{id}/logs?limit=100");
        if !after.is_empty() {
            path.push_str(&format!("&starting_after={after}"));
        }
        let page = c.get(&path).await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        logs += data
            .iter()
            .map(|e| e["data"].to_string().len() as f64)
            .sum::<f64>();
        after = data
            .last()
            .and_then(|e| e["id"].as_str())
            .unwrap_or("")
            .to_owned();
        if page["has_more"] != true || after.is_empty() {
            break;
        }
    }
    Ok((recording, logs))
}

pub(crate) async fn inspector_bench(args: &Args, url: &str) -> anyhow::Result<String> {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..2 {
        for (record, into) in [(false, &mut off), (true, &mut on)] {
            eprintln!("== record {record}, round {}", round + 1);
            let (server, c) = client(args).await?;
            for _ in 0..args.cycles {
                c.wait_pool(1).await?;
                into.push(c.cycle_with(url, json!({"record": record})).await?);
            }
            server.stop()?;
        }
    }
    eprintln!("== stored bytes of a recorded minute");
    let (server, c) = client(args).await?;
    let seconds = 30;
    let (recording, logs) = stored_per_session(&c, url, seconds).await?;
    server.stop()?;
    let per_minute = 60.0 / seconds as f64;
    let base = if args.baseline {
        baseline_on(Some(HEADLESS_SHELL))
            .map_err(|e| eprintln!("baseline skipped: {e:#}"))
            .ok()
    } else {
        None
    };
    let phase = |runs: &[[f64; 5]], i: usize| stats(runs.iter().map(|r| r[i]).collect());
    let (yoff, yon) = (phase(&off, 0), phase(&on, 0));
    let date = crate::report::now();
    let mut md = format!(
        "Measured {date} on {} with the release binary, chromium-headless-shell (sandbox on), pool \
         size 4, {} cycles per round, 2 interleaved rounds per mode. Logs are on in both modes \
         (they are always on).\n\n",
        machine(),
        args.cycles
    );
    md.push_str("| metric | record off | record on | on ÷ off |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| create→navigate→PNG→destroy cycle, median (p95) | {:.1} ({:.1}) ms | {:.1} ({:.1}) ms | {:.2}× |\n",
        yoff.p50, yoff.p95, yon.p50, yon.p95, yon.p50 / yoff.p50
    ));
    for (i, name) in [
        (1, "create"),
        (2, "navigate"),
        (3, "PNG capture"),
        (4, "destroy"),
    ] {
        let (a, b) = (phase(&off, i), phase(&on, i));
        md.push_str(&format!(
            "| — {name}, median | {:.1} ms | {:.1} ms | {:+.1} ms |\n",
            a.p50,
            b.p50,
            b.p50 - a.p50
        ));
    }
    md.push_str(&format!(
        "\nA recorded session on the bench page with a scroll, a new paragraph and a console line \
         every second, for {seconds} s, stored {:.1} KB of recording (compressed, sealed) and \
         {:.1} KB of log entries: about **{:.1} KB of recording and {:.1} KB of logs per minute**.\n",
        recording / 1000.0,
        logs / 1000.0,
        recording * per_minute / 1000.0,
        logs * per_minute / 1000.0
    ));
    if let Some(b) = base {
        let warm = b["warm_cycle_ms"]["median"].as_f64().unwrap_or(0.0);
        md.push_str(&format!(
            "\nBaseline, same run, same browser binary: raw puppeteer-core warm cycle median \
             {warm:.1} ms; the service's cycle is {:.2}× that without recording and {:.2}× with it.\n",
            yoff.p50 / warm.max(0.001),
            yon.p50 / warm.max(0.001)
        ));
    }
    Ok(md)
}
