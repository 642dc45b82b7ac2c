//! The soak gate: create → navigate → capture → destroy cycles with a mix of idle timeouts and
//! killed browsers, then no Chromium process beyond the warm pool, no leftover temp dir, no
//! panic, and every session closed. CI runs `DRIFTSTACK_SOAK_CYCLES` cycles (default 60); the full
//! 1,000 with the server's memory tracked is `cargo run --release -p bench -- --soak-mixed 1000`
//! (figures in docs/PERFORMANCE.md).

mod support;

use std::time::Duration;

use driftstack_sdk as sdk;
use support::{Backend, Env, eventually, pages};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cycles_leave_nothing_behind() {
    let cycles: usize = std::env::var("DRIFTSTACK_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let site = pages::start().await;
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_POOL_SIZE", "2");
    let s = env.start();
    let ds = s.sdk(s.key());
    let (mut killed, mut idled) = (0, 0);
    let mut ids = Vec::new();
    for i in 0..cycles {
        let idle = i % 7 == 3;
        let body = sdk::CreateSessionRequest {
            idle_timeout_seconds: idle.then_some(1),
            ..Default::default()
        };
        let session = ds
            .create_session(Some(&body))
            .await
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        let sid = session.id;
        ids.push(sid.clone());
        let nav = sdk::NavigateRequest {
            url: site.url("/"),
            wait_until: None,
            timeout_ms: None,
        };
        ds.navigate(&sid, &nav)
            .await
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        if i % 10 == 5 {
            // Kill a browser of the server (the session's or a warm one): the pool heals.
            let browsers = support::main_browser_processes(s.pid());
            if let Some(pid) = browsers.first() {
                support::signal(*pid, "KILL");
                killed += 1;
            }
            // If the victim was a warm browser, this session is still live: end it. (It may
            // also have failed already: a 409, never a server error.)
            if let Err(e) = ds.release_session(&sid).await {
                assert!(e.status().is_some_and(|s| s < 500), "cycle {i}: {e}");
            }
            continue;
        }
        // A capture answers the PNG, or 409 when the idle timeout won the race.
        if let Err(e) = ds.capture(&sid, &sdk::CaptureRequest::png()).await {
            assert_eq!(e.status(), Some(409), "cycle {i}: {e}");
        }
        if idle {
            idled += 1;
            continue;
        }
        ds.release_session(&sid)
            .await
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
    }
    // Every session ends (idle ones time out, killed ones fail).
    let live = sdk::ListSessionsQuery {
        status: Some(sdk::ListSessionsQueryStatus::Live),
        limit: Some(100),
        starting_after: None,
    };
    let all_ended = eventually(Duration::from_secs(30), async || {
        ds.list_sessions(&live)
            .await
            .is_ok_and(|page| page.data.is_empty())
    })
    .await;
    assert!(all_ended, "sessions still live");
    for sid in ids.iter().step_by(7) {
        let got = ds.get_session(sid).await.expect("session");
        assert!(
            ["closed", "timed_out", "failed"].contains(&got.status.as_str()),
            "{got:?}"
        );
    }
    // Only the warm pool is left: 2 browsers, each with its helpers.
    let settled = eventually(Duration::from_secs(30), async || {
        support::main_browser_processes(s.pid()).len() <= 2
    })
    .await;
    assert!(settled, "{:?}", support::main_browser_processes(s.pid()));
    // Killed and recycled browsers' directories are removed in the background.
    let temp_root = std::env::temp_dir().join(format!("driftstack-{}", s.pid()));
    // Browser directories (each browser also has a launcher file and its session files dir,
    // `<dir>.files`, beside its directory): a files dir without its browser counts as left over.
    let dirs = || {
        let names: Vec<String> = std::fs::read_dir(&temp_root)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let browsers = names.iter().filter(|n| !n.ends_with(".files")).count();
        let orphans = names
            .iter()
            .filter_map(|n| n.strip_suffix(".files"))
            .filter(|b| !names.iter().any(|n| n == b))
            .count();
        browsers + orphans
    };
    let cleaned = eventually(Duration::from_secs(30), async || dirs() <= 2).await;
    assert!(
        cleaned,
        "{} browser dirs left in {}",
        dirs(),
        temp_root.display()
    );
    assert!(!s.log().contains("panicked"));
    let pid = s.pid();
    assert!(s.terminate().success());
    assert!(support::browser_processes(pid).is_empty());
    assert!(!temp_root.exists());
    eprintln!("soak: {cycles} cycles, {killed} browsers killed, {idled} sessions idled out");
}
