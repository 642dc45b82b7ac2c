//! `--limits N`: authenticated reads per second with metering and rate limiting on and off.

use std::{path::Path, time::Instant};

use serde_json::json;

use crate::{report::machine, server::Server};

/// Authenticated reads per second (`GET /v1/account/me`, 16 at a time) with metering and rate
/// limiting on, and with both off.
pub(crate) async fn limits_bench(binary: &Path, n: usize) -> anyhow::Result<String> {
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
