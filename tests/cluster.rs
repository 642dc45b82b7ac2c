//! Several nodes on one PostgreSQL (issue #10, first slice: the runner registry). Two nodes, each
//! with its embedded runner, share the database and the master key: both runners register and
//! heartbeat; when one node is SIGKILLed, the other declares its runner dead within the
//! heartbeat timeout and fails its sessions, with `session.failed` webhooks; the survivor keeps
//! serving; the killed node restarting with the same runner id starts clean; a graceful stop
//! leaves its runner `stopped`. A session's commands sent to the other node get a clear 421.

mod support;

use std::time::{Duration, Instant};

use driftstack_sdk as sdk;
use support::{Backend, Env, eventually, hooks, pages};

/// Another node of the cluster `first` started: the same database and master key, its own data
/// dir (so its own runner id).
fn joining(first: &Env) -> Env {
    let mut env = Env::new(Backend::Sqlite);
    env.set("DATABASE_URL", &first.vars["DATABASE_URL"]).set(
        "DRIFTSTACK_MASTER_KEY",
        &first.vars["DRIFTSTACK_MASTER_KEY"],
    );
    env
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
    let (hook, seen) = hooks::receiver().await;
    let mut a = Env::new(Backend::Postgres);
    a.set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3")
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS", "1");
    let db = a.vars["DATABASE_URL"].clone();
    let node_a = a.start();
    let key = node_a.key().to_owned();
    // The second node: same database and master key, its own data dir (so its own runner).
    let mut b = joining(&a);
    b.set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3")
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
        seen.events()
            .iter()
            .any(|e| e["type"] == "session.failed" && e["data"]["session_id"] == on_a.id.as_str())
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
        .set("DRIFTSTACK_MAX_BODY_BYTES", "65536")
        .set("DRIFTSTACK_POOL_SIZE", "2");
    let node_a = a.start();
    let key = node_a.key().to_owned();
    let mut b = joining(&a);
    b.set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret")
        .set("DRIFTSTACK_TIERS_FILE", &tiers_file.display().to_string())
        .set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1")
        .set("DRIFTSTACK_MAX_BODY_BYTES", "65536")
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
    // A steady state first: two readings in a row cost the same (a flush of earlier calls can
    // land late under load, which once made one reading look like it cost two).
    let mut r1 = used().await;
    let mut reading = f64::NAN;
    for _ in 0..10 {
        let next = used().await;
        let cost = next - r1;
        r1 = next;
        if cost == reading {
            break;
        }
        reading = cost;
    }
    let third = via_a.create_session(None).await.expect("on A");
    let nav = sdk::NavigateRequest {
        url: site.url("/"),
        wait_until: None,
        timeout_ms: None,
    };
    via_b.navigate(&third.id, &nav).await.expect("forwarded");
    via_a.release_session(&third.id).await.expect("release");
    // Read until the three calls are in (each reading costs `reading` more), at most 5 times.
    let mut reads = 1.0;
    let mut r2 = used().await;
    while r2 - r1 < 3.0 + reads * reading && reads < 5.0 {
        r2 = used().await;
        reads += 1.0;
    }
    assert_eq!(
        r2 - r1,
        3.0 + reads * reading,
        "three calls (one forwarded) and {reads} readings of {reading} each: {r1} → {r2}"
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

    // An upload larger than the JSON body limit, through B to a session on A: streamed through
    // both nodes. With an Idempotency-Key it is spooled to disk on B (not held in memory), and
    // its retry is answered from the first time.
    {
        let on_a = via_a.create_session(None).await.expect("on A");
        let file: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let upload = |key_header: Option<&'static str>, body: Vec<u8>| {
            let mut req = reqwest::Client::new()
                .post(format!(
                    "{}/v1/sessions/{}/uploads?filename=big.bin",
                    node_b.base, on_a.id
                ))
                .bearer_auth(&key)
                .body(body);
            if let Some(k) = key_header {
                req = req.header("idempotency-key", k);
            }
            async move {
                let r = req.send().await.expect("upload through B");
                let replayed = r.headers().contains_key("idempotent-replayed");
                let status = r.status().as_u16();
                let doc: serde_json::Value = r.json().await.expect("json");
                (status, replayed, doc)
            }
        };
        for key_header in [None, Some("upload-once")] {
            let (status, _, doc) = upload(key_header, file.clone()).await;
            assert_eq!(status, 201, "{doc}");
            assert_eq!(doc["size"], 300_000, "{doc}");
            let path = doc["path"].as_str().expect("path");
            assert_eq!(std::fs::read(path).expect("the file on A"), file);
        }
        let (status, replayed, again) = upload(Some("upload-once"), file.clone()).await;
        assert_eq!((status, replayed), (201, true), "{again}");
        let (status, _, doc) = upload(Some("upload-once"), vec![1u8; 10]).await;
        assert_eq!(status, 422, "the same key with other bytes: {doc}");
        assert_eq!(doc["code"], "idempotency_key_reused");
        via_a.release_session(&on_a.id).await.expect("release");
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

/// The runner id a node keeps in its data dir.
fn runner_id(env: &Env) -> String {
    std::fs::read_to_string(env.dir.path().join("data/runner-id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A free loopback port (for a node that must come back on the same address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The deployment of issue #10: two API-only nodes and two runner nodes (`driftstack runner`) on
/// one PostgreSQL. Sessions spread over both runners; commands through either API node reach the
/// right runner; a runner node's API refuses clients; a SIGKILLed runner's sessions fail with
/// webhooks and new sessions avoid it; 16 parallel creates over both API nodes against a cap of
/// 3 admit exactly 3; a rolling restart of an API node loses no request a client retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_nodes_place_sessions_on_runner_nodes() {
    let site = pages::start().await;
    let (hook, seen) = hooks::receiver().await;
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
    let token = "a-long-shared-cluster-secret";
    let common = |env: &mut Env| {
        env.set("DRIFTSTACK_CLUSTER_TOKEN", token)
            .set("DRIFTSTACK_TIERS_FILE", &tiers_file.display().to_string())
            .set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3")
            .set("DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS", "1")
            .set("DRIFTSTACK_POOL_SIZE", "1");
    };
    // The first API node creates the schema and the owner.
    let mut api1 = Env::new(Backend::Postgres);
    common(&mut api1);
    let api1_port = free_port();
    api1.set("DRIFTSTACK_EMBEDDED_RUNNER", "false")
        .set("DRIFTSTACK_LISTEN", &format!("127.0.0.1:{api1_port}"));
    let node_api1 = api1.start();
    let key = node_api1.key().to_owned();
    // Every node hands out links under the public address (here API node 1, as a load balancer
    // would be): connect_urls made by a runner node must reach an API node.
    let public = format!("http://127.0.0.1:{api1_port}");
    let joined = |embedded: bool| {
        let mut env = joining(&api1);
        env.set("DRIFTSTACK_PUBLIC_URL", &public);
        common(&mut env);
        if !embedded {
            env.set("DRIFTSTACK_EMBEDDED_RUNNER", "false");
        }
        env
    };
    let api2 = joined(false);
    let node_api2 = api2.start();
    let r1 = joined(true);
    let runner1 = r1.start_as(&["runner"]);
    let r2 = joined(true);
    let runner2 = r2.start_as(&["runner"]);

    let via1 = node_api1.sdk(&key).with_max_retries(0);
    let via2 = node_api2.sdk(&key).with_max_retries(0);
    via1.create_endpoint(&sdk::CreateEndpointRequest {
        url: hook,
        description: None,
        event_types: Some(vec!["session.failed".into()]),
    })
    .await
    .expect("endpoint");

    // A runner node's API is not for clients.
    let refused = runner1
        .sdk(&key)
        .create_session(None)
        .await
        .expect_err("a client at a runner node");
    assert_eq!(refused.code(), Some("runner_node"), "{refused}");

    // Sessions spread over both runners (least loaded first), whichever API node is called.
    let mut sessions = Vec::new();
    for i in 0..2 {
        let via = if i % 2 == 0 { &via1 } else { &via2 };
        sessions.push(via.create_session(None).await.expect("placed"));
    }
    let runners_used: std::collections::BTreeSet<&str> =
        sessions.iter().map(|s| s.runner_id.as_str()).collect();
    assert_eq!(
        runners_used.len(),
        2,
        "both runners got a session: {runners_used:?}"
    );

    // Commands through either API node reach the right runner.
    let nav = sdk::NavigateRequest {
        url: site.url("/"),
        wait_until: None,
        timeout_ms: None,
    };
    for s in &sessions {
        for via in [&via1, &via2] {
            let loaded = via.navigate(&s.id, &nav).await.expect("navigate");
            assert_eq!(loaded.status, Some(200));
        }
        let png = via2
            .capture(&s.id, &sdk::CaptureRequest::png())
            .await
            .expect("capture");
        assert!(png.starts_with(b"\x89PNG"));
    }

    // A session's connect_url (made by its runner node) works: CDP through an API node, relayed
    // to the runner.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let connect = sessions[1].connect_url.clone().expect("connect_url");
        assert!(
            connect.starts_with(&public.replacen("http://", "ws://", 1)),
            "{connect}"
        );
        let (mut cdp, _) = tokio_tungstenite::connect_async(connect.as_str())
            .await
            .expect("CDP through an API node");
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
    }

    // A runner dies: its session fails (with a webhook) and new sessions go to the other one.
    let dead_runner = sessions[0].runner_id.clone();
    let (victim, survivor) = if dead_runner == runner_id(&r1) {
        (runner1, runner2)
    } else {
        (runner2, runner1)
    };
    victim.kill();
    let failed = eventually(Duration::from_secs(15), async || {
        via1.get_session(&sessions[0].id)
            .await
            .is_ok_and(|s| s.status == "failed")
    })
    .await;
    assert!(failed, "the dead runner's session was not failed");
    let delivered = eventually(Duration::from_secs(20), async || {
        seen.events().iter().any(|e| {
            e["type"] == "session.failed" && e["data"]["session_id"] == sessions[0].id.as_str()
        })
    })
    .await;
    assert!(delivered, "no session.failed webhook");
    via2.release_session(&sessions[1].id)
        .await
        .expect("release the survivor's session");
    let placed = via2
        .create_session(None)
        .await
        .expect("placed after the death");
    assert_ne!(
        placed.runner_id, dead_runner,
        "a new session went to the dead runner"
    );
    via1.release_session(&placed.id).await.expect("release");

    // 16 parallel creates over both API nodes against a cap of 3: exactly 3 are admitted.
    let attempts = (0..16).map(|i| {
        let client = if i % 2 == 0 {
            via1.clone()
        } else {
            via2.clone()
        };
        async move { client.create_session(None).await }
    });
    let results = futures::future::join_all(attempts).await;
    let admitted: Vec<&sdk::SessionResponse> =
        results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused: Vec<Option<u16>> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.status()))
        .collect();
    assert_eq!(admitted.len(), 3, "{refused:?}");
    assert!(
        refused.iter().all(|s| *s == Some(429) || *s == Some(503)),
        "{refused:?}"
    );
    for s in admitted {
        via1.release_session(&s.id).await.expect("release");
    }

    // A rolling restart of API node 1 (same address): a client that retries per retry-after
    // and on refused connections loses nothing.
    let patient = node_api1.sdk(&key).with_max_retries(8);
    let base = node_api1.base.clone();
    let busy = tokio::spawn(async move {
        let mut done = 0;
        for _ in 0..40 {
            patient.get_usage().await.expect("no request lost");
            done += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        done
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(node_api1.terminate().success());
    let node_api1 = api1.start();
    assert_eq!(node_api1.base, base);
    assert_eq!(busy.await.expect("client"), 40);

    drop(survivor);
    drop(node_api2);
}

/// A local S3-compatible server (moto's server mode, installed by scripts/test) with one bucket.
struct S3 {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3_with_bucket(bucket: &str) -> S3 {
    let tool = support::tool("moto_server");
    let port = free_port();
    let child = std::process::Command::new(&tool)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let s3 = S3 { child, endpoint };
    let http = reqwest::Client::new();
    let up = eventually(Duration::from_secs(30), async || {
        http.put(format!("{}/{bucket}", s3.endpoint))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the S3 server did not come up");
    s3
}

/// Profiles on a cluster keep their state in an S3-compatible bucket: a profile saved by one
/// node's runner is loaded by the other node's runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_travel_between_runners_through_s3() {
    let site = pages::start().await;
    let s3 = s3_with_bucket("driftstack-blobs").await;
    let shared = |env: &mut Env| {
        env.set("DRIFTSTACK_BLOB_STORE", "s3://driftstack-blobs/profiles")
            .set("AWS_ENDPOINT_URL", &s3.endpoint)
            .set("AWS_ACCESS_KEY_ID", "test")
            .set("AWS_SECRET_ACCESS_KEY", "test")
            .set("AWS_REGION", "us-east-1")
            .set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret");
    };
    let mut a = Env::new(Backend::Postgres);
    shared(&mut a);
    let node_a = a.start();
    let key = node_a.key().to_owned();
    let mut b = joining(&a);
    shared(&mut b);
    let node_b = b.start();
    let via_a = node_a.sdk(&key);
    let via_b = node_b.sdk(&key);

    let profile = via_a
        .create_profile(&sdk::CreateProfileRequest {
            name: "travels".into(),
            fingerprint: None,
        })
        .await
        .expect("profile");
    let on_profile = |persist: bool| sdk::CreateSessionRequest {
        profile_id: Some(profile.id.clone()),
        persist: Some(persist),
        ..Default::default()
    };
    // Saved by A's runner…
    let first = via_a
        .create_session(Some(&on_profile(true)))
        .await
        .expect("session on A");
    let nav = |url: String| sdk::NavigateRequest {
        url,
        wait_until: None,
        timeout_ms: None,
    };
    via_a
        .navigate(&first.id, &nav(site.url("/set-cookie/travelled")))
        .await
        .expect("set a cookie");
    via_a
        .release_session(&first.id)
        .await
        .expect("release (saves)");
    let saved = via_b.get_profile(&profile.id).await.expect("profile");
    assert_eq!(
        saved.state.as_ref().map(|s| s.cookies),
        Some(1),
        "{saved:?}"
    );
    // …no blob on either node's disk…
    for env in [&a, &b] {
        let local = env.dir.path().join("data/profiles");
        let files = std::fs::read_dir(&local).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 0, "profile blobs written to {}", local.display());
    }
    // …and loaded by B's runner.
    let second = via_b
        .create_session(Some(&on_profile(false)))
        .await
        .expect("session on B");
    assert_ne!(second.runner_id, first.runner_id);
    via_b
        .navigate(&second.id, &nav(site.url("/headers")))
        .await
        .expect("navigate");
    let cookie = via_b
        .run_actions(
            &second.id,
            &sdk::ActionsRequest {
                actions: vec![sdk::ActionBody::Evaluate {
                    expression: "document.body.innerText".into(),
                }],
                timeout_ms: None,
            },
        )
        .await
        .expect("evaluate");
    let cookie = cookie.results[0].value.clone().unwrap_or_default();
    assert!(
        cookie.as_str().is_some_and(|c| c.contains("sid=travelled")),
        "the cookie saved on A is sent by B's browser: {cookie}"
    );
    via_b.release_session(&second.id).await.expect("release");
    // Deleting works against the bucket too (the blob goes with its last reference).
    via_a.delete_profile(&profile.id).await.expect("delete");
    let gone = via_b.get_profile(&profile.id).await.expect_err("deleted");
    assert_eq!(gone.status(), Some(404));
}

/// An MCP session whose requests alternate between two API nodes (as behind a load balancer):
/// the server keeps nothing between requests, and a snapshot's refs live in the page, so a ref
/// taken through one node is clicked through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_alternates_between_two_api_nodes() {
    use serde_json::json;
    use support::mcp;
    let site = pages::start_with(vec![(
        "/counter",
        r#"<title>Counter</title><h1>Clicks: <span id="n">0</span></h1>
        <button onclick="n.textContent = Number(n.textContent) + 1">Add one</button>"#
            .to_owned(),
    )])
    .await;
    let mut a = Env::new(Backend::Postgres);
    a.set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret");
    let node_a = a.start();
    let key = node_a.key().to_owned();
    let mut b = joining(&a);
    b.set("DRIFTSTACK_CLUSTER_TOKEN", "a-long-shared-cluster-secret");
    let node_b = b.start();
    let nodes = [node_a.base.as_str(), node_b.base.as_str()];

    let info = mcp::initialize(nodes[0], &key).await;
    assert_eq!(info["serverInfo"]["name"], "driftstack", "{info}");
    let (status, tools) = mcp::post(
        nodes[1],
        Some(&key),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() >= 19)
    );

    let sid = mcp::session(nodes[0], &key, json!({})).await;
    let opened = mcp::call(
        nodes[1],
        &key,
        "navigate",
        json!({"session_id": sid, "url": site.url("/counter")}),
    )
    .await;
    assert_ne!(opened["isError"], true, "{opened}");
    let mut turn = 0;
    for expected in ["Clicks: 1", "Clicks: 2", "Clicks: 3"] {
        let snap = mcp::text(
            &mcp::call(
                nodes[turn % 2],
                &key,
                "snapshot",
                json!({"session_id": sid}),
            )
            .await,
        );
        let button = snap
            .lines()
            .find(|l| l.contains("button \"Add one\""))
            .and_then(|l| l.trim().strip_prefix('['))
            .and_then(|l| l.split(']').next())
            .unwrap_or_else(|| panic!("no button in {snap}"))
            .to_owned();
        turn += 1;
        let clicked = mcp::call(
            nodes[turn % 2],
            &key,
            "click",
            json!({"session_id": sid, "ref": button}),
        )
        .await;
        assert_ne!(clicked["isError"], true, "{clicked}");
        let waited = mcp::call(
            nodes[turn % 2],
            &key,
            "wait_for",
            json!({"session_id": sid, "text": expected, "timeout_ms": 5000}),
        )
        .await;
        assert_ne!(waited["isError"], true, "{expected}: {waited}");
    }
    let released = mcp::call(
        nodes[1],
        &key,
        "session_release",
        json!({"session_id": sid}),
    )
    .await;
    assert_ne!(released["isError"], true, "{released}");
    let gone = mcp::call(nodes[0], &key, "snapshot", json!({"session_id": sid})).await;
    assert_eq!(mcp::error_code(&gone), "session_ended", "{gone}");
}
