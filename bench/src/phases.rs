//! The server's `phase` spans (`DRIFTSTACK_LOG_SPANS=1`, JSON logs), read back from its log file:
//! how long each phase of the hot path took, grouped by phase (and by route for `request`).

use std::{io::Read, path::Path};

use serde_json::Value;

use crate::stats::stats;

/// Durations in milliseconds per phase, in the order each phase first closed.
#[derive(Default)]
pub(crate) struct Phases {
    groups: Vec<(String, Vec<f64>)>,
}

/// `1.23ms`, `456µs`, `78.9ns`, `1.5s` (tracing-subscriber's span timings) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "ns" => n / 1e6,
        "µs" | "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        _ => return None,
    })
}

/// The phases logged after byte `from` of the server's log.
pub(crate) fn read_phases(log: &Path, from: u64) -> anyhow::Result<Phases> {
    let mut file = std::fs::File::open(log)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut phases = Phases::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["target"] != "phase" || v["fields"]["message"] != "close" {
            continue;
        }
        let span = &v["span"];
        let Some(name) = span["phase"].as_str() else {
            continue;
        };
        let name = match (span["method"].as_str(), span["route"].as_str()) {
            (Some(m), Some(r)) => format!("{name} {m} {r}"),
            _ => name.to_owned(),
        };
        let busy = v["fields"]["time.busy"].as_str().and_then(millis);
        let idle = v["fields"]["time.idle"].as_str().and_then(millis);
        let (Some(busy), Some(idle)) = (busy, idle) else {
            continue;
        };
        match phases.groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, xs)) => xs.push(busy + idle),
            None => phases.groups.push((name, vec![busy + idle])),
        }
    }
    Ok(phases)
}

impl Phases {
    /// A table: each phase's spans per cycle, median, p95 and time per cycle.
    pub(crate) fn markdown(&self, cycles: usize) -> String {
        let mut md = format!(
            "Phases of those {cycles} cycles, from the server's `phase` spans (wall time from the \
             span's start to its end; nested phases are inside their parents, `pool.*` runs in \
             the background after a release, `proxy.*` once per browser connection):\n\n\
             | phase | per cycle | median | p95 | ms per cycle |\n|---|---|---|---|---|\n"
        );
        for (name, xs) in &self.groups {
            let s = stats(xs.clone());
            let total: f64 = xs.iter().sum();
            md.push_str(&format!(
                "| `{name}` | {:.2} | {:.2} ms | {:.2} ms | {:.2} |\n",
                xs.len() as f64 / cycles.max(1) as f64,
                s.p50,
                s.p95,
                total / cycles.max(1) as f64
            ));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn span_timings_read_as_milliseconds() {
        assert_eq!(millis("1.5ms"), Some(1.5));
        assert_eq!(millis("250µs"), Some(0.25));
        assert_eq!(millis("2s"), Some(2000.0));
        assert_eq!(millis("fast"), None);
    }
}
