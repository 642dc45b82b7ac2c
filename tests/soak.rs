//! The soak gate: create → navigate → capture → destroy cycles with a mix of idle timeouts and
//! killed browsers, then no Chromium process beyond the warm pool, no leftover temp dir, no
//! panic, and every session closed. CI runs `DRIFTSTACK_SOAK_CYCLES` cycles (default 60); the full
//! 1,000 with the server's memory tracked is `cargo run --release -p bench -- --soak-mixed 1000`
//! (figures in docs/PERFORMANCE.md).

mod support;

use std::time::Duration;

use serde_json::json;
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
    let key = s.key().to_owned();
    let (mut killed, mut idled) = (0, 0);
    let mut ids = Vec::new();
    for i in 0..cycles {
        let idle = i % 7 == 3;
        let body = if idle {
            json!({"idle_timeout_seconds": 1})
        } else {
            json!({})
        };
        let r = s.post(&key, "/v1/sessions", body).await;
        assert_eq!(r.status, 201, "cycle {i}: {}", r.text());
        let sid = r.json()["id"].as_str().expect("id").to_owned();
        ids.push(sid.clone());
        let r = s
            .post(
                &key,
                &format!("/v1/sessions/{sid}/navigate"),
                json!({"url": site.url("/")}),
            )
            .await;
        assert_eq!(r.status, 200, "cycle {i}: {}", r.text());
        if i % 10 == 5 {
            // Kill a browser of the server (the session's or a warm one): the pool heals.
            let browsers = support::main_browser_processes(s.pid());
            if let Some(pid) = browsers.first() {
                support::signal(*pid, "KILL");
                killed += 1;
            }
            // If the victim was a warm browser, this session is still live: end it.
            let r = s.delete(&key, &format!("/v1/sessions/{sid}")).await;
            assert!(r.status < 500, "cycle {i}: {}", r.text());
            continue;
        }
        let r = s
            .post(
                &key,
                &format!("/v1/sessions/{sid}/capture"),
                json!({"format": "png"}),
            )
            .await;
        assert!(
            r.status == 200 || r.status == 409,
            "cycle {i}: {}",
            r.text()
        );
        if idle {
            idled += 1;
            continue;
        }
        s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    }
    // Every session ends (idle ones time out, killed ones fail).
    let all_ended = eventually(Duration::from_secs(30), async || {
        let live = s
            .get(&key, "/v1/sessions?status=live&limit=100")
            .await
            .json();
        live["data"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(all_ended, "sessions still live");
    for sid in ids.iter().step_by(7) {
        let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
        assert!(
            ["closed", "timed_out", "failed"].contains(&got["status"].as_str().unwrap_or("")),
            "{got}"
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
    let dirs = || {
        std::fs::read_dir(&temp_root)
            .map(|d| d.count())
            .unwrap_or(0)
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
