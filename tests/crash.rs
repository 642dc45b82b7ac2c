//! The crash gate: the server is SIGKILLed in the middle of a webhook burst, of profile saves and
//! of usage accounting, then restarted on the same data, and the invariants hold: every event is
//! delivered, dead-lettered or pending (duplicates share their `webhook-id`); a profile holds its
//! last completed save, never a torn one; the dead process's sessions are failed with events;
//! usage loses at most the flush interval of API-call counts. SQLite and PostgreSQL.

mod support;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, http::HeaderMap, routing::post};
use serde_json::json;
use support::{Backend, Env, eventually, pages};

on_both_backends!(sigkill_mid_burst_loses_nothing,);

/// A webhook receiver answering 200 and keeping every `webhook-id` it saw (with repeats).
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let s = s.clone();
            async move {
                if let (Some(id), Ok(mut v)) = (
                    headers.get("webhook-id").and_then(|v| v.to_str().ok()),
                    s.lock(),
                ) {
                    v.push(id.to_owned());
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

async fn sigkill_mid_burst_loses_nothing(backend: Backend) {
    let site = pages::start().await;
    let (hook, seen) = receiver().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1");
    let s = env.start();
    let key = s.key().to_owned();
    let r = s
        .post(&key, "/v1/webhooks/endpoints", json!({"url": hook}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A profile with a completed save.
    let pid = s
        .post(&key, "/v1/profiles", json!({"name": "crash"}))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sid = s
        .post(
            &key,
            "/v1/sessions",
            json!({"profile_id": pid, "persist": true}),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/set-cookie/first")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.delete(&key, &format!("/v1/sessions/{sid}")).await.status,
        200
    );
    let saved = s.get(&key, &format!("/v1/profiles/{pid}")).await.json();
    assert_eq!(saved["state"]["cookies"], 1, "{saved}");

    // Counted API calls, flushed (the interval is 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = s.get(&key, "/v1/usage").await.json()["meters"]["api_calls"]["used"]
        .as_f64()
        .expect("used");

    // A second session on the profile changes its state and is live when the server dies;
    // meanwhile a burst of events is being delivered and its saves race the kill.
    let sid2 = s
        .post(
            &key,
            "/v1/sessions",
            json!({"profile_id": pid, "persist": true}),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.post(
        &key,
        &format!("/v1/sessions/{sid2}/navigate"),
        json!({"url": site.url("/set-cookie/second")}),
    )
    .await;
    let mut burst = 0;
    for i in 0..30 {
        let r = s
            .post(&key, "/v1/profiles", json!({"name": format!("burst {i}")}))
            .await;
        assert_eq!(r.status, 201);
        burst += 1;
    }
    let calls_after_flush = 3 + burst;
    let server_pid = s.pid();
    s.kill();
    // The dead server's browsers are gone with it or reaped at the next start.
    let s = env.start();

    // Usage lost at most the API calls counted since the last flush before the kill (at most one
    // 1 s interval's worth): the first request after the restart sees the flushed counts plus
    // itself.
    let after = s.get(&key, "/v1/usage").await.json()["meters"]["api_calls"]["used"]
        .as_f64()
        .expect("used");
    // `before` counted its own request, which may not have been flushed either.
    assert!(after >= before, "{before} → {after}");
    assert!(
        after <= before + calls_after_flush as f64 + 1.0,
        "{before} → {after}"
    );
    eprintln!(
        "usage: {} of the {} API calls made since the last sure flush were lost",
        before + calls_after_flush as f64 + 1.0 - after,
        calls_after_flush + 1
    );

    // Sessions of the dead process are failed, with events.
    let got = s.get(&key, &format!("/v1/sessions/{sid2}")).await.json();
    assert_eq!(got["status"], "failed", "{got}");
    assert_eq!(got["end_reason"], "runner_lost");
    // The profile holds a completed save (the first; the live session's state was never saved),
    // readable by a new session, and is free.
    let p = s.get(&key, &format!("/v1/profiles/{pid}")).await.json();
    assert_eq!(p["state"]["cookies"], 1, "{p}");
    assert_eq!(p["live_session_id"], serde_json::Value::Null);
    let sid3 = s
        .post(&key, "/v1/sessions", json!({"profile_id": pid}))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid3}/navigate"),
            json!({"url": site.url("/headers")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.delete(&key, &format!("/v1/sessions/{sid3}")).await;

    // Every event: delivered, dead-lettered or pending — and delivered ones arrive. The checks
    // below read the same listing in which everything was delivered (events may still be added
    // after it, e.g. the last session's end).
    let mut d = serde_json::Value::Null;
    let settled = eventually(Duration::from_secs(60), async || {
        d = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .json();
        d["data"]
            .as_array()
            .is_some_and(|all| all.iter().all(|d| d["status"] == "delivered"))
    })
    .await;
    assert!(settled, "every delivery ends delivered: {d}");
    let deliveries: Vec<String> = d["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["event_id"].as_str().map(str::to_owned))
        .collect();
    let profile_created = d["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["event_type"] == "profile.created")
        .count();
    assert_eq!(profile_created, 1 + burst, "no profile.created event lost");
    let received: HashSet<String> = seen
        .lock()
        .map(|v| v.iter().cloned().collect())
        .unwrap_or_default();
    for id in &deliveries {
        assert!(
            received.contains(id),
            "{id} was recorded delivered but never arrived"
        );
    }
    // Repeats (a delivery in flight at the kill) share their webhook-id: every id that arrived
    // is one of the recorded events, read after the receiver's copy was taken.
    let now: HashSet<String> = s
        .get(&key, "/v1/webhooks/deliveries?limit=100")
        .await
        .json()["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["event_id"].as_str().map(str::to_owned))
        .collect();
    for id in &received {
        assert!(now.contains(id), "{id} arrived but is no recorded event");
    }

    assert!(support::browser_processes(server_pid).is_empty());
}
