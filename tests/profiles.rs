//! End-to-end tests of profiles with the real binary and real Chromium: state carried between
//! sessions (an HttpOnly cookie, a script cookie, localStorage on two origins), the fingerprint,
//! snapshot → change → restore, clone, the one-writer lock, persistence across a graceful
//! restart, no plaintext at rest, a corrupt blob, the size cap and bad input — on SQLite and
//! PostgreSQL.

mod support;

use std::{collections::BTreeSet, path::Path, time::Duration};

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, pages};

on_both_backends!(
    state_travels_between_sessions_with_snapshots_restore_and_clone,
    saves_survive_a_graceful_restart_and_nothing_is_plaintext_at_rest,
    a_corrupt_state_is_a_clear_error_and_a_snapshot_recovers_it,
    oversize_state_is_refused_and_the_previous_state_kept,
    bad_input_and_other_accounts,
    every_way_a_session_ends_frees_the_profile,
    a_rotated_master_key_still_reads_older_states,
);

async fn created(r: support::Reply) -> Value {
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// A session on `profile`, through the Rust SDK.
async fn session(s: &Server, key: &str, profile: &str, persist: bool) -> String {
    let body = driftstack_sdk::CreateSessionRequest {
        profile_id: Some(profile.to_owned()),
        persist: Some(persist),
        ..Default::default()
    };
    s.sdk(key)
        .create_session(Some(&body))
        .await
        .expect("a session on the profile")
        .id
}

async fn navigate(s: &Server, key: &str, sid: &str, url: &str) {
    let nav = driftstack_sdk::NavigateRequest {
        url: url.to_owned(),
        wait_until: None,
        timeout_ms: None,
    };
    s.sdk(key).navigate(sid, &nav).await.expect("navigate");
}

/// The value of `expression` in the session's page, through the Rust SDK.
async fn eval(s: &Server, key: &str, sid: &str, expression: &str) -> Value {
    let actions = driftstack_sdk::ActionsRequest {
        actions: vec![driftstack_sdk::ActionBody::Evaluate {
            expression: expression.to_owned(),
        }],
        timeout_ms: None,
    };
    let done = s
        .sdk(key)
        .run_actions(sid, &actions)
        .await
        .expect("evaluate");
    done.results
        .into_iter()
        .next()
        .and_then(|r| r.value)
        .unwrap_or(Value::Null)
}

async fn end(s: &Server, key: &str, sid: &str) {
    let r = s.delete(key, &format!("/v1/sessions/{sid}")).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text());
}

async fn profile(s: &Server, key: &str, pid: &str) -> Value {
    let r = s.get(key, &format!("/v1/profiles/{pid}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The cookie header the site received on its `/headers` page.
async fn cookie_header(s: &Server, key: &str, sid: &str, site: &pages::Site) -> String {
    navigate(s, key, sid, &site.url("/headers")).await;
    let text = eval(s, key, sid, "document.getElementById('h').textContent").await;
    let headers: Value = serde_json::from_str(text.as_str().unwrap_or("{}")).expect("headers");
    headers["cookie"].as_str().unwrap_or("").to_owned()
}

/// Every file under `dir` (recursively).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// An environment whose blob store holds profile blobs only: sessions' last frames share the
/// store (they are tested in tests/inspector.rs), so they are off where blobs are counted.
fn blob_counting_env(backend: Backend) -> Env {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_LAST_FRAME", "off");
    env
}

fn blob_files(env: &Env) -> BTreeSet<std::path::PathBuf> {
    files(&env.dir.path().join("data/profiles/blobs"))
        .into_iter()
        .collect()
}

async fn state_travels_between_sessions_with_snapshots_restore_and_clone(backend: Backend) {
    let site = pages::start().await;
    let env = blob_counting_env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    // Every event goes to an endpoint (which answers 404: the deliveries are what we read).
    created(
        s.post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": site.url("/hook")}),
        )
        .await,
    )
    .await;

    let p = created(
        s.post(
            &key,
            "/v1/profiles",
            json!({"name": "shopper", "fingerprint": {
                "timezone": "Asia/Tokyo", "locale": "de-DE",
                "viewport": {"width": 900, "height": 700},
                "geolocation": {"latitude": 48.85, "longitude": 2.35},
                "extra_headers": {"x-profile": "yes"}
            }}),
        )
        .await,
    )
    .await;
    let pid = id_of(&p);
    assert!(pid.starts_with("prof_"));
    assert_eq!(p["state"], Value::Null);
    assert_eq!(p["fingerprint"]["extra_header_names"], json!(["x-profile"]));

    // Session 1 writes an HttpOnly cookie, a script cookie and localStorage on two origins.
    let s1 = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &s1, &site.url("/set-cookie/http-only-value")).await;
    eval(
        &s,
        &key,
        &s1,
        "document.cookie = 'js=script-value; max-age=86400; path=/'; \
         localStorage.setItem('k', 'origin-a'); localStorage.setItem('gone', 'x'); \
         localStorage.removeItem('gone'); 1",
    )
    .await;
    let other_origin = site.url("/two").replace("127.0.0.1", "localhost");
    navigate(&s, &key, &s1, &other_origin).await;
    eval(&s, &key, &s1, "localStorage.setItem('b', 'origin-b'); 1").await;

    // One writer: a second session on the profile, a restore and a delete are refused.
    let busy = s
        .post(&key, "/v1/sessions", json!({"profile_id": pid}))
        .await;
    let problem = busy.assert_problem(409, "profile_in_use");
    assert_eq!(problem["session_id"], s1.as_str());
    assert_eq!(
        profile(&s, &key, &pid).await["live_session_id"],
        s1.as_str()
    );
    s.delete(&key, &format!("/v1/profiles/{pid}"))
        .await
        .assert_problem(409, "profile_in_use");
    end(&s, &key, &s1).await;

    let saved = profile(&s, &key, &pid).await;
    assert_eq!(saved["live_session_id"], Value::Null);
    assert_eq!(saved["state"]["cookies"], 2, "{saved}");
    assert_eq!(
        saved["state"]["cookies_by_domain"]["127.0.0.1"], 2,
        "{saved}"
    );
    assert_eq!(saved["state"]["origins"], 2, "{saved}");
    assert_eq!(saved["state"]["local_storage_items"], 2, "{saved}");
    assert!(saved["state"]["bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(saved["state_saved_at"].is_string());

    // Session 2 starts with both cookies, both origins' storage and the fingerprint.
    let s2 = session(&s, &key, &pid, true).await;
    let cookies = cookie_header(&s, &key, &s2, &site).await;
    assert!(cookies.contains("sid=http-only-value"), "{cookies}");
    assert!(cookies.contains("js=script-value"), "{cookies}");
    navigate(&s, &key, &s2, &site.url("/")).await;
    assert_eq!(
        eval(&s, &key, &s2, "localStorage.getItem('k')").await,
        "origin-a"
    );
    assert_eq!(
        eval(&s, &key, &s2, "localStorage.getItem('gone')").await,
        Value::Null
    );
    assert_eq!(
        eval(
            &s,
            &key,
            &s2,
            "Intl.DateTimeFormat().resolvedOptions().timeZone"
        )
        .await,
        "Asia/Tokyo"
    );
    assert_eq!(eval(&s, &key, &s2, "navigator.language").await, "de-DE");
    assert_eq!(eval(&s, &key, &s2, "innerWidth").await, 900);
    let position = eval(
        &s,
        &key,
        &s2,
        "new Promise(r => navigator.geolocation.getCurrentPosition(\
         p => r(p.coords.latitude), e => r('error ' + e.message)))",
    )
    .await;
    assert_eq!(position, 48.85);
    navigate(&s, &key, &s2, &other_origin).await;
    assert_eq!(
        eval(&s, &key, &s2, "localStorage.getItem('b')").await,
        "origin-b"
    );

    // A snapshot of the live session, then a change the session saves when it ends.
    let snap = created(
        s.post(
            &key,
            &format!("/v1/profiles/{pid}/snapshots"),
            json!({"name": "before change"}),
        )
        .await,
    )
    .await;
    let snap_id = id_of(&snap);
    assert_eq!(snap["source"], "session");
    assert_eq!(snap["session_id"], s2.as_str());
    assert_eq!(snap["state"]["cookies"], 2, "{snap}");
    assert_eq!(snap["state"]["origins"], 2, "{snap}");
    eval(&s, &key, &s2, "localStorage.setItem('b', 'changed'); 1").await;
    s.post(
        &key,
        &format!("/v1/profiles/{pid}/snapshots/{snap_id}/restore"),
        json!({}),
    )
    .await
    .assert_problem(409, "profile_in_use");
    end(&s, &key, &s2).await;

    let s3 = session(&s, &key, &pid, false).await;
    navigate(&s, &key, &s3, &other_origin).await;
    assert_eq!(
        eval(&s, &key, &s3, "localStorage.getItem('b')").await,
        "changed"
    );
    end(&s, &key, &s3).await;

    // Restore brings the old state back.
    let restored = s
        .post(
            &key,
            &format!("/v1/profiles/{pid}/snapshots/{snap_id}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.text());
    let s4 = session(&s, &key, &pid, false).await;
    navigate(&s, &key, &s4, &other_origin).await;
    assert_eq!(
        eval(&s, &key, &s4, "localStorage.getItem('b')").await,
        "origin-b"
    );
    end(&s, &key, &s4).await;

    // A snapshot of the saved state (no live session), listed newest first.
    let snap2 = created(
        s.post(&key, &format!("/v1/profiles/{pid}/snapshots"), json!({}))
            .await,
    )
    .await;
    assert_eq!(snap2["source"], "profile");
    let list = s
        .get(&key, &format!("/v1/profiles/{pid}/snapshots?limit=1"))
        .await
        .json();
    assert_eq!(list["data"][0]["id"], snap2["id"]);
    assert_eq!(list["has_more"], true);

    // A clone carries the state and the fingerprint.
    let clone = created(
        s.post(&key, &format!("/v1/profiles/{pid}/clone"), json!({}))
            .await,
    )
    .await;
    let clone_id = id_of(&clone);
    assert_eq!(clone["name"], "shopper (copy)");
    assert_eq!(clone["fingerprint"]["timezone"], "Asia/Tokyo");
    assert_eq!(clone["state"]["cookies"], 2);
    let s5 = session(&s, &key, &clone_id, false).await;
    let cookies = cookie_header(&s, &key, &s5, &site).await;
    assert!(cookies.contains("sid=http-only-value"), "{cookies}");
    end(&s, &key, &s5).await;

    // Deleting a snapshot; restoring it afterwards is a 404.
    let r = s
        .delete(&key, &format!("/v1/profiles/{pid}/snapshots/{snap_id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    s.post(
        &key,
        &format!("/v1/profiles/{pid}/snapshots/{snap_id}/restore"),
        json!({}),
    )
    .await
    .assert_problem(404, "not_found");

    // Deleting the profiles removes every blob nothing refers to.
    assert!(!blob_files(&env).is_empty());
    for id in [&pid, &clone_id] {
        let r = s.delete(&key, &format!("/v1/profiles/{id}")).await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    assert!(blob_files(&env).is_empty(), "{:?}", blob_files(&env));
    s.get(&key, &format!("/v1/profiles/{pid}"))
        .await
        .assert_problem(404, "not_found");

    // Every profile event went through the outbox.
    let wanted = [
        "profile.created",
        "profile.deleted",
        "profile.snapshot.created",
        "profile.snapshot.restored",
    ];
    let seen = eventually(Duration::from_secs(10), async || {
        let list = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .json();
        let types: BTreeSet<String> = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["event_type"].as_str().map(str::to_owned))
            .collect();
        wanted.iter().all(|w| types.contains(*w))
    })
    .await;
    assert!(seen, "profile events missing");
}

async fn saves_survive_a_graceful_restart_and_nothing_is_plaintext_at_rest(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let pid = id_of(
        &created(
            s.post(&key, "/v1/profiles", json!({"name": "restart"}))
                .await,
        )
        .await,
    );
    let sid = session(&s, &key, &pid, true).await;
    navigate(
        &s,
        &key,
        &sid,
        &site.url("/set-cookie/plaintextcookiemarker"),
    )
    .await;
    eval(
        &s,
        &key,
        &sid,
        "localStorage.setItem('note', 'plaintextstoragemarker'); 1",
    )
    .await;
    // SIGTERM while the session is live: the shutdown saves it.
    assert!(s.terminate().success());

    // Nothing of the state is readable at rest: not in blobs, the database file or logs.
    for file in files(&env.dir.path().join("data")) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for marker in [&b"plaintextcookiemarker"[..], b"plaintextstoragemarker"] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{} holds {}",
                file.display(),
                String::from_utf8_lossy(marker)
            );
        }
    }
    assert!(!blob_files(&env).is_empty());

    let s = env.start();
    let p = profile(&s, &key, &pid).await;
    assert_eq!(p["state"]["cookies"], 1, "{p}");
    assert_eq!(p["live_session_id"], Value::Null);
    let sid = session(&s, &key, &pid, false).await;
    let cookies = cookie_header(&s, &key, &sid, &site).await;
    assert!(cookies.contains("sid=plaintextcookiemarker"), "{cookies}");
    navigate(&s, &key, &sid, &site.url("/")).await;
    assert_eq!(
        eval(&s, &key, &sid, "localStorage.getItem('note')").await,
        "plaintextstoragemarker"
    );
    end(&s, &key, &sid).await;
    let log = s.log();
    assert!(!log.contains("plaintextcookiemarker"));
}

async fn a_corrupt_state_is_a_clear_error_and_a_snapshot_recovers_it(backend: Backend) {
    let site = pages::start().await;
    let env = blob_counting_env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let pid = id_of(
        &created(
            s.post(&key, "/v1/profiles", json!({"name": "fragile"}))
                .await,
        )
        .await,
    );
    // State A, kept in a snapshot.
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/set-cookie/state-a")).await;
    end(&s, &key, &sid).await;
    let snap = id_of(
        &created(
            s.post(&key, &format!("/v1/profiles/{pid}/snapshots"), json!({}))
                .await,
        )
        .await,
    );
    // State B, then its blob is damaged on disk.
    let before = blob_files(&env);
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/set-cookie/state-b")).await;
    end(&s, &key, &sid).await;
    let after = blob_files(&env);
    let fresh: Vec<_> = after.difference(&before).collect();
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    let mut bytes = std::fs::read(fresh[0]).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(fresh[0], bytes).expect("damage blob");

    // A session on it fails clearly — and does not leave the profile locked.
    for _ in 0..2 {
        let r = s
            .post(&key, "/v1/sessions", json!({"profile_id": pid}))
            .await;
        let problem = r.assert_problem(500, "profile_state_unreadable");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("snapshot"))
        );
    }
    assert!(s.log().contains("profile state"), "the failure is logged");

    // Restoring the snapshot makes the profile usable again, with state A.
    let r = s
        .post(
            &key,
            &format!("/v1/profiles/{pid}/snapshots/{snap}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sid = session(&s, &key, &pid, false).await;
    let cookies = cookie_header(&s, &key, &sid, &site).await;
    assert!(cookies.contains("sid=state-a"), "{cookies}");
    end(&s, &key, &sid).await;
}

async fn oversize_state_is_refused_and_the_previous_state_kept(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    let tiers = env.dir.path().join("tiers.json");
    std::fs::write(
        &tiers,
        json!({"self_hosted": {
            "display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": null, "max_session_seconds": 3600,
            "idle_timeout_seconds": 600, "monthly_sessions": null, "monthly_session_minutes": null,
            "rate_limit_per_second": 1000, "rate_limit_burst": 2000, "max_profiles": 2,
            "max_profile_state_bytes": 2048
        }})
        .to_string(),
    )
    .expect("tiers");
    env.set("DRIFTSTACK_TIERS_FILE", &tiers.display().to_string());
    let s = env.start();
    let key = s.key().to_owned();
    let pid = id_of(&created(s.post(&key, "/v1/profiles", json!({"name": "big"})).await).await);
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/set-cookie/small")).await;
    end(&s, &key, &sid).await;
    assert_eq!(profile(&s, &key, &pid).await["state"]["cookies"], 1);

    // 20 KB of random text does not compress under 2 KB.
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/")).await;
    eval(
        &s,
        &key,
        &sid,
        "let t = ''; for (let i = 0; i < 20000; i++) t += String.fromCharCode(33 + Math.floor(Math.random() * 90)); \
         localStorage.setItem('big', t); 1",
    )
    .await;
    let r = s
        .post(&key, &format!("/v1/profiles/{pid}/snapshots"), json!({}))
        .await;
    let problem = r.assert_problem(413, "profile_state_too_large");
    assert_eq!(problem["limit_bytes"], 2048);
    end(&s, &key, &sid).await;
    let p = profile(&s, &key, &pid).await;
    assert!(
        p["last_save_error"]
            .as_str()
            .is_some_and(|e| e.contains("2048")),
        "{p}"
    );
    assert_eq!(p["state"]["cookies"], 1, "the previous state stays: {p}");
    assert_eq!(p["state"]["origins"], 0, "{p}");

    // The plan's profile limit.
    created(
        s.post(&key, "/v1/profiles", json!({"name": "second"}))
            .await,
    )
    .await;
    s.post(&key, "/v1/profiles", json!({"name": "third"}))
        .await
        .assert_problem(403, "profile_limit_reached");
    s.post(&key, &format!("/v1/profiles/{pid}/clone"), json!({}))
        .await
        .assert_problem(403, "profile_limit_reached");
}

async fn bad_input_and_other_accounts(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    env.cli(&["accounts", "create", "--email", "other@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "other@example.com"]);
    let pid = id_of(&created(s.post(&key, "/v1/profiles", json!({"name": "mine"})).await).await);

    // Field-level 422s.
    let r = s
        .post(
            &key,
            "/v1/profiles",
            json!({"name": "", "fingerprint": {
                "timezone": "../etc", "viewport": {"width": 5, "height": 5000},
                "geolocation": {"latitude": 91, "longitude": 0},
                "extra_headers": {"bad header": "x"}
            }}),
        )
        .await;
    let problem = r.assert_problem(422, "validation_failed");
    for field in [
        "name",
        "fingerprint.timezone",
        "fingerprint.viewport.width",
        "fingerprint.viewport.height",
        "fingerprint.geolocation.latitude",
        "fingerprint.extra_headers.bad header",
    ] {
        assert!(problem["errors"][field].is_string(), "{field}: {problem}");
    }
    // A time zone that only looks like one is refused when the profile is made, not at every
    // session start on it (dashboard bug 5).
    let r = s
        .post(
            &key,
            "/v1/profiles",
            json!({"name": "mars", "fingerprint": {"timezone": "Mars/Olympus"}}),
        )
        .await;
    assert!(
        r.assert_problem(422, "validation_failed")["errors"]["fingerprint.timezone"].is_string()
    );
    s.post(&key, "/v1/profiles", json!({"name": "x", "cookies": []}))
        .await
        .assert_problem(422, "validation_failed");
    let r = s.post(&key, "/v1/sessions", json!({"persist": true})).await;
    assert!(r.assert_problem(422, "validation_failed")["errors"]["persist"].is_string());
    let r = s
        .post(&key, "/v1/sessions", json!({"profile_id": "nope"}))
        .await;
    assert!(r.assert_problem(422, "validation_failed")["errors"]["profile_id"].is_string());
    s.get(&key, "/v1/profiles/not-an-id")
        .await
        .assert_problem(422, "validation_failed");

    // Another account's profile does not exist for you.
    s.get(&other, &format!("/v1/profiles/{pid}"))
        .await
        .assert_problem(404, "not_found");
    s.post(&other, "/v1/sessions", json!({"profile_id": pid}))
        .await
        .assert_problem(404, "not_found");
    s.post(&other, &format!("/v1/profiles/{pid}/snapshots"), json!({}))
        .await
        .assert_problem(404, "not_found");
    s.post(&other, &format!("/v1/profiles/{pid}/clone"), json!({}))
        .await
        .assert_problem(404, "not_found");
    s.delete(&other, &format!("/v1/profiles/{pid}"))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        s.get(&other, "/v1/profiles").await.json()["data"],
        json!([])
    );

    // PATCH renames and replaces the fingerprint.
    let r = s
        .send(
            s.http
                .patch(s.url(&format!("/v1/profiles/{pid}")))
                .bearer_auth(&key)
                .json(&json!({"name": "renamed", "fingerprint": {"locale": "fr-FR"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "renamed");
    assert_eq!(r.json()["fingerprint"]["locale"], "fr-FR");

    // A key without profiles scopes is refused.
    let narrow = env.cli(&[
        "keys",
        "create",
        "--email",
        "other@example.com",
        "--scopes",
        "sessions:read",
    ]);
    s.get(&narrow, "/v1/profiles")
        .await
        .assert_problem(403, "missing_permission");
}

async fn every_way_a_session_ends_frees_the_profile(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    // No warm browsers: the only browser is the session's own.
    env.set("DRIFTSTACK_POOL_SIZE", "0");
    let s = env.start();
    let key = s.key().to_owned();
    let pid = id_of(&created(s.post(&key, "/v1/profiles", json!({"name": "ends"})).await).await);

    // An idle timeout saves (persist) and frees the profile.
    let body = json!({"profile_id": pid, "persist": true, "idle_timeout_seconds": 1});
    let sid = id_of(&created(s.post(&key, "/v1/sessions", body).await).await);
    navigate(&s, &key, &sid, &site.url("/set-cookie/idle-saved")).await;
    let saved = eventually(Duration::from_secs(15), async || {
        let p = profile(&s, &key, &pid).await;
        p["state"]["cookies"] == 1 && p["live_session_id"].is_null()
    })
    .await;
    assert!(saved, "{}", profile(&s, &key, &pid).await);
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(got["end_reason"], "idle_timeout");

    // A crashed browser fails the session, keeps the saved state and frees the profile.
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/set-cookie/never-saved")).await;
    let browsers = support::main_browser_processes(s.pid());
    assert_eq!(browsers.len(), 1, "{browsers:?}");
    support::signal(browsers[0], "KILL");
    let failed = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["status"] == "failed"
    })
    .await;
    assert!(failed);
    let p = profile(&s, &key, &pid).await;
    assert_eq!(p["live_session_id"], Value::Null, "{p}");
    let sid = session(&s, &key, &pid, false).await;
    let cookies = cookie_header(&s, &key, &sid, &site).await;
    assert!(cookies.contains("sid=idle-saved"), "{cookies}");

    // A server killed outright: its sessions are over at the next start, so is the lock.
    s.kill();
    let s = env.start();
    let sid = session(&s, &key, &pid, false).await;
    end(&s, &key, &sid).await;
}

async fn a_rotated_master_key_still_reads_older_states(backend: Backend) {
    let site = pages::start().await;
    let old_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let new_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_MASTER_KEY", old_key);
    let s = env.start();
    let key = s.key().to_owned();
    let pid = id_of(
        &created(
            s.post(&key, "/v1/profiles", json!({"name": "rotate"}))
                .await,
        )
        .await,
    );
    let sid = session(&s, &key, &pid, true).await;
    navigate(&s, &key, &sid, &site.url("/set-cookie/under-old-key")).await;
    end(&s, &key, &sid).await;
    assert!(s.terminate().success());

    // The new key alone is refused at start (the database records the old one): one line
    // naming the variable, nothing changed.
    env.set("DRIFTSTACK_MASTER_KEY", new_key);
    let out = env.command(&["serve"]).output().expect("run the server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.contains("DRIFTSTACK_MASTER_KEY")),
        "{stderr}"
    );

    // With the old key listed as previous, it reads; the next save uses the new key.
    env.set("DRIFTSTACK_MASTER_KEY_PREVIOUS", old_key);
    let s = env.start();
    let sid = session(&s, &key, &pid, true).await;
    let cookies = cookie_header(&s, &key, &sid, &site).await;
    assert!(cookies.contains("sid=under-old-key"), "{cookies}");
    end(&s, &key, &sid).await;
    assert!(s.terminate().success());
    env.vars.remove("DRIFTSTACK_MASTER_KEY_PREVIOUS");
    let s = env.start();
    let sid = session(&s, &key, &pid, false).await;
    let cookies = cookie_header(&s, &key, &sid, &site).await;
    assert!(cookies.contains("sid=under-old-key"), "{cookies}");
    end(&s, &key, &sid).await;
}
