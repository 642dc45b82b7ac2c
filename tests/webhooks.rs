//! End-to-end tests of webhooks against the real binary and a loopback receiver: signatures
//! checked by an independent implementation (Python's hmac), session events through the outbox,
//! retries on a seconds-scale schedule, the dead-letter queue, single and bulk replay, secret
//! rotation, 410 disabling, the egress rules, and no loss across SIGKILL — on both databases.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, response::IntoResponse, routing::post};
use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually};

on_both_backends!(
    signed_events_arrive_and_verify,
    retries_dead_letters_and_replay,
    rotation_signs_with_both_secrets_and_410_disables,
    nothing_is_lost_when_the_server_is_killed_mid_dispatch,
    a_receiver_answering_without_end_cannot_grow_the_server,
);

#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    at: std::time::Instant,
}

/// A receiver that records every request and answers with the current status (200 by default).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
    delay_ms: Arc<Mutex<u64>>,
}

impl Receiver {
    async fn start(&self) -> String {
        *self.status.lock().expect("lock") = 200;
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url
    }
    fn set_status(&self, s: u16) {
        *self.status.lock().expect("lock") = s;
    }
    fn all(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
    fn of_type(&self, t: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["type"] == t))
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let delay = *r.delay_ms.lock().expect("lock");
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    r.got.lock().expect("lock").push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body,
        at: std::time::Instant::now(),
    });
    let status = *r.status.lock().expect("lock");
    (
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK),
        "ok",
    )
}

/// Verifies a Standard Webhooks signature with Python's hmac: an implementation of its own.
fn python_verifies(secret: &str, r: &Received) -> bool {
    let script = r#"
import base64, hashlib, hmac, sys
secret, msg_id, ts, sigs = sys.argv[1:5]
body = sys.stdin.buffer.read()
key = base64.b64decode(secret.split('_', 1)[1])
expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
ok = any(s.split(',', 1)[1] == expected for s in sigs.split(' ') if s.startswith('v1,'))
sys.exit(0 if ok else 1)
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret, &r.id, &r.timestamp, &r.signature])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(r.body.as_bytes())
        .expect("write");
    child.wait().expect("wait").success()
}

fn env(backend: Backend) -> Env {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.1/32")
        .set("DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE", "0s,1s,1s")
        .set("DRIFTSTACK_WEBHOOK_TIMEOUT_SECONDS", "2");
    env
}

/// An endpoint for `types` (a JSON list, or null for all), through the Rust SDK: (id, secret).
async fn endpoint(s: &Server, key: &str, url: &str, types: Value) -> (String, String) {
    let body = driftstack_sdk::CreateEndpointRequest {
        url: url.to_owned(),
        description: None,
        event_types: serde_json::from_value(types).expect("event types"),
    };
    let e = s
        .sdk(key)
        .create_endpoint(&body)
        .await
        .expect("an endpoint");
    (e.id, e.secret.expect("the secret, shown once"))
}

async fn signed_events_arrive_and_verify(backend: Backend) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = env(backend);
    let s = env.start();
    let key = s.key().to_owned();

    let catalog = s.get(&key, "/v1/webhooks/events").await.json();
    let types: Vec<&str> = catalog["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "session.created",
        "session.ended",
        "session.failed",
        "session.timed_out",
        "profile.created",
        "api_key.rotated",
        "usage.threshold_reached",
        "billing.subscription_changed",
        "team.member_added",
        "webhook.test",
    ] {
        assert!(types.contains(&t), "{t} missing from the catalog");
    }
    assert!(catalog["data"][0]["schema"].is_object());

    let (ep, secret) = endpoint(&s, &key, &url, json!([])).await;
    assert!(secret.starts_with("whsec_"));
    let got = s.get(&key, &format!("/v1/webhooks/endpoints/{ep}")).await;
    assert!(
        got.json().get("secret").is_none() && !got.text().contains(&secret),
        "the secret is shown once"
    );

    // Bad input and the egress rules.
    s.post(&key, "/v1/webhooks/endpoints", json!({"url": "ftp://x"}))
        .await
        .assert_problem(422, "validation_failed");
    s.post(
        &key,
        "/v1/webhooks/endpoints",
        json!({"url": url, "event_types": ["session.exploded"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let doc = s
        .post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": "http://169.254.169.254/latest"}),
        )
        .await
        .assert_problem(422, "validation_failed");
    assert!(
        doc["errors"]["url"]
            .as_str()
            .is_some_and(|m| m.contains("private"))
    );
    s.post(
        &key,
        "/v1/webhooks/endpoints",
        json!({"url": "http://127.0.0.2:9/hook"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Key changes arrive as events too.
    let k = s
        .post(&key, "/v1/api-keys", json!({"name": "hooked"}))
        .await
        .json();
    let kid = k["id"].as_str().expect("id").to_owned();
    s.post(&key, &format!("/v1/api-keys/{kid}/rotate"), json!({}))
        .await;
    s.delete(&key, &format!("/v1/api-keys/{kid}")).await;

    // A session's lifecycle arrives as signed events.
    let r = s.post(&key, "/v1/sessions", json!({})).await;
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    let t = s
        .post(
            &key,
            &format!("/v1/webhooks/endpoints/{ep}/test"),
            json!({}),
        )
        .await;
    assert_eq!(t.status, 202, "{}", t.text());
    let arrived = eventually(Duration::from_secs(10), async || {
        !receiver.of_type("session.created").is_empty()
            && !receiver.of_type("session.ended").is_empty()
            && !receiver.of_type("webhook.test").is_empty()
            && !receiver.of_type("api_key.created").is_empty()
            && !receiver.of_type("api_key.rotated").is_empty()
            && !receiver.of_type("api_key.revoked").is_empty()
    })
    .await;
    if !arrived {
        let log = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .text();
        panic!(
            "events missing; received {:?}\ndeliveries: {log}\nserver log:\n{}",
            receiver.all(),
            s.log()
        );
    }
    for r in receiver.all() {
        assert!(
            python_verifies(&secret, &r),
            "signature does not verify: {r:?}"
        );
        assert!(
            !python_verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &r),
            "a wrong secret must fail"
        );
        let body: Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(body["id"], r.id.as_str(), "webhook-id is the event id");
        assert!(
            body["created_at"].is_string()
                && body["account_id"].is_string()
                && body["data"].is_object()
        );
        let ts: i64 = r.timestamp.parse().expect("timestamp");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs() as i64;
        assert!((now - ts).abs() < 30);
    }
    let created: Value =
        serde_json::from_str(&receiver.of_type("session.created")[0].body).expect("json");
    assert_eq!(created["data"]["session_id"], sid.as_str());
    let ended: Value =
        serde_json::from_str(&receiver.of_type("session.ended")[0].body).expect("json");
    assert_eq!(ended["data"]["end_reason"], "released");

    // The delivery log shows each delivery and its attempts.
    let list = s
        .get(&key, "/v1/webhooks/deliveries?status=delivered")
        .await
        .json();
    let first = &list["data"][0];
    assert_eq!(first["status"], "delivered");
    let detail = s
        .get(
            &key,
            &format!(
                "/v1/webhooks/deliveries/{}",
                first["id"].as_str().expect("id")
            ),
        )
        .await
        .json();
    assert_eq!(detail["attempt_log"][0]["status_code"], 200);
    assert!(
        detail["attempt_log"][0]["response_headers"]
            .as_str()
            .is_some_and(|h| h.contains("content-length"))
    );
    assert_eq!(detail["attempt_log"][0]["response_excerpt"], "ok");
    assert!(detail["attempt_log"][0]["duration_ms"].is_number());

    // Endpoints filter by type; other accounts see nothing.
    env.cli(&["accounts", "create", "--email", "other@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "other@example.com"]);
    s.get(&other, &format!("/v1/webhooks/endpoints/{ep}"))
        .await
        .assert_problem(404, "not_found");
    s.get(
        &other,
        &format!(
            "/v1/webhooks/deliveries/{}",
            first["id"].as_str().expect("id")
        ),
    )
    .await
    .assert_problem(404, "not_found");
    assert_eq!(
        s.get(&other, "/v1/webhooks/deliveries").await.json()["data"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

async fn retries_dead_letters_and_replay(backend: Backend) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    receiver.set_status(500);
    let env = env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (ep, _) = endpoint(&s, &key, &url, json!(["webhook.test"])).await;
    let t = s
        .post(
            &key,
            &format!("/v1/webhooks/endpoints/{ep}/test"),
            json!({}),
        )
        .await
        .json();
    let dlv = t["delivery_id"].as_str().expect("delivery").to_owned();

    // Three attempts (0 s, 1 s, 1 s apart, ±10 %), then the dead-letter queue.
    let dead = eventually(Duration::from_secs(15), async || {
        s.get(&key, &format!("/v1/webhooks/deliveries/{dlv}"))
            .await
            .json()["status"]
            == "dead"
    })
    .await;
    assert!(dead);
    let got = receiver.all();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|r| r.id == got[0].id),
        "retries share webhook-id"
    );
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(850) && gap < Duration::from_secs(4),
            "gap {gap:?}"
        );
    }
    let detail = s
        .get(&key, &format!("/v1/webhooks/deliveries/{dlv}"))
        .await
        .json();
    assert_eq!(detail["attempts"], 3);
    assert_eq!(detail["attempt_log"].as_array().map(Vec::len), Some(3));
    assert_eq!(detail["attempt_log"][2]["status_code"], 500);
    let endpoint_now = s
        .get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
        .await
        .json();
    assert!(endpoint_now["failing_since"].is_string());

    // A single replay resends the same message (same webhook-id) once the receiver is fixed.
    receiver.set_status(200);
    let r = s
        .post(
            &key,
            &format!("/v1/webhooks/deliveries/{dlv}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202);
    let delivered = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/webhooks/deliveries/{dlv}"))
            .await
            .json()["status"]
            == "delivered"
    })
    .await;
    assert!(delivered);
    assert_eq!(receiver.all().len(), 4);
    assert_eq!(receiver.all()[3].id, got[0].id);
    assert!(
        s.get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
            .await
            .json()["failing_since"]
            .is_null()
    );

    // Bulk replay resends only what failed and never succeeded.
    receiver.set_status(500);
    let since = s
        .get(&key, &format!("/v1/webhooks/deliveries/{dlv}"))
        .await
        .json()["created_at"]
        .as_str()
        .expect("t")
        .to_owned();
    for _ in 0..2 {
        s.post(
            &key,
            &format!("/v1/webhooks/endpoints/{ep}/test"),
            json!({}),
        )
        .await;
    }
    let both_dead = eventually(Duration::from_secs(15), async || {
        s.get(&key, "/v1/webhooks/deliveries?status=dead")
            .await
            .json()["data"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    })
    .await;
    assert!(both_dead);
    receiver.set_status(200);
    let before = receiver.all().len();
    let r = s
        .post(
            &key,
            "/v1/webhooks/replay",
            json!({"since": since, "status": ["dead"], "endpoint_id": ep}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["replayed"], 2, "the delivered one is not resent");
    let done = eventually(Duration::from_secs(10), async || {
        receiver.all().len() == before + 2
    })
    .await;
    assert!(done);
    s.post(&key, "/v1/webhooks/replay", json!({"since": "yesterday"}))
        .await
        .assert_problem(422, "validation_failed");

    // Invariant: events in = delivered + dead + pending/failed. The receiver sees a message
    // before the dispatcher records the attempt, so wait for the records to settle.
    let settled = eventually(Duration::from_secs(10), async || {
        let all = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .json();
        all["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["status"] == "delivered"))
    })
    .await;
    assert!(settled, "every replayed delivery is recorded as delivered");
    let all = s
        .get(&key, "/v1/webhooks/deliveries?limit=100")
        .await
        .json();
    let n = all["data"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, 3);
    assert!(
        all["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|d| d["status"] == "delivered")
    );

    // An endpoint failing continuously for 5 days is disabled at its next failure.
    receiver.set_status(500);
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    let failing = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
            .await
            .json()["failing_since"]
            .is_string()
    })
    .await;
    assert!(failing);
    env.advance_clock(5 * 24 * 3600 + 60);
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    let disabled = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
            .await
            .json()["enabled"]
            == false
    })
    .await;
    assert!(disabled, "disabled after 5 days of failures");
    let e = s
        .get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
        .await
        .json();
    assert!(
        e["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("continuously"))
    );
}

async fn rotation_signs_with_both_secrets_and_410_disables(backend: Backend) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let env = env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (ep, old) = endpoint(&s, &key, &url, json!(["webhook.test"])).await;
    let r = s
        .post(
            &key,
            &format!("/v1/webhooks/endpoints/{ep}/rotate-secret"),
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert!(r.json()["previous_secret_expires_at"].is_string());
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    assert!(eventually(Duration::from_secs(10), async || receiver.all().len() == 1).await);
    let msg = &receiver.all()[0];
    assert_eq!(
        msg.signature.split(' ').count(),
        2,
        "both signatures during the rotation"
    );
    assert!(python_verifies(&new, msg) && python_verifies(&old, msg));

    // After the grace period only the new secret signs.
    env.advance_clock(3601);
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    assert!(eventually(Duration::from_secs(10), async || receiver.all().len() == 2).await);
    let msg = &receiver.all()[1];
    assert_eq!(msg.signature.split(' ').count(), 1);
    assert!(python_verifies(&new, msg) && !python_verifies(&old, msg));

    // 410 Gone disables the endpoint at once, and says so with an event.
    let (watcher, _) = endpoint(&s, &key, &url, json!(["webhook.endpoint_disabled"])).await;
    let _ = watcher;
    receiver.set_status(410);
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    let disabled = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
            .await
            .json()["enabled"]
            == false
    })
    .await;
    assert!(disabled);
    let e = s
        .get(&key, &format!("/v1/webhooks/endpoints/{ep}"))
        .await
        .json();
    assert!(
        e["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    // The owners are told by mail (the file outbox in the data dir).
    let outbox = env.dir.path().join("data/outbox");
    let mailed = eventually(Duration::from_secs(10), async || {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.flatten().any(|f| {
                    std::fs::read_to_string(f.path()).is_ok_and(|m| {
                        m.contains("Subject: Webhook endpoint disabled")
                            && m.contains("owner@localhost")
                    })
                })
            })
            .unwrap_or(false)
    })
    .await;
    assert!(mailed, "the owner gets a mail");
    receiver.set_status(200);
    assert!(
        eventually(Duration::from_secs(10), async || !receiver
            .of_type("webhook.endpoint_disabled")
            .is_empty())
        .await
    );
    // Disabled endpoints receive nothing until re-enabled.
    let before = receiver.of_type("webhook.test").len();
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.of_type("webhook.test").len(), before);
    let r = s
        .send(
            s.http
                .patch(s.url(&format!("/v1/webhooks/endpoints/{ep}")))
                .bearer_auth(&key)
                .json(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.json()["enabled"], true);
    assert!(
        eventually(Duration::from_secs(10), async || receiver
            .of_type("webhook.test")
            .len()
            == before + 1)
        .await
    );
}

async fn nothing_is_lost_when_the_server_is_killed_mid_dispatch(backend: Backend) {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    *receiver.delay_ms.lock().expect("lock") = 150;
    let mut env = env(backend);
    env.set("DRIFTSTACK_WEBHOOK_RETRY_SCHEDULE", "0s,1s,1s,1s,1s");
    let s = env.start();
    let key = s.key().to_owned();
    let (ep, _) = endpoint(&s, &key, &url, json!(["webhook.test"])).await;
    let mut events = Vec::new();
    for _ in 0..40 {
        let t = s
            .post(
                &key,
                &format!("/v1/webhooks/endpoints/{ep}/test"),
                json!({}),
            )
            .await
            .json();
        events.push(t["event_id"].as_str().expect("event").to_owned());
    }
    // Kill the server while deliveries are in flight, twice.
    assert!(eventually(Duration::from_secs(10), async || receiver.all().len() >= 3).await);
    s.kill();
    let s = env.start();
    assert!(eventually(Duration::from_secs(20), async || receiver.all().len() >= 10).await);
    s.kill();
    let s = env.start();
    let all_in = eventually(Duration::from_secs(60), async || {
        let got: std::collections::HashSet<String> =
            receiver.all().into_iter().map(|r| r.id).collect();
        events.iter().all(|e| got.contains(e))
    })
    .await;
    assert!(all_in, "every event arrives at least once");
    // Duplicates (re-sent after a kill) share their webhook-id; each event has exactly one delivery.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.all() {
        *per_id.entry(r.id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 40);
    let delivered = eventually(Duration::from_secs(30), async || {
        let page = s
            .get(&key, "/v1/webhooks/deliveries?status=delivered&limit=100")
            .await
            .json();
        page["data"].as_array().map(Vec::len) == Some(40)
    })
    .await;
    assert!(delivered, "events in = delivered + dead + pending");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A hostile receiver answers 200 with a body of 1 GiB and keeps writing: the dispatcher keeps
/// its 2 KiB excerpt, drops the connection, and the server does not grow.
async fn a_receiver_answering_without_end_cannot_grow_the_server(backend: Backend) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let written = Arc::new(AtomicU64::new(0));
    let counted = written.clone();
    let done = Arc::new(tokio::sync::Notify::new());
    let done_tx = done.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1073741824\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                // Bounded: at most the 1 GiB announced, or until the dispatcher hangs up.
                while counted.load(Ordering::Relaxed) < (1 << 30) {
                    match conn.write_all(&chunk).await {
                        Ok(()) => counted.fetch_add(chunk.len() as u64, Ordering::Relaxed),
                        Err(_) => break,
                    };
                }
                done_tx.notify_one();
            });
        }
    });
    let env = env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (ep, _) = endpoint(&s, &key, &url, json!(["webhook.test"])).await;
    let before = rss_kib(s.pid());
    s.post(
        &key,
        &format!("/v1/webhooks/endpoints/{ep}/test"),
        json!({}),
    )
    .await;
    let hung_up = tokio::time::timeout(Duration::from_secs(60), done.notified()).await;
    assert!(
        hung_up.is_ok(),
        "the dispatcher hung up on the endless answer"
    );
    let sent = written.load(Ordering::Relaxed);
    assert!(
        sent < 64 << 20,
        "the dispatcher read {sent} bytes of a body it keeps 2 KiB of"
    );
    let after = rss_kib(s.pid());
    assert!(
        after < before + 64 * 1024,
        "the server grew from {before} KiB to {after} KiB"
    );
    // The attempt is logged with its 2 KiB excerpt.
    let mut excerpt = String::new();
    let logged = eventually(Duration::from_secs(10), async || {
        let list = s.get(&key, "/v1/webhooks/deliveries?limit=5").await.json();
        let Some(id) = list["data"][0]["id"].as_str() else {
            return false;
        };
        let d = s
            .get(&key, &format!("/v1/webhooks/deliveries/{id}"))
            .await
            .json();
        excerpt = d["attempt_log"][0]["response_excerpt"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        !excerpt.is_empty()
    })
    .await;
    assert!(logged, "the attempt was logged");
    assert!(
        excerpt.len() <= 2048 && excerpt.starts_with("xxxx"),
        "{excerpt}"
    );
}
