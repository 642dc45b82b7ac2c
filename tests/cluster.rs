//! Several nodes on one PostgreSQL (issue #10, first slice: the runner registry). Two nodes, each
//! with its embedded runner, share the database and the master key: both runners register and
//! heartbeat; when one node is SIGKILLed, the other declares its runner dead within the
//! heartbeat timeout and fails its sessions, with `session.failed` webhooks; the survivor keeps
//! serving; the killed node restarting with the same runner id starts clean; a graceful stop
//! leaves its runner `stopped`. A session's commands sent to the other node get a clear 421.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, routing::post};
use driftstack_sdk as sdk;
use support::{Backend, Env, eventually, pages};

/// A webhook receiver keeping every body.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                if let (Ok(v), Ok(mut all)) = (serde_json::from_slice(&body), s.lock()) {
                    all.push(v);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

async fn runners(url: &str) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, state FROM runners ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("runners");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runners_sessions_fail_on_the_other_node() {
    let site = pages::start().await;
    let (hook, seen) = receiver().await;
    let mut a = Env::new(Backend::Postgres);
    a.set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3")
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS", "1");
    let db = a.vars["DATABASE_URL"].clone();
    let node_a = a.start();
    let key = node_a.key().to_owned();
    // The second node: same database and master key, its own data dir (so its own runner).
    let master = std::fs::read_to_string(a.dir.path().join("data/master.key")).expect("master key");
    let mut b = Env::new(Backend::Sqlite);
    b.set("DATABASE_URL", &db)
        .set("DRIFTSTACK_MASTER_KEY", master.trim())
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3")
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS", "1");
    let node_b = b.start();

    let registered = runners(&db).await;
    assert_eq!(registered.len(), 2, "{registered:?}");
    assert!(registered.iter().all(|(_, state)| state == "active"));
    // The operator's view of the same registry.
    let listed = b.cli(&["runners"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    for line in listed.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(r["state"], "active", "{r}");
        assert_eq!(r["capacity"].as_i64().map(|c| c > 0), Some(true), "{r}");
    }

    let via_a = node_a.sdk(&key);
    let via_b = node_b.sdk(&key);
    via_a
        .create_endpoint(&sdk::CreateEndpointRequest {
            url: hook,
            description: None,
            event_types: Some(vec!["session.failed".into()]),
        })
        .await
        .expect("endpoint");
    let on_a = via_a.create_session(None).await.expect("session on A");
    let on_b = via_b.create_session(None).await.expect("session on B");
    assert_ne!(on_a.runner_id, on_b.runner_id);
    // Either node reads any session (shared state).
    assert_eq!(
        via_b
            .get_session(&on_a.id)
            .await
            .expect("A's session via B")
            .status,
        "active"
    );

    // Commands must still reach the node that runs the session (forwarding is not built yet):
    // the other node says so plainly instead of pretending the session ended.
    let nav = sdk::NavigateRequest {
        url: site.url("/"),
        wait_until: None,
        timeout_ms: None,
    };
    let misdirected = via_b
        .navigate(&on_a.id, &nav)
        .await
        .expect_err("A's session via B");
    assert_eq!(misdirected.status(), Some(421), "{misdirected}");
    assert_eq!(misdirected.code(), Some("session_on_another_node"));

    // A dies without a word; B notices within the timeout and fails A's session.
    let killed_at = Instant::now();
    node_a.kill();
    let failed = eventually(Duration::from_secs(15), async || {
        via_b
            .get_session(&on_a.id)
            .await
            .is_ok_and(|s| s.status == "failed")
    })
    .await;
    assert!(failed, "A's session was not failed");
    let took = killed_at.elapsed();
    eprintln!("a killed runner's session failed after {took:?} (timeout 3 s, heartbeat 1 s)");
    let s = via_b.get_session(&on_a.id).await.expect("session");
    assert_eq!(s.end_reason.as_deref(), Some("runner_lost"));
    let state_of = |rows: &[(String, String)], id: &str| {
        rows.iter()
            .find(|(r, _)| r == id)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    let rows = runners(&db).await;
    assert_eq!(state_of(&rows, &on_a.runner_id), "dead");
    assert_eq!(state_of(&rows, &on_b.runner_id), "active");
    // …with its webhook.
    let delivered = eventually(Duration::from_secs(20), async || {
        seen.lock().is_ok_and(|all| {
            all.iter().any(|e| {
                e["type"] == "session.failed" && e["data"]["session_id"] == on_a.id.as_str()
            })
        })
    })
    .await;
    assert!(delivered, "no session.failed webhook for A's session");

    // B's own session lives on, and B keeps serving new ones.
    assert_eq!(
        via_b.get_session(&on_b.id).await.expect("B's").status,
        "active"
    );
    let more = via_b.create_session(None).await.expect("another on B");
    via_b.navigate(&more.id, &nav).await.expect("navigate on B");

    // A comes back with the same runner id: registered afresh, its old session stays failed.
    let node_a = a.start();
    let via_a = node_a.sdk(&key);
    let rows = runners(&db).await;
    assert_eq!(state_of(&rows, &on_a.runner_id), "active");
    assert_eq!(
        via_a.get_session(&on_a.id).await.expect("old").status,
        "failed"
    );
    let fresh = via_a
        .create_session(None)
        .await
        .expect("session on A again");
    assert_eq!(fresh.runner_id, on_a.runner_id);

    // A graceful stop leaves the runner `stopped` (not dead) and its sessions closed.
    assert!(node_b.terminate().success());
    let rows = runners(&db).await;
    assert_eq!(state_of(&rows, &on_b.runner_id), "stopped");
    assert_eq!(
        via_a.get_session(&on_b.id).await.expect("B's").status,
        "closed"
    );
    // A stopped runner is not reaped later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows = runners(&db).await;
    assert_eq!(state_of(&rows, &on_b.runner_id), "stopped");
    assert!(node_a.terminate().success());
}

/// Two nodes with `DRIFTSTACK_CLUSTER_TOKEN`: every node answers every session's commands (they
/// are forwarded to the node that runs the session), and parallel creates spread over both
/// nodes against a concurrency cap of 3 admit exactly 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_either_node_reach_the_right_runner() {
    let site = pages::start().await;
    let tiers = support::TempDir::new("tiers");
    let tiers_file = tiers.path().join("tiers.json");
    std::fs::write(
        &tiers_file,
        r#"{"self_hosted": {"display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": 3, "max_session_seconds": 600,
            "idle_timeout_seconds": 300, "monthly_sessions": null, "monthly_session_minutes": null,
            "rate_limit_per_second": 1000, "rate_limit_burst": 1000, "max_profiles": 20,
            "max_profile_state_bytes": 1048576}}"#,
    )
    .expect("tiers");
    let mut a = Env::new(Backend::Postgres);
    a.set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret")
        .set("DRIFTSTACK_TIERS_FILE", &tiers_file.display().to_string())
        .set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1")
        .set("DRIFTSTACK_POOL_SIZE", "2");
    let db = a.vars["DATABASE_URL"].clone();
    let node_a = a.start();
    let key = node_a.key().to_owned();
    let master = std::fs::read_to_string(a.dir.path().join("data/master.key")).expect("master key");
    let mut b = Env::new(Backend::Sqlite);
    b.set("DATABASE_URL", &db)
        .set("DRIFTSTACK_MASTER_KEY", master.trim())
        .set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret")
        .set("DRIFTSTACK_TIERS_FILE", &tiers_file.display().to_string())
        .set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1")
        .set("DRIFTSTACK_POOL_SIZE", "2");
    let node_b = b.start();
    let via_a = node_a.sdk(&key).with_max_retries(0);
    let via_b = node_b.sdk(&key).with_max_retries(0);

    // Sessions on each node, driven through the other one.
    let on_a = via_a.create_session(None).await.expect("on A");
    let on_b = via_b.create_session(None).await.expect("on B");
    for (session, other) in [(&on_a, &via_b), (&on_b, &via_a)] {
        let nav = sdk::NavigateRequest {
            url: site.url("/"),
            wait_until: None,
            timeout_ms: None,
        };
        let loaded = other
            .navigate(&session.id, &nav)
            .await
            .expect("navigate through the other node");
        assert_eq!(loaded.status, Some(200));
        let png = other
            .capture(&session.id, &sdk::CaptureRequest::png())
            .await
            .expect("capture through the other node");
        assert!(png.starts_with(b"\x89PNG"));
        let closed = other
            .release_session(&session.id)
            .await
            .expect("release through the other node");
        assert_eq!(closed.status, "closed");
    }
    // A forwarded call is counted once (by the node the client called), not twice. Counts are
    // flushed every second; one reading's own cost is measured first.
    let used = async || {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        via_a
            .get_usage()
            .await
            .expect("usage")
            .meters
            .api_calls
            .used
    };
    let r0 = used().await;
    let r1 = used().await;
    let reading = r1 - r0;
    let third = via_a.create_session(None).await.expect("on A");
    let nav = sdk::NavigateRequest {
        url: site.url("/"),
        wait_until: None,
        timeout_ms: None,
    };
    via_b.navigate(&third.id, &nav).await.expect("forwarded");
    via_a.release_session(&third.id).await.expect("release");
    let r2 = used().await;
    assert_eq!(
        r2 - r1,
        3.0 + reading,
        "three calls (one forwarded) and a reading: {r0} → {r1} → {r2}"
    );

    // The WebSockets too: CDP and the live view of A's session, through B.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let on_a = via_a.create_session(None).await.expect("on A");
        let connect = on_a.connect_url.clone().expect("connect_url");
        let through_b = connect.replacen(
            &node_a.base.replacen("http://", "ws://", 1),
            &node_b.base.replacen("http://", "ws://", 1),
            1,
        );
        assert_ne!(through_b, connect);
        let (mut cdp, _) = tokio_tungstenite::connect_async(through_b.as_str())
            .await
            .expect("CDP through B");
        let cmd = serde_json::json!({"id": 1, "method": "Browser.getVersion"}).to_string();
        cdp.send(Message::Text(cmd.into())).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(10), cdp.next())
            .await
            .expect("a reply within 10 s")
            .expect("a frame")
            .expect("no error");
        assert!(
            reply.to_text().unwrap_or("").contains("product"),
            "{reply:?}"
        );
        let token = connect.split("token=").nth(1).expect("token").to_owned();
        let live = format!(
            "{}/v1/sessions/{}/live?token={token}",
            node_b.base.replacen("http://", "ws://", 1),
            on_a.id
        );
        let (mut view, _) = tokio_tungstenite::connect_async(live.as_str())
            .await
            .expect("live view through B");
        let nav = sdk::NavigateRequest {
            url: site.url("/"),
            wait_until: None,
            timeout_ms: None,
        };
        via_a.navigate(&on_a.id, &nav).await.expect("navigate");
        let frame = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(msg) = view.next().await {
                if let Ok(Message::Binary(bytes)) = msg {
                    return Some(bytes);
                }
            }
            None
        })
        .await
        .expect("a frame within 15 s")
        .expect("a binary frame");
        assert!(frame.starts_with(&[0xFF, 0xD8]), "a JPEG");
        // Ending the session closes both relayed sockets with the reason.
        via_b
            .release_session(&on_a.id)
            .await
            .expect("release through B");
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(msg) = view.next().await {
                if let Ok(Message::Close(Some(c))) = msg {
                    return Some(c.reason.to_string());
                }
            }
            None
        })
        .await
        .expect("closed within 10 s");
        assert_eq!(closed.as_deref(), Some("session ended: released"));
    }

    // 16 parallel creates, alternating nodes, against a cap of 3: exactly 3 are admitted.
    let attempts = (0..16).map(|i| {
        let client = if i % 2 == 0 {
            via_a.clone()
        } else {
            via_b.clone()
        };
        async move { client.create_session(None).await }
    });
    let results = futures::future::join_all(attempts).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<Option<u16>> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.status()))
        .collect();
    assert_eq!(admitted, 3, "{refused:?}");
    assert!(refused.iter().all(|s| *s == Some(429)), "{refused:?}");
    assert!(node_a.terminate().success());
    assert!(node_b.terminate().success());
}
