//! End-to-end tests of sessions against the real binary and real Chromium: every route and
//! action, settings, blocking, bad input, the concurrency cap, timeouts, a killed browser and
//! cleanup at shutdown — on SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, pages};

on_both_backends!(
    navigate_reports_status_title_and_times_out,
    actions_run_in_order_and_the_first_failure_stops_the_list,
    waits_captures_usage_and_release,
    settings_and_blocking_are_applied,
    bad_input_and_other_accounts,
    concurrency_cap_admits_exactly_the_cap,
    a_full_node_queues_creates_then_answers_503,
    idle_and_max_duration_timeouts,
    a_killed_browser_fails_its_session_and_the_pool_heals,
    a_session_says_who_started_it_from_where_and_when_idleness_ends_it,
    a_session_that_cannot_start_says_why,
    shutdown_leaves_no_browser_or_temp_dir_and_restart_fails_orphans,
);

/// Creates a session through the Rust SDK (the body as the API takes it) and answers it as JSON.
async fn create(s: &Server, key: &str, body: Value) -> Value {
    let body: driftstack_sdk::CreateSessionRequest =
        serde_json::from_value(body).expect("a session body");
    let created = s
        .sdk(key)
        .create_session(Some(&body))
        .await
        .expect("create a session");
    serde_json::to_value(created).expect("json")
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
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

/// A new session's fields, and navigation: each `wait_until`, redirects, status codes, and a
/// navigation that outlasts its timeout.
async fn navigate_reports_status_title_and_times_out(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();

    let created = create(&s, &key, json!({})).await;
    let sid = id_of(&created);
    assert_eq!(created["status"], "active");
    assert!(sid.starts_with("ses_"));
    assert!(
        created["runner_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("run_"))
    );
    let connect = created["connect_url"].as_str().expect("connect_url");
    assert!(
        connect.starts_with("ws://") && connect.contains(&format!("/v1/sessions/{sid}/cdp?token="))
    );
    assert!(created["expires_at"].is_string() && created["create_ms"].is_number());

    // Navigate, with each wait_until.
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let nav = r.json();
    assert_eq!(nav["status"], 200);
    assert_eq!(nav["title"], "Index");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/redirect"), "wait_until": "domcontentloaded"}),
        )
        .await;
    assert_eq!(r.json()["url"], site.url("/two"), "redirects are followed");
    assert_eq!(r.json()["title"], "Two");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/busy"), "wait_until": "networkidle"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(site.hits.count("/slow/700"), 1);
    assert!(
        r.json()["elapsed_ms"].as_u64().unwrap_or(0) >= 700,
        "networkidle waits for the late fetch to finish: {}",
        r.text()
    );
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/status/404")}),
        )
        .await;
    assert_eq!(r.json()["status"], 404);

    // A navigation that takes longer than its timeout.
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/slow/3000"), "timeout_ms": 500}),
        )
        .await;
    r.assert_problem(504, "timeout");
    assert!(!s.log().contains("panicked"));
}

/// Every action type in one list, and a list whose first failure stops it and says why.
async fn actions_run_in_order_and_the_first_failure_stops_the_list(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = id_of(&create(&s, &key, json!({})).await);

    // Every action type.
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [
                {"type": "type", "selector": "#name", "text": "Ada"},
                {"type": "press", "key": "Enter"},
                {"type": "select", "selector": "#color", "value": "blue"},
                {"type": "hover", "selector": "#hovered"},
                {"type": "scroll", "y": 500},
                {"type": "scroll", "selector": "#title"},
                {"type": "evaluate", "expression": "({name: document.querySelector('#name').value, color: document.querySelector('#color').value, title: document.title, hovered: document.querySelector('#hovered').textContent})"},
                {"type": "evaluate", "expression": "new Promise(r => setTimeout(() => r(6 * 7), 10))"},
                {"type": "click", "selector": "#hide"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().cloned().expect("results");
    assert_eq!(results.len(), 9);
    assert_eq!(
        results[6]["value"],
        json!({"name": "Ada", "color": "blue", "title": "entered:Ada", "hovered": "yes"})
    );
    assert_eq!(results[7]["value"], 42);
    assert_eq!(results[4]["type"], "scroll");

    // The first failure stops the list and says which action failed and why.
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"timeout_ms": 300, "actions": [
                {"type": "evaluate", "expression": "window.ran = 1"},
                {"type": "click", "selector": "#does-not-exist"},
                {"type": "evaluate", "expression": "window.ran = 2"}
            ]}),
        )
        .await;
    let doc = r.assert_problem(422, "action_failed");
    assert_eq!(doc["failed_action"]["index"], 1);
    assert_eq!(doc["failed_action"]["type"], "click");
    assert!(
        doc["failed_action"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("#does-not-exist"))
    );
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        eval(&s, &key, &sid, "window.ran").await,
        1,
        "the third action did not run"
    );
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [{"type": "evaluate", "expression": "throw new Error('boom')"}]}),
        )
        .await;
    let doc = r.assert_problem(422, "action_failed");
    assert!(
        doc["failed_action"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("boom"))
    );
    assert!(!s.log().contains("panicked"));
}

/// Waits, captures in every format, the usage they count, and release.
async fn waits_captures_usage_and_release(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = id_of(&create(&s, &key, json!({})).await);

    // Waits: element states, a navigation caused by a click, network idle, and a timeout.
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let wait_path = format!("/v1/sessions/{sid}/wait");
    let wait = |body: Value| s.post(&key, &wait_path, body);
    assert_eq!(
        wait(json!({"selector": "#late", "timeout_ms": 5000}))
            .await
            .status,
        200
    );
    assert_eq!(
        wait(json!({"selector": "#title", "state": "visible", "timeout_ms": 2000}))
            .await
            .status,
        200
    );
    wait(json!({"selector": "#title", "state": "hidden", "timeout_ms": 300}))
        .await
        .assert_problem(504, "timeout");
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/actions"),
        json!({"actions": [{"type": "click", "selector": "#next"}]}),
    )
    .await;
    assert_eq!(
        wait(json!({"navigation": true, "timeout_ms": 5000}))
            .await
            .status,
        200
    );
    assert_eq!(eval(&s, &key, &sid, "document.title").await, "Two");
    assert_eq!(
        wait(json!({"network_idle": true, "timeout_ms": 5000}))
            .await
            .status,
        200
    );
    wait(json!({"navigation": true, "timeout_ms": 300}))
        .await
        .assert_problem(504, "timeout");

    // Captures in every format.
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let capture_path = format!("/v1/sessions/{sid}/capture");
    let capture = |body: Value| s.post(&key, &capture_path, body);
    let png = capture(json!({"format": "png"})).await;
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(pages::png_size(&png.bytes), (1280, 720));
    let full = capture(json!({"format": "png", "full_page": true})).await;
    let (w, h) = pages::png_size(&full.bytes);
    assert_eq!(w, 1280);
    assert!(h > 3000, "full page is taller than the viewport: {h}");
    let el = capture(json!({"format": "png", "selector": "#title"})).await;
    assert_eq!(el.status, 200, "{}", el.text());
    let (ew, eh) = pages::png_size(&el.bytes);
    assert!(
        ew < 1280 && eh < 200,
        "element capture is the element: {ew}x{eh}"
    );
    let jpeg = capture(json!({"format": "jpeg", "quality": 50})).await;
    assert_eq!(jpeg.header("content-type"), Some("image/jpeg"));
    assert!(jpeg.bytes.starts_with(&[0xff, 0xd8, 0xff]));
    let webp = capture(json!({"format": "webp"})).await;
    assert!(webp.bytes.len() > 12 && &webp.bytes[8..12] == b"WEBP");
    let pdf = capture(json!({"format": "pdf"})).await;
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert!(pdf.bytes.starts_with(b"%PDF-"));
    let html = capture(json!({"format": "html"})).await;
    assert!(
        html.text().contains("Driftstack test page") && html.text().starts_with("<!DOCTYPE html>")
    );
    let text = capture(json!({"format": "text"})).await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(text.text().contains("Driftstack test page") && !text.text().contains("<h1"));

    // Reads: get and list with live counters.
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(got["status"], "active");
    assert!(
        // This test loads `/` twice and `/two` once (a click).
        got["usage"]["navigations"].as_u64().unwrap_or(0) >= 2,
        "{got}"
    );
    assert!(got["usage"]["captures"].as_u64().unwrap_or(0) >= 8);
    assert!(got["usage"]["requests"].as_u64().unwrap_or(0) >= 3);
    assert!(got["usage"]["bytes_received"].as_u64().unwrap_or(0) > 1000);
    let live = s.get(&key, "/v1/sessions?status=live").await.json();
    assert_eq!(live["data"].as_array().map(Vec::len), Some(1));

    // Release: the session is closed, its commands answer 409, it leaves the live list.
    let r = s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "closed");
    assert_eq!(r.json()["end_reason"], "released");
    assert!(r.json()["connect_url"].is_null());
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await
    .assert_problem(409, "session_ended");
    s.delete(&key, &format!("/v1/sessions/{sid}"))
        .await
        .assert_problem(409, "session_ended");
    let live = s.get(&key, "/v1/sessions?status=live").await.json();
    assert_eq!(live["data"].as_array().map(Vec::len), Some(0));
    let all = s.get(&key, "/v1/sessions").await.json();
    assert_eq!(
        all["data"][0]["usage"]["navigations"],
        got["usage"]["navigations"]
    );

    // A released browser context leaves nothing behind for the next session.
    let next = id_of(&create(&s, &key, json!({})).await);
    s.post(
        &key,
        &format!("/v1/sessions/{next}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    assert_eq!(
        eval(
            &s,
            &key,
            &next,
            "window.ran === undefined && document.querySelector('#name').value === ''"
        )
        .await,
        true
    );
    assert!(!s.log().contains("panicked"));
}

async fn settings_and_blocking_are_applied(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let created = create(
        &s,
        &key,
        json!({
            "viewport": {"width": 800, "height": 600},
            "user_agent": "DriftstackTest/1.0",
            "locale": "de-DE",
            "timezone": "Asia/Tokyo",
            "extra_headers": {"X-Test-Header": "hello"},
            "block": ["image", "stylesheet"]
        }),
    )
    .await;
    let sid = id_of(&created);
    assert_eq!(
        created["options"]["extra_header_names"],
        json!(["X-Test-Header"])
    );
    assert!(
        !created.to_string().contains("hello"),
        "header values are not echoed"
    );

    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/headers")}),
    )
    .await;
    let seen = eval(
        &s,
        &key,
        &sid,
        "({size: [innerWidth, innerHeight], ua: navigator.userAgent, lang: navigator.language, \
          tz: Intl.DateTimeFormat().resolvedOptions().timeZone, \
          headers: JSON.parse(document.getElementById('h').textContent)})",
    )
    .await;
    assert_eq!(seen["size"], json!([800, 600]));
    assert_eq!(seen["ua"], "DriftstackTest/1.0");
    assert_eq!(seen["lang"], "de-DE");
    assert_eq!(seen["tz"], "Asia/Tokyo");
    assert_eq!(seen["headers"]["x-test-header"], "hello");
    assert_eq!(seen["headers"]["user-agent"], "DriftstackTest/1.0");
    assert!(
        seen["headers"]["accept-language"]
            .as_str()
            .is_some_and(|l| l.starts_with("de-DE"))
    );

    let png = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/capture"),
            json!({"format": "png"}),
        )
        .await;
    assert_eq!(pages::png_size(&png.bytes), (800, 600));

    // Blocked resource types are never fetched.
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/with-image")}),
    )
    .await;
    assert_eq!(site.hits.count("/with-image"), 1);
    assert_eq!(site.hits.count("/img.png"), 0, "images are blocked");
    assert_eq!(site.hits.count("/style.css"), 0, "stylesheets are blocked");
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert!(
        got["usage"]["blocked_requests"].as_u64().unwrap_or(0) >= 2,
        "{got}"
    );

    // A session without blocking fetches them.
    let other = id_of(&create(&s, &key, json!({})).await);
    s.post(
        &key,
        &format!("/v1/sessions/{other}/navigate"),
        json!({"url": site.url("/with-image")}),
    )
    .await;
    assert!(site.hits.count("/img.png") >= 1);

    // Warm pages are sized ahead to the viewport their last session used (or the default); each
    // session still gets its own, whether it matches that guess or not.
    for sid in [&sid, &other] {
        s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    }
    for (body, size) in [
        (
            json!({"viewport": {"width": 1024, "height": 768}}),
            [1024, 768],
        ),
        (json!({}), [1280, 720]),
        (
            json!({"viewport": {"width": 1024, "height": 768}}),
            [1024, 768],
        ),
        (
            json!({"viewport": {"width": 1024, "height": 768}}),
            [1024, 768],
        ),
    ] {
        let next = id_of(&create(&s, &key, body).await);
        s.post(
            &key,
            &format!("/v1/sessions/{next}/navigate"),
            json!({"url": site.url("/")}),
        )
        .await;
        let seen = eval(&s, &key, &next, "[innerWidth, innerHeight]").await;
        assert_eq!(seen, json!(size));
        s.delete(&key, &format!("/v1/sessions/{next}")).await;
    }
}

async fn bad_input_and_other_accounts(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = id_of(&create(&s, &key, json!({})).await);
    let nav = format!("/v1/sessions/{sid}/navigate");

    for (body, field) in [
        (json!({"url": "file:///etc/passwd"}), "url"),
        (json!({"url": "javascript:alert(1)"}), "url"),
        (json!({"url": "data:text/html,hi"}), "url"),
        (json!({"url": "chrome://version"}), "url"),
        (json!({"url": "view-source:http://127.0.0.1/"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": site.url("/"), "timeout_ms": 5}), "timeout_ms"),
        (
            json!({"url": site.url("/"), "wait_until": "forever"}),
            "wait_until",
        ),
        (json!({}), "url"),
    ] {
        let doc = s
            .post(&key, &nav, body.clone())
            .await
            .assert_problem(422, "validation_failed");
        assert!(doc["errors"][field].is_string(), "{body} → {doc}");
    }
    let actions = format!("/v1/sessions/{sid}/actions");
    for (body, field) in [
        (json!({"actions": [{"type": "teleport"}]}), "actions[0]"),
        (json!({"actions": [{"type": "click"}]}), "actions[0]"),
        (
            json!({"actions": [{"type": "click", "selector": ""}]}),
            "actions[0].selector",
        ),
        (json!({"actions": []}), "actions"),
        (
            json!({"actions": [{"type": "press", "key": "Enter"}], "timeout_ms": 0}),
            "timeout_ms",
        ),
    ] {
        let doc = s
            .post(&key, &actions, body.clone())
            .await
            .assert_problem(422, "validation_failed");
        assert!(
            doc["errors"]
                .as_object()
                .is_some_and(|e| e.keys().any(|k| k.starts_with(field))),
            "{body} → {doc}"
        );
    }
    let doc = s
        .post(
            &key,
            &actions,
            json!({"actions": [{"type": "press", "key": "NoSuchKey"}]}),
        )
        .await
        .assert_problem(422, "action_failed");
    assert!(
        doc["detail"]
            .as_str()
            .is_some_and(|d| d.contains("NoSuchKey"))
    );
    let wait = format!("/v1/sessions/{sid}/wait");
    s.post(&key, &wait, json!({"timeout_ms": 1000}))
        .await
        .assert_problem(422, "validation_failed");
    s.post(&key, &wait, json!({"selector": "#x"}))
        .await
        .assert_problem(422, "validation_failed");
    let capture = format!("/v1/sessions/{sid}/capture");
    for body in [
        json!({"format": "gif"}),
        json!({"format": "png", "quality": 50}),
        json!({"format": "jpeg", "quality": 101}),
        json!({"format": "pdf", "full_page": true}),
        json!({}),
    ] {
        s.post(&key, &capture, body)
            .await
            .assert_problem(422, "validation_failed");
    }
    for body in [
        json!({"viewport": {"width": 10, "height": 600}}),
        json!({"timezone": "../../etc"}),
        json!({"locale": "not a locale"}),
        json!({"timeout_seconds": 999999999}),
        json!({"idle_timeout_seconds": 0}),
        json!({"block": ["scripts"]}),
        json!({"extra_headers": {"Bad Header": "x"}}),
        json!({"extra_headers": {"X-Ok": "line\r\nbreak"}}),
        json!({"profile_id": "prof_x"}),
    ] {
        s.post(&key, "/v1/sessions", body)
            .await
            .assert_problem(422, "validation_failed");
    }
    // A time zone Chromium does not know is refused, and the failed start frees its slot.
    let doc = s
        .post(
            &key,
            "/v1/sessions",
            json!({"timezone": "Mars/Olympus_Mons"}),
        )
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["timezone"].is_string());

    // Malformed ids, unknown ids, and other accounts' sessions.
    s.get(&key, "/v1/sessions/ses_nope")
        .await
        .assert_problem(422, "validation_failed");
    let unknown = format!("ses_{}", "0".repeat(32));
    s.get(&key, &format!("/v1/sessions/{unknown}"))
        .await
        .assert_problem(404, "not_found");
    s.post(
        &key,
        &format!("/v1/sessions/{unknown}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await
    .assert_problem(404, "not_found");
    env.cli(&["accounts", "create", "--email", "intruder@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "intruder@example.com"]);
    s.get(&other, &format!("/v1/sessions/{sid}"))
        .await
        .assert_problem(404, "not_found");
    s.post(&other, &nav, json!({"url": site.url("/")}))
        .await
        .assert_problem(404, "not_found");
    s.post(
        &other,
        &actions,
        json!({"actions": [{"type": "press", "key": "a"}]}),
    )
    .await
    .assert_problem(404, "not_found");
    s.post(&other, &capture, json!({"format": "png"}))
        .await
        .assert_problem(404, "not_found");
    s.post(&other, &wait, json!({"selector": "a", "timeout_ms": 100}))
        .await
        .assert_problem(404, "not_found");
    s.delete(&other, &format!("/v1/sessions/{sid}"))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        s.get(&other, "/v1/sessions").await.json()["data"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    // Scopes: a read-only key can read but not drive.
    let reader = s
        .post(&key, "/v1/api-keys", json!({"scopes": ["sessions:read"]}))
        .await
        .json()["key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(
        s.get(&reader, &format!("/v1/sessions/{sid}")).await.status,
        200
    );
    s.post(&reader, &nav, json!({"url": site.url("/")}))
        .await
        .assert_problem(403, "missing_permission");
    s.post(&reader, "/v1/sessions", json!({}))
        .await
        .assert_problem(403, "missing_permission");
    // The session still works after all that.
    let r = s.post(&key, &nav, json!({"url": site.url("/")})).await;
    assert_eq!(r.status, 200);
    assert!(!s.log().contains("panicked"));
}

async fn concurrency_cap_admits_exactly_the_cap(backend: Backend) {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_MAX_SESSIONS", "4")
        .set("DRIFTSTACK_POOL_SIZE", "2");
    env.cli(&[
        "accounts",
        "create",
        "--email",
        "trial@example.com",
        "--tier",
        "trial",
    ]);
    let key = env.cli(&["keys", "create", "--email", "trial@example.com"]);
    let s = env.start();
    let creates = (0..16).map(|_| s.post(&key, "/v1/sessions", json!({})));
    let replies = futures::future::join_all(creates).await;
    let ok = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(ok, 2, "trial allows 2 concurrent sessions");
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_problem(429, "concurrency_limit_exceeded");
        assert_eq!(r.header("retry-after"), Some("5"));
    }
    // Releasing one admits one more.
    let first = replies
        .iter()
        .find(|r| r.status == 201)
        .expect("one")
        .json();
    s.delete(&key, &format!("/v1/sessions/{}", id_of(&first)))
        .await;
    assert_eq!(s.post(&key, "/v1/sessions", json!({})).await.status, 201);
    s.post(&key, "/v1/sessions", json!({}))
        .await
        .assert_problem(429, "concurrency_limit_exceeded");
}

async fn a_session_says_who_started_it_from_where_and_when_idleness_ends_it(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_POOL_SIZE", "1");
    let s = env.start();
    let key = s.key().to_owned();
    let keys = s.get(&key, "/v1/api-keys").await.json();
    let key_id = keys["data"][0]["id"].as_str().expect("key id").to_owned();
    let r = s
        .post(&key, "/v1/sessions", json!({"idle_timeout_seconds": 120}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["created_by"], key_id.as_str(), "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["failure"], Value::Null);
    let sid = id_of(&created);
    let deadline = |v: &Value| {
        v["idle_expires_at"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or_else(|| panic!("idle_expires_at: {v}"))
    };
    let first = deadline(&created);
    let left = first - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(120) && left > time::Duration::seconds(100),
        "{left}"
    );
    // A command moves the deadline on.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let now = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert!(deadline(&now) > first, "{now}");
    // The list says the same; an ended session has no idle deadline.
    let list = s.get(&key, "/v1/sessions").await.json();
    assert_eq!(list["data"][0]["source"], "api");
    s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    let ended = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(ended["idle_expires_at"], Value::Null);
    assert_eq!(ended["created_by"], key_id.as_str());
    // The abuse case: another account sees none of it.
    env.cli(&["accounts", "create", "--email", "intruder@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "intruder@example.com"]);
    s.get(&other, &format!("/v1/sessions/{sid}"))
        .await
        .assert_problem(404, "not_found");
}

async fn a_session_that_cannot_start_says_why(backend: Backend) {
    let mut env = Env::new(backend);
    // A "browser" that answers `--version` and exits at once: no session can get one.
    env.set("DRIFTSTACK_CHROMIUM", "/usr/bin/echo");
    env.set("DRIFTSTACK_POOL_SIZE", "0");
    let s = env.start();
    let key = s.key().to_owned();
    let r = s.post(&key, "/v1/sessions", json!({})).await;
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert!(
        !r.text().contains("/usr/bin/echo"),
        "no internals: {}",
        r.text()
    );
    let list = s.get(&key, "/v1/sessions").await.json();
    let failed = &list["data"][0];
    assert_eq!(failed["status"], "failed", "{list}");
    assert_eq!(failed["end_reason"], "start_failed");
    assert_eq!(
        failed["failure"],
        "No browser could be started on the node."
    );
}

async fn idle_and_max_duration_timeouts(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_POOL_SIZE", "2");
    let s = env.start();
    let key = s.key().to_owned();
    let idle = id_of(&create(&s, &key, json!({"idle_timeout_seconds": 1})).await);
    let max = id_of(&create(&s, &key, json!({"timeout_seconds": 2})).await);
    // Keep `max` busy so only its maximum duration can end it.
    let ended = eventually(Duration::from_secs(10), async || {
        let _ = s
            .post(
                &key,
                &format!("/v1/sessions/{max}/navigate"),
                json!({"url": site.url("/two")}),
            )
            .await;
        let a = s.get(&key, &format!("/v1/sessions/{idle}")).await.json();
        let b = s.get(&key, &format!("/v1/sessions/{max}")).await.json();
        a["status"] == "timed_out" && b["status"] == "timed_out"
    })
    .await;
    assert!(ended, "both sessions time out");
    let a = s.get(&key, &format!("/v1/sessions/{idle}")).await.json();
    let b = s.get(&key, &format!("/v1/sessions/{max}")).await.json();
    assert_eq!(a["end_reason"], "idle_timeout");
    assert_eq!(b["end_reason"], "max_duration");
    s.post(
        &key,
        &format!("/v1/sessions/{idle}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await
    .assert_problem(409, "session_ended");
}

async fn a_killed_browser_fails_its_session_and_the_pool_heals(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    // No warm browsers: the only browser is the session's own.
    env.set("DRIFTSTACK_POOL_SIZE", "0");
    let s = env.start();
    let key = s.key().to_owned();
    let sid = id_of(&create(&s, &key, json!({})).await);
    let browsers = support::main_browser_processes(s.pid());
    assert_eq!(browsers.len(), 1, "{browsers:?}");
    support::signal(browsers[0], "KILL");
    let failed = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["status"] == "failed"
    })
    .await;
    assert!(failed, "the session is marked failed");
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(got["end_reason"], "browser_crashed");
    assert_eq!(
        got["failure"],
        "The browser process exited or stopped answering during the session."
    );
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await
    .assert_problem(409, "session_ended");
    // Its helpers are gone too, and a new session works.
    let gone = eventually(Duration::from_secs(10), async || {
        support::browser_processes(s.pid()).is_empty()
    })
    .await;
    assert!(gone, "{:?}", support::browser_processes(s.pid()));
    let next = id_of(&create(&s, &key, json!({})).await);
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{next}/navigate"),
            json!({"url": site.url("/")}),
        )
        .await;
    assert_eq!(r.status, 200);
}

async fn shutdown_leaves_no_browser_or_temp_dir_and_restart_fails_orphans(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_POOL_SIZE", "2");
    let s = env.start();
    let key = s.key().to_owned();
    let a = id_of(&create(&s, &key, json!({})).await);
    let b = id_of(&create(&s, &key, json!({})).await);
    s.post(
        &key,
        &format!("/v1/sessions/{a}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let pid = s.pid();
    let temp_root = std::env::temp_dir().join(format!("driftstack-{pid}"));
    assert!(temp_root.exists());
    assert!(!support::browser_processes(pid).is_empty());
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        support::browser_processes(pid).is_empty(),
        "browsers outlived the server"
    );
    assert!(!temp_root.exists(), "temp dir outlived the server");

    // After a graceful stop the sessions are closed (shutdown).
    let s = env.start();
    for id in [&a, &b] {
        let got = s.get(&key, &format!("/v1/sessions/{id}")).await.json();
        assert_eq!(got["status"], "closed");
        assert_eq!(got["end_reason"], "shutdown");
    }
    // After a crash (SIGKILL), the next start fails what was live and sweeps stray browsers.
    let c = id_of(&create(&s, &key, json!({})).await);
    let dead_pid = s.pid();
    s.kill();
    let s = env.start();
    let got = s.get(&key, &format!("/v1/sessions/{c}")).await.json();
    assert_eq!(got["status"], "failed");
    assert_eq!(got["end_reason"], "runner_lost");
    assert_eq!(
        got["failure"],
        "The server hosting the session stopped without closing it."
    );
    let swept = eventually(Duration::from_secs(10), async || {
        support::browser_processes(dead_pid).is_empty()
    })
    .await;
    assert!(
        swept,
        "browsers of the killed server were swept at the next start"
    );
    assert!(
        !std::env::temp_dir()
            .join(format!("driftstack-{dead_pid}"))
            .exists()
    );
}

async fn a_full_node_queues_creates_then_answers_503(backend: Backend) {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_MAX_SESSIONS", "1")
        .set("DRIFTSTACK_QUEUE_TIMEOUT_SECONDS", "1");
    let s = env.start();
    let key = s.key().to_owned();
    let first = id_of(&create(&s, &key, json!({})).await);
    // The node is full: a create waits in the queue, then gives up with 503 and retry-after.
    let started = std::time::Instant::now();
    let r = s.post(&key, "/v1/sessions", json!({})).await;
    r.assert_problem(503, "capacity_exhausted");
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited for a slot first"
    );
    // A waiting create gets the slot as soon as one is released.
    let (waiting, _) = tokio::join!(s.post(&key, "/v1/sessions", json!({})), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.delete(&key, &format!("/v1/sessions/{first}")).await
    });
    assert_eq!(waiting.status, 201, "{}", waiting.text());
    // The refused create left no session behind.
    let all = s.get(&key, "/v1/sessions").await.json();
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2));
}
