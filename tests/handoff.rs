//! Human in the loop, end to end against the real binary and real Chromium, on SQLite and
//! PostgreSQL: live links open once (then 410), a view-only viewer cannot send input, one
//! controller at a time and a takeover needs `sessions:write`, a revoked or expired link is
//! refused (and its viewers cut off), a viewer credential never opens raw CDP; a headless
//! "person" opens a handoff's live link in a real browser, clicks and types into the remote
//! form and clicks *Done*, and the agent's Playwright connection reads the value; webhooks and
//! audit entries are there; the live page may be framed only by the account's origins.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Backend, Env, Server, pages};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

on_both_backends!(
    a_live_link_opens_once_and_a_view_only_viewer_cannot_type,
    one_controller_at_a_time_and_a_takeover_needs_write,
    a_person_completes_a_handoff_that_the_agent_then_sees,
    a_handoff_expires_and_only_its_person_may_finish_it,
    the_live_page_is_framed_only_by_the_accounts_origins,
);

const FORM: &str = r#"<title>login</title><style>body{margin:0}</style>
<p>Enter the code we sent you</p>
<input id="code" autocomplete="off" style="position:absolute;left:100px;top:120px;width:300px;height:40px;font-size:24px">"#;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the live socket opens")
        .0
}

async fn connect_with_key(s: &Server, sid: &str, key: &str) -> Socket {
    let url = format!(
        "{}/v1/sessions/{sid}/live",
        s.base.replacen("http://", "ws://", 1)
    );
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("the live socket opens with a key")
        .0
}

/// The next text message for which `want` holds (others skipped), within 15 s.
async fn next_text(ws: &mut Socket, want: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(Duration::from_secs(15), async {
        let mut seen = Vec::new();
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Text(t)) = &msg
                && let Ok(v) = serde_json::from_str::<Value>(t.as_str())
            {
                if want(&v) {
                    return v;
                }
                seen.push(v.to_string());
            } else if !matches!(msg, Ok(Message::Binary(_))) {
                // The close frame (its reason) or the error: what a failure needs to say.
                seen.push(format!("{msg:?}"));
            }
        }
        panic!("the socket closed before the message came; it sent: {seen:?}");
    })
    .await
    .expect("the message within 15 s")
}

async fn send(ws: &mut Socket, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == kind
}

fn error_code(code: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == "error" && v["code"] == code
}

/// A live session on the form page: (session id, connect_url).
async fn session_on_form(s: &Server, key: &str, site: &pages::Site) -> (String, String) {
    let r = s.post(key, "/v1/sessions", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    let connect = r.json()["connect_url"]
        .as_str()
        .expect("connect")
        .to_owned();
    let r = s
        .post(
            key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/form")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (sid, connect)
}

async fn code_value(s: &Server, key: &str, sid: &str) -> String {
    let r = s
        .post(
            key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [{"type": "evaluate", "expression": "document.querySelector('#code').value"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"][0]["value"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn link(s: &Server, key: &str, sid: &str, body: Value) -> Value {
    let r = s
        .post(key, &format!("/v1/sessions/{sid}/live-links"), body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// Exchanges a link's token as its page does: the viewer's WebSocket URL.
async fn exchange(s: &Server, url: &str) -> Value {
    let token = url.rsplit('/').next().expect("token");
    let r = s
        .send(
            reqwest::Client::new()
                .post(s.url("/v1/live-links/exchange"))
                .json(&json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn page(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = reqwest::get(url).await.expect("the live page answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap_or_default(), headers)
}

async fn key_with(s: &Server, key: &str, scopes: &[&str]) -> String {
    let r = s
        .post(
            key,
            "/v1/api-keys",
            json!({"name": "scoped", "scopes": scopes}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().expect("key").to_owned()
}

async fn audit_actions(s: &Server, key: &str) -> Vec<String> {
    let r = s.get(key, "/v1/audit-log?limit=100").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

async fn a_live_link_opens_once_and_a_view_only_viewer_cannot_type(backend: Backend) {
    let site = pages::start_with(vec![("/form", FORM.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (sid, _) = session_on_form(&s, &key, &site).await;

    // Bad requests and strangers.
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/live-links"),
            json!({"mode": "admin", "expires_in_seconds": 5}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let reader = key_with(&s, &key, &["sessions:read"]).await;
    s.post(
        &reader,
        &format!("/v1/sessions/{sid}/live-links"),
        json!({}),
    )
    .await
    .assert_problem(403, "missing_permission");
    env.cli(&["accounts", "create", "--email", "intruder@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "intruder@example.com"]);
    s.post(&other, &format!("/v1/sessions/{sid}/live-links"), json!({}))
        .await
        .assert_problem(404, "not_found");

    // A view link: the page is served once, its token exchanged once.
    let view = link(&s, &key, &sid, json!({"mode": "view"})).await;
    let url = view["url"].as_str().expect("url").to_owned();
    assert!(url.contains("/live/lvt_"), "{url}");
    let (status, body, headers) = page(&url).await;
    assert_eq!(status, 200);
    assert!(body.contains("/assets/live.js"), "{body}");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    let viewer = exchange(&s, &url).await;
    assert_eq!(viewer["mode"], "view");
    let (status, body, _) = page(&url).await;
    assert_eq!(status, 410, "an exchanged link is gone");
    assert!(body.contains("already opened"), "{body}");
    let token = url.rsplit('/').next().expect("token");
    s.send(
        reqwest::Client::new()
            .post(s.url("/v1/live-links/exchange"))
            .json(&json!({"token": token})),
    )
    .await
    .assert_problem(410, "live_link_gone");
    let (status, _, _) = page(&s.url("/live/lvt_nonsense")).await;
    assert_eq!(status, 404);

    // The viewer credential opens the live view read-only, and never raw CDP.
    let credential = viewer["token"].as_str().expect("credential").to_owned();
    let mut ws = connect(viewer["live_url"].as_str().expect("live_url")).await;
    let hello = next_text(&mut ws, is("hello")).await;
    assert_eq!(hello["mode"], "view", "{hello}");
    assert_eq!(hello["can_take_over"], false);
    send(&mut ws, json!({"type": "control", "action": "request"})).await;
    next_text(&mut ws, error_code("view_only")).await;
    send(
        &mut ws,
        json!({"type": "text", "text": "typed by a viewer"}),
    )
    .await;
    next_text(&mut ws, error_code("view_only")).await;
    send(&mut ws, json!({"type": "control", "action": "take_over"})).await;
    next_text(&mut ws, error_code("take_over_forbidden")).await;
    send(&mut ws, json!({"type": "evaluate", "expression": "1"})).await;
    let bad = next_text(&mut ws, error_code("invalid_message")).await;
    assert!(
        !bad["detail"].as_str().unwrap_or("").contains("line"),
        "{bad}"
    );
    assert_eq!(code_value(&s, &key, &sid).await, "", "nothing was typed");
    let cdp = format!(
        "{}/v1/sessions/{sid}/cdp?token={credential}",
        s.base.replacen("http://", "ws://", 1)
    );
    assert!(
        tokio_tungstenite::connect_async(&cdp).await.is_err(),
        "a viewer credential does not open raw CDP"
    );

    // Revoked: the page says so, and the viewers who came through it are cut off.
    let revoke = |id: &str| {
        reqwest::Client::new()
            .delete(s.url(&format!("/v1/sessions/{sid}/live-links/{id}")))
            .bearer_auth(&key)
    };
    let r = s.send(revoke(view["id"].as_str().expect("id"))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(Some(c))) = msg {
                return Some(u16::from(c.code));
            }
        }
        None
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(
        closed,
        Some(4001),
        "a revoked link's viewer is disconnected"
    );
    assert!(
        tokio_tungstenite::connect_async(viewer["live_url"].as_str().expect("url"))
            .await
            .is_err(),
        "a revoked link's credential opens nothing"
    );
    let fresh = link(&s, &key, &sid, json!({})).await;
    let r = s
        .send(
            reqwest::Client::new()
                .delete(s.url(&format!(
                    "/v1/sessions/{sid}/live-links/{}",
                    fresh["id"].as_str().expect("id")
                )))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(r.status, 404, "another account cannot revoke it");
    s.send(revoke(fresh["id"].as_str().expect("id"))).await;
    let (status, body, _) = page(fresh["url"].as_str().expect("url")).await;
    assert_eq!(status, 410);
    assert!(body.contains("revoked"), "{body}");

    // Expired.
    let short = link(&s, &key, &sid, json!({"expires_in_seconds": 60})).await;
    env.advance_clock(61);
    let (status, body, _) = page(short["url"].as_str().expect("url")).await;
    assert_eq!(status, 410);
    assert!(body.contains("expired"), "{body}");

    // Ended with the session.
    let last = link(&s, &key, &sid, json!({"expires_in_seconds": 3600})).await;
    assert_eq!(
        s.delete(&key, &format!("/v1/sessions/{sid}")).await.status,
        200
    );
    let (status, body, _) = page(last["url"].as_str().expect("url")).await;
    assert_eq!(status, 410);
    assert!(body.contains("ended"), "{body}");
    let actions = audit_actions(&s, &key).await;
    for action in [
        "session.live_link.created",
        "session.live_link.opened",
        "session.live_link.revoked",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

async fn one_controller_at_a_time_and_a_takeover_needs_write(backend: Backend) {
    let site = pages::start_with(vec![("/form", FORM.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (sid, connect_url) = session_on_form(&s, &key, &site).await;

    // A person with an interact link takes control.
    let a = exchange(
        &s,
        link(&s, &key, &sid, json!({"mode": "interact"})).await["url"]
            .as_str()
            .expect("url"),
    )
    .await;
    let mut first = connect(a["live_url"].as_str().expect("url")).await;
    assert_eq!(next_text(&mut first, is("hello")).await["mode"], "interact");
    send(&mut first, json!({"type": "text", "text": "x"})).await;
    next_text(&mut first, error_code("not_controller")).await;
    send(&mut first, json!({"type": "control", "action": "request"})).await;
    next_text(&mut first, |v| {
        v["type"] == "control" && v["controller"]["you"] == true
    })
    .await;

    // A second person is refused, and may not take over.
    let b = exchange(
        &s,
        link(&s, &key, &sid, json!({"mode": "interact"})).await["url"]
            .as_str()
            .expect("url"),
    )
    .await;
    let mut second = connect(b["live_url"].as_str().expect("url")).await;
    let seen = next_text(&mut second, |v| {
        v["type"] == "control" && !v["controller"].is_null()
    })
    .await;
    assert_eq!(seen["controller"]["you"], false);
    send(&mut second, json!({"type": "control", "action": "request"})).await;
    next_text(&mut second, error_code("control_held")).await;
    send(
        &mut second,
        json!({"type": "control", "action": "take_over"}),
    )
    .await;
    next_text(&mut second, error_code("take_over_forbidden")).await;
    send(
        &mut second,
        json!({"type": "paste", "text": "not mine to type"}),
    )
    .await;
    next_text(&mut second, error_code("not_controller")).await;

    // A sessions:read key watches; a sessions:write key takes over.
    let reader = key_with(&s, &key, &["sessions:read"]).await;
    let mut watcher = connect_with_key(&s, &sid, &reader).await;
    let hello = next_text(&mut watcher, is("hello")).await;
    assert_eq!(hello["mode"], "view");
    send(
        &mut watcher,
        json!({"type": "control", "action": "take_over"}),
    )
    .await;
    next_text(&mut watcher, error_code("take_over_forbidden")).await;
    let mut owner = connect_with_key(&s, &sid, &key).await;
    assert_eq!(
        next_text(&mut owner, is("hello")).await["can_take_over"],
        true
    );
    // The page's size comes first (the still and its metrics), before any change of the page.
    let viewport = next_text(&mut owner, is("viewport")).await;
    assert!(
        viewport["width"].as_f64().unwrap_or(0.0) > 400.0,
        "{viewport}"
    );
    send(
        &mut owner,
        json!({"type": "control", "action": "take_over"}),
    )
    .await;
    next_text(&mut owner, |v| {
        v["type"] == "control" && v["controller"]["you"] == true
    })
    .await;
    next_text(&mut first, |v| {
        v["type"] == "control" && v["controller"]["you"] == false
    })
    .await;
    send(&mut first, json!({"type": "text", "text": "too late"})).await;
    next_text(&mut first, error_code("not_controller")).await;

    // The controller clicks into the field and types, by the protocol.
    send(
        &mut owner,
        json!({"type": "mouse", "event": "click", "x": 200, "y": 140}),
    )
    .await;
    for c in ["4", "2"] {
        send(&mut owner, json!({"type": "key", "event": "down", "key": c, "code": format!("Digit{c}"), "text": c})).await;
        send(
            &mut owner,
            json!({"type": "key", "event": "up", "key": c, "code": format!("Digit{c}")}),
        )
        .await;
    }
    send(&mut owner, json!({"type": "text", "text": "-ok"})).await;
    let typed = support::eventually(Duration::from_secs(10), async || {
        code_value(&s, &key, &sid).await == "42-ok"
    })
    .await;
    assert!(
        typed,
        "typed into the remote field: {:?}",
        code_value(&s, &key, &sid).await
    );
    assert!(
        !code_value(&s, &key, &sid).await.contains("mine"),
        "refused input never reached the page"
    );

    // Released (or gone), control is free again.
    send(&mut owner, json!({"type": "control", "action": "release"})).await;
    next_text(&mut second, |v| {
        v["type"] == "control" && v["controller"].is_null()
    })
    .await;
    send(&mut second, json!({"type": "control", "action": "request"})).await;
    next_text(&mut second, |v| {
        v["type"] == "control" && v["controller"]["you"] == true
    })
    .await;
    drop(second);
    next_text(&mut first, |v| {
        v["type"] == "control" && v["controller"].is_null()
    })
    .await;

    // A tab opened through CDP: the view lists it and follows it; the viewer can switch back.
    let two_tabs =
        |v: &Value| v["type"] == "tabs" && v["tabs"].as_array().is_some_and(|t| t.len() == 2);
    let (mut cdp, _) = tokio_tungstenite::connect_async(&connect_url)
        .await
        .expect("cdp");
    send(
        &mut cdp,
        json!({"id": 1, "method": "Target.createTarget", "params": {"url": site.url("/form")}}),
    )
    .await;
    let tabs = next_text(&mut owner, two_tabs).await;
    let list = tabs["tabs"].as_array().expect("tabs").clone();
    assert_eq!(
        list.iter().filter(|t| t["active"] == true).count(),
        1,
        "{tabs}"
    );
    let original = list
        .iter()
        .find(|t| t["active"] == false)
        .expect("the first tab")
        .clone();
    send(&mut owner, json!({"type": "tab", "id": original["id"]})).await;
    next_text(&mut owner, |v| {
        v["type"] == "tabs"
            && v["tabs"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t["id"] == original["id"] && t["active"] == true)
            })
    })
    .await;
    send(&mut owner, json!({"type": "tab", "id": "NOSUCHTAB"})).await;
    next_text(&mut owner, error_code("unknown_tab")).await;

    let actions = audit_actions(&s, &key).await;
    for action in [
        "session.live.control_acquired",
        "session.live.control_taken_over",
        "session.live.control_released",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

/// Runs tests/cdp/handoff.mjs without blocking this test's runtime (its webhook receiver).
async fn node(args: &[&str]) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cdp");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(format!("{dir}/handoff.mjs"))
            .args(args)
            .output(),
    )
    .await
    .expect("handoff.mjs within 2 minutes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "handoff.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).expect("JSON")
}

async fn a_person_completes_a_handoff_that_the_agent_then_sees(backend: Backend) {
    let site = pages::start_with(vec![("/form", FORM.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (hook, seen) = support::hooks::receiver().await;
    let r = s
        .post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": hook, "event_types": ["session.handoff.requested", "session.handoff.completed"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (sid, connect_url) = session_on_form(&s, &key, &site).await;

    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/handoff"),
            json!({"reason": "mfa code needed", "timeout_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let handoff = r.json();
    assert_eq!(handoff["state"], "requested");
    let session = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(session["status"], "waiting_for_human", "{session}");
    assert_eq!(session["handoff"]["reason"], "mfa code needed");
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/handoff"),
        json!({"reason": "again"}),
    )
    .await
    .assert_problem(409, "handoff_pending");

    // The webhook carries the link; the person opens it in a real browser.
    let requested = support::eventually(Duration::from_secs(15), async || {
        seen.events().iter().any(|e| {
            e["type"] == "session.handoff.requested" && e["data"]["live_url"] == handoff["live_url"]
        })
    })
    .await;
    assert!(
        requested,
        "session.handoff.requested delivered: {:?}",
        seen.events()
    );
    let live_url = handoff["live_url"].as_str().expect("live_url");
    let out = node(&["person", &connect_url, live_url, &s.base, &key, &sid]).await;
    assert_eq!(out["value"], "123456", "{out}");
    assert_eq!(out["reason"], "mfa code needed", "{out}");
    assert_eq!(out["waited"], 200, "the agent's wait returned: {out}");
    assert!(
        out["status"].as_str().unwrap_or("").starts_with("Done"),
        "{out}"
    );

    let session = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(session["status"], "active", "{session}");
    assert_eq!(session["handoff"]["state"], "completed");
    let completed = support::eventually(Duration::from_secs(15), async || {
        seen.events()
            .iter()
            .any(|e| e["type"] == "session.handoff.completed")
    })
    .await;
    assert!(completed, "session.handoff.completed delivered");
    let (status, _, _) = page(live_url).await;
    assert_eq!(status, 410, "a finished handoff's link is gone");
    let actions = audit_actions(&s, &key).await;
    for action in [
        "session.handoff.requested",
        "session.live_link.opened",
        "session.live.control_acquired",
        "session.handoff.completed",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

async fn a_handoff_expires_and_only_its_person_may_finish_it(backend: Backend) {
    let site = pages::start_with(vec![("/form", FORM.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let r = s
        .post(&key, "/v1/sessions", json!({"idle_timeout_seconds": 60}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    let wait_path = format!("/v1/sessions/{sid}/wait");
    let wait = |body: Value| s.post(&key, &wait_path, body);
    wait(json!({"handoff": "completed", "timeout_ms": 1000}))
        .await
        .assert_problem(409, "no_handoff");
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/handoff/complete"),
        json!({}),
    )
    .await
    .assert_problem(409, "no_handoff");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/handoff"),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json()["errors"]["reason"].is_string(), "{}", r.text());
    env.cli(&["accounts", "create", "--email", "intruder@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "intruder@example.com"]);
    s.post(
        &other,
        &format!("/v1/sessions/{sid}/handoff"),
        json!({"reason": "mine now"}),
    )
    .await
    .assert_problem(404, "not_found");

    // A view-mode handoff: its person can watch, not type nor finish it.
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/handoff"),
            json!({"reason": "look at this", "mode": "view", "timeout_seconds": 30}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let viewer = exchange(&s, r.json()["live_url"].as_str().expect("url")).await;
    let mut ws = connect(viewer["live_url"].as_str().expect("url")).await;
    next_text(&mut ws, |v| {
        v["type"] == "handoff" && v["state"] == "requested"
    })
    .await;
    send(&mut ws, json!({"type": "done"})).await;
    next_text(&mut ws, error_code("done_forbidden")).await;
    let _ = site;

    // The idle timeout is paused while waiting; the deadline expires the handoff, not the session.
    env.advance_clock(31);
    next_text(&mut ws, |v| {
        v["type"] == "handoff" && v["state"] == "expired"
    })
    .await;
    wait(json!({"handoff": "completed", "timeout_ms": 1000}))
        .await
        .assert_problem(409, "handoff_expired");
    let session = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(session["status"], "active", "{session}");
    assert_eq!(session["handoff"]["state"], "expired");
    env.advance_clock(40);
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/handoff"),
            json!({"reason": "second try", "timeout_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    env.advance_clock(120);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let session = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(
        session["status"], "waiting_for_human",
        "no idle timeout while waiting: {session}"
    );
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/handoff/complete"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(r.json()["handoff"]["state"], "completed");
}

async fn the_live_page_is_framed_only_by_the_accounts_origins(backend: Backend) {
    let embed = r#"<title>embed</title><body><script>
const f = document.createElement('iframe');
f.onload = () => { window.loaded = true; };
f.src = decodeURIComponent(location.hash.slice(1));
f.width = 800; f.height = 500;
document.body.append(f);
</script>"#;
    let site = pages::start_with(vec![
        ("/form", FORM.to_owned()),
        ("/embed", embed.to_owned()),
    ])
    .await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (sid, _) = session_on_form(&s, &key, &site).await;
    let origin = site.url("").trim_end_matches('/').to_owned();
    let embed_url = |live: &str| format!("{}#{}", site.url("/embed"), urlencode(live));

    let refused = link(&s, &key, &sid, json!({})).await;
    let out = node(&["frame", &embed_url(refused["url"].as_str().expect("url"))]).await;
    assert_eq!(out["framed"], false, "framed without being allowed: {out}");

    for bad in [
        "https://*.example.com",
        "javascript:alert(1)",
        "https://a.test/path",
        "*",
    ] {
        let r = s
            .send(
                reqwest::Client::new()
                    .put(s.url("/v1/account/live-embedding"))
                    .bearer_auth(&key)
                    .json(&json!({"frame_ancestors": [bad]})),
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert!(
            r.json()["errors"]["frame_ancestors[0]"].is_string(),
            "{}",
            r.text()
        );
    }
    let r = s
        .send(
            reqwest::Client::new()
                .put(s.url("/v1/account/live-embedding"))
                .bearer_auth(&key)
                .json(&json!({"frame_ancestors": [origin]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.get(&key, "/v1/account/live-embedding").await.json()["frame_ancestors"][0],
        origin.as_str()
    );
    let allowed = link(&s, &key, &sid, json!({})).await;
    let (_, _, headers) = page(allowed["url"].as_str().expect("url")).await;
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains(&format!("frame-ancestors {origin}")), "{csp}");
    let allowed = link(&s, &key, &sid, json!({})).await;
    let out = node(&["frame", &embed_url(allowed["url"].as_str().expect("url"))]).await;
    assert_eq!(out["framed"], true, "an allowed origin may frame it: {out}");
}

/// A live URL fits in a fragment as it is (base64url token, no `#`).
fn urlencode(s: &str) -> String {
    s.to_owned()
}
