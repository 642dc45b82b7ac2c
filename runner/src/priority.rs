//! CPU priority of a browser while the pool recycles it. Recycling gives a browser a fresh
//! context and renderer for its next session — about as much CPU as a session's navigation — and
//! on a small machine it would run beside the live sessions and slow them. While the pool has
//! browsers to spare it therefore runs at the lowest priority (nice 19), taking only CPU the
//! sessions leave idle; every thread of the browser is back at nice 0 before the browser rejoins
//! the pool, and a browser whose priority cannot be restored is killed, never handed out.
//!
//! Off unless `DRIFTSTACK_RECYCLE_PRIORITY=low`. Raising a priority back needs `CAP_SYS_NICE`
//! (root has it): without it, or without `renice`, recycling keeps normal priority.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
};

/// The lowest priority, for recycling.
pub(crate) const LOW: i32 = 19;
/// The normal priority every browser has while it can be handed out.
pub(crate) const NORMAL: i32 = 0;

/// Whether recycling at low priority is asked for (`DRIFTSTACK_RECYCLE_PRIORITY=low`; off by
/// default: on a 2-core machine it measured slower, see docs/PERFORMANCE.md).
pub(crate) fn wanted() -> bool {
    std::env::var("DRIFTSTACK_RECYCLE_PRIORITY").is_ok_and(|v| v == "low")
}

/// Whether this process may lower browsers' priority and give it back: it holds
/// `CAP_SYS_NICE` and `renice` runs.
pub(crate) fn can_restore() -> bool {
    const CAP_SYS_NICE: u32 = 23;
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    caps & (1 << CAP_SYS_NICE) != 0
        && Command::new("renice")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The parent of `pid`, from `/proc/<pid>/stat` (the field after the command's closing paren).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every thread of `root` and of its descendants. (Linux priorities are per thread.)
pub fn threads_of_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for pid in entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        {
            if let Some(parent) = parent_of(pid) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&pid) = tree.get(i) {
        tree.extend(children.get(&pid).into_iter().flatten());
        i += 1;
    }
    tree.into_iter()
        .flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The nice value of thread `tid` (`/proc/<tid>/stat`, field 19).
pub fn nice_of(tid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

/// Sets every thread of the tree under `root` to `nice`, then checks: `true` when none is left
/// at another value (a thread started during the first pass gets a second one).
pub(crate) fn renice_tree(root: u32, nice: i32) -> bool {
    for _ in 0..2 {
        let threads = threads_of_tree(root);
        let off: Vec<String> = threads
            .iter()
            .filter(|&&t| nice_of(t).is_some_and(|n| n != nice))
            .map(u32::to_string)
            .collect();
        if off.is_empty() {
            return !threads.is_empty();
        }
        let _ = Command::new("renice")
            .arg("-n")
            .arg(nice.to_string())
            .arg("-p")
            .args(&off)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_is_lowered_and_restored() {
        if !can_restore() {
            return;
        }
        // A shell with a child: both (and every thread) follow the tree's priority.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("spawn");
        let root = child.id();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(threads_of_tree(root).len() >= 2, "the shell and its sleep");
        assert!(renice_tree(root, LOW));
        assert!(
            threads_of_tree(root)
                .iter()
                .all(|&t| nice_of(t) == Some(LOW))
        );
        assert!(renice_tree(root, NORMAL));
        assert!(
            threads_of_tree(root)
                .iter()
                .all(|&t| nice_of(t) == Some(NORMAL))
        );
        let pids: Vec<String> = threads_of_tree(root).iter().map(u32::to_string).collect();
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        let _ = child.wait();
    }
}
