//! Cluster nodes cannot silently disagree on their keys (on PostgreSQL, where clusters live):
//! a node with another master key, another cluster token or a generated key stops at start with
//! one line naming the variable; a master-key rotation across two nodes keeps webhooks, connect
//! tokens and profile states working, and the database's record moves to the new key once every
//! node has it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, hooks, pages};

const TOKEN: &str = "a-long-shared-cluster-secret";

fn first_node() -> Env {
    let mut env = Env::new(Backend::Postgres);
    env.set("DRIFTSTACK_CLUSTER_TOKEN", TOKEN)
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS", "1")
        .set("DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS", "3");
    env
}

/// Another node on `first`'s database with its own data dir and `first`'s other settings.
fn joining(first: &Env) -> Env {
    let mut env = Env::new(Backend::Sqlite);
    for var in [
        "DATABASE_URL",
        "DRIFTSTACK_MASTER_KEY",
        "DRIFTSTACK_CLUSTER_TOKEN",
        "DRIFTSTACK_RUNNER_HEARTBEAT_SECONDS",
        "DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS",
    ] {
        env.set(var, &first.vars[var]);
    }
    env
}

/// Runs `serve` expecting it to refuse to start; answers its last line of stderr.
fn refused(env: &Env) -> String {
    let out = env.command(&["serve"]).output().expect("run the server");
    assert!(!out.status.success(), "the node started");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

async fn recorded_master_check(env: &Env) -> String {
    let pool = sqlx::PgPool::connect(&env.vars["DATABASE_URL"])
        .await
        .expect("connect");
    let v: String =
        sqlx::query_scalar("SELECT value FROM cluster_checks WHERE name = 'master_key'")
            .fetch_one(&pool)
            .await
            .expect("a recorded check");
    pool.close().await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_other_keys_stops_at_start() {
    let a = first_node();
    let s = a.start();
    assert_eq!(s.get(s.key(), "/readyz").await.json()["secrets"], "ok");

    let mut other_key = joining(&a);
    other_key.set("DRIFTSTACK_MASTER_KEY", &support::test_master_key());
    let line = refused(&other_key);
    assert!(
        line.starts_with("error: DRIFTSTACK_MASTER_KEY:") && line.contains("id "),
        "{line}"
    );

    let mut other_token = joining(&a);
    other_token.set("DRIFTSTACK_CLUSTER_TOKEN", "another-long-cluster-secret");
    let line = refused(&other_token);
    assert!(
        line.starts_with("error: DRIFTSTACK_CLUSTER_TOKEN:"),
        "{line}"
    );

    let mut no_token = joining(&a);
    no_token.vars.remove("DRIFTSTACK_CLUSTER_TOKEN");
    let line = refused(&no_token);
    assert!(
        line.starts_with("error: DRIFTSTACK_CLUSTER_TOKEN:"),
        "{line}"
    );

    // On PostgreSQL a node never generates its own key, not even the first one.
    let mut generated = joining(&a);
    generated.vars.remove("DRIFTSTACK_MASTER_KEY");
    let line = refused(&generated);
    assert!(line.starts_with("error: DRIFTSTACK_MASTER_KEY:"), "{line}");
    let mut fresh = Env::new(Backend::Postgres);
    fresh.vars.remove("DRIFTSTACK_MASTER_KEY");
    let line = refused(&fresh);
    assert!(line.contains("DRIFTSTACK_MASTER_KEY"), "{line}");

    // The right settings join.
    let b = joining(&a);
    let s2 = b.start();
    assert_eq!(s2.get(s.key(), "/readyz").await.status, 200);
}

async fn test_event_arrives(s: &Server, key: &str, ep: &str, seen: &hooks::Seen, n: usize) {
    let r = s
        .post(key, &format!("/v1/webhooks/endpoints/{ep}/test"), json!({}))
        .await;
    assert!(r.status < 300, "{}", r.text());
    let arrived = eventually(Duration::from_secs(20), async || seen.all().len() >= n).await;
    assert!(arrived, "webhook {n} arrived; log:\n{}", s.log());
}

/// The HTTP status of a WebSocket upgrade to `url` (`ws://…`).
async fn upgrade(s: &Server, url: &str) -> u16 {
    s.send(
        s.http
            .get(url.replacen("ws://", "http://", 1))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    )
    .await
    .status
}

/// The `Cookie` header the session's browser sends to the test site (it echoes headers).
async fn cookie_of(s: &Server, key: &str, sid: &str, site: &pages::Site) -> String {
    s.post(
        key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/headers")}),
    )
    .await;
    let r = s
        .post(
            key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [{"type": "evaluate", "expression": "document.getElementById('h').textContent"}]}),
        )
        .await
        .json();
    let headers: Value =
        serde_json::from_str(r["results"][0]["value"].as_str().unwrap_or("{}")).expect("headers");
    headers["cookie"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_rotation_across_two_nodes_keeps_everything_working() {
    let site = pages::start().await;
    let (hook_url, seen) = hooks::receiver().await;
    let mut a = first_node();
    a.set("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.1/32");
    let old_key = a.vars["DRIFTSTACK_MASTER_KEY"].clone();
    let new_key = support::test_master_key();
    let s = a.start();
    let key = s.key().to_owned();
    let before = recorded_master_check(&a).await;

    // Under the old key: a webhook endpoint (its secret sealed) and a saved profile state.
    let ep = s
        .post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": hook_url, "event_types": ["webhook.test"]}),
        )
        .await
        .json()["id"]
        .as_str()
        .expect("endpoint")
        .to_owned();
    let pid = s
        .post(&key, "/v1/profiles", json!({"name": "rotating"}))
        .await
        .json()["id"]
        .as_str()
        .expect("profile")
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
        .expect("session")
        .to_owned();
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/set-cookie/before-rotation")}),
    )
    .await;
    assert_eq!(
        s.delete(&key, &format!("/v1/sessions/{sid}")).await.status,
        200
    );

    // Node B joins with the new key and the old one as previous, while A still has the old key
    // only: accepted, and nothing moves yet.
    let mut b = joining(&a);
    b.set("DRIFTSTACK_MASTER_KEY", &new_key)
        .set("DRIFTSTACK_MASTER_KEY_PREVIOUS", &old_key)
        .set("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.1/32");
    let s2 = b.start();
    test_event_arrives(&s2, &key, &ep, &seen, 1).await;
    // Connect tokens each node signs verify on the other.
    let on_b = s2.post(&key, "/v1/sessions", json!({})).await.json();
    let url_b = on_b["connect_url"].as_str().expect("connect_url");
    let via_a = url_b.replacen(
        &s2.base.replacen("http://", "ws://", 1),
        &s.base.replacen("http://", "ws://", 1),
        1,
    );
    assert_eq!(upgrade(&s, &via_a).await, 101, "A verifies B's token");
    let on_a = s.post(&key, "/v1/sessions", json!({})).await.json();
    let url_a = on_a["connect_url"].as_str().expect("connect_url");
    let via_b = url_a.replacen(
        &s.base.replacen("http://", "ws://", 1),
        &s2.base.replacen("http://", "ws://", 1),
        1,
    );
    assert_eq!(upgrade(&s2, &via_b).await, 101, "B verifies A's token");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        recorded_master_check(&a).await,
        before,
        "A still runs the old key only"
    );

    // A restarts with the new key too: every node has it, so the record moves.
    assert!(s.terminate().success());
    a.set("DRIFTSTACK_MASTER_KEY", &new_key)
        .set("DRIFTSTACK_MASTER_KEY_PREVIOUS", &old_key);
    let s = a.start();
    let moved = eventually(Duration::from_secs(15), async || {
        recorded_master_check(&a).await != before
    })
    .await;
    assert!(moved, "the record moved to the new key");
    test_event_arrives(&s, &key, &ep, &seen, 2).await;
    test_event_arrives(&s2, &key, &ep, &seen, 3).await;
    let sid = s
        .post(&key, "/v1/sessions", json!({"profile_id": pid}))
        .await
        .json()["id"]
        .as_str()
        .expect("session on the profile")
        .to_owned();
    let cookie = cookie_of(&s, &key, &sid, &site).await;
    assert!(
        cookie.contains("before-rotation"),
        "the profile saved under the old key reads: {cookie}"
    );

    // A node with only the old key is refused now.
    let mut stale = joining(&a);
    stale.set("DRIFTSTACK_MASTER_KEY", &old_key);
    stale.vars.remove("DRIFTSTACK_MASTER_KEY_PREVIOUS");
    let line = refused(&stale);
    assert!(line.starts_with("error: DRIFTSTACK_MASTER_KEY:"), "{line}");
    drop(s2);
}
