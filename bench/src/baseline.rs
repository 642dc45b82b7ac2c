//! The raw puppeteer-core baseline (`../shared/bench/run-baseline.sh`), run as a script and read
//! back as the JSON line it prints last.

use std::{path::Path, process::Command};

use anyhow::{Context, bail};
use serde_json::Value;

pub(crate) fn baseline() -> anyhow::Result<Value> {
    baseline_on(None)
}

/// The baseline, on `chromium` when given (`BASELINE_CHROMIUM`).
pub(crate) fn baseline_on(chromium: Option<&str>) -> anyhow::Result<Value> {
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
