//! `--compare`: cycle medians of two binaries, interleaved, on chromium-headless-shell (used to
//! measure the egress guard's cost).

use std::path::Path;

use crate::{
    Args,
    server::{Client, Server},
    stats::stats,
};

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

/// Cycles of two binaries, interleaved A B A B so that drift hits both alike.
pub(crate) async fn compare(args: &Args, other: &Path, url: &str) -> anyhow::Result<String> {
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
