//! The backstop against leftover browsers: finding processes by the paths on their command
//! line, killing them, and removing the directories a browser or a dead server left behind.

use std::{path::Path, time::Duration};

/// SIGKILLs every process whose command line mentions `dir` (a browser's user-data dir, or a
/// temp root holding several): renderers, GPU, utility and crashpad processes of a browser whose
/// main process is gone. A backstop: they normally exit with it.
pub fn kill_strays(dir: &Path) {
    for pid in pids_mentioning(&dir.display().to_string()) {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// Pids of processes with an argument naming the path `needle` or a path under it (`needle`
/// followed by the end of the argument or a `/`), so `/tmp/driftstack-12` never matches
/// `/tmp/driftstack-123/…`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = needle.as_bytes();
    let names = |arg: &[u8]| {
        arg.windows(needle.len())
            .enumerate()
            .any(|(i, w)| w == needle && matches!(arg.get(i + needle.len()), None | Some(b'/')))
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(names))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes the browser temp roots (`driftstack-<pid>` beside `own_root`) of server processes that
/// are gone, killing any browser still running from them: what a crashed (SIGKILLed) server left.
pub async fn sweep_stale_roots(own_root: &Path) {
    let Some(parent) = own_root.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == own_root {
            continue;
        }
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("driftstack-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("driftstack"))
            .unwrap_or(false);
        if alive {
            continue;
        }
        kill_strays(&path);
        remove_dir_retrying(&path).await;
        tracing::warn!(dir = %path.display(), "removed browsers left by a server that died");
    }
}

pub async fn remove_dir_retrying(dir: &Path) {
    // Dying processes may still write for a moment (and a loaded machine slows them down).
    for _ in 0..100 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tracing::warn!(dir = %dir.display(), "could not remove a browser's user-data dir");
}
