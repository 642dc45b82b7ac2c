//! End-to-end tests of the egress guard and raw CDP, with real Chromium, stock puppeteer-core and
//! playwright-core (from tests/cdp, on Debian's chromium; no browser download).
//!
//! A "trap" server stands for a private service: it listens on loopback addresses outside the
//! allow-list (127.0.0.2 and ::1) and counts every connection. The test site on 127.0.0.1 is the
//! only allow-listed host.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, pages};

on_both_backends!(
    the_egress_guard_keeps_browsers_off_private_addresses,
    puppeteer_and_playwright_drive_the_session_through_connect_url,
    a_cdp_socket_is_closed_properly_when_its_session_times_out,
    the_live_view_streams_jpeg_frames_until_the_session_ends,
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

fn env_with_narrow_allow_list(backend: Backend) -> Env {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_EGRESS_ALLOW", "127.0.0.1/32");
    env
}

async fn the_egress_guard_keeps_browsers_off_private_addresses(backend: Backend) {
    let trap4 = pages::Trap::bind("127.0.0.2:0").await;
    let port = trap4.addr.port();
    let trap6 = pages::Trap::bind(&format!("[::1]:{port}")).await;
    let private = format!("http://127.0.0.2:{port}");
    let attack = format!(
        "<title>attack</title>\
         <img src=\"{private}/img.png\">\
         <iframe src=\"{private}/frame\"></iframe>\
         <iframe src=\"http://169.254.169.254/latest/meta-data/\"></iframe>\
         <script>\
           fetch('{private}/fetch').catch(() => {{}});\
           fetch('http://[::1]:{port}/fetch6').catch(() => {{}});\
           try {{ new WebSocket('ws://127.0.0.2:{port}/ws'); }} catch (e) {{}}\
           navigator.sendBeacon('{private}/beacon');\
         </script>"
    );
    let site = pages::start_with(vec![("/attack", attack)]).await;
    let env = env_with_narrow_allow_list(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = create(&s, &key, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let nav = format!("/v1/sessions/{sid}/navigate");

    // Top-level navigations to private addresses, in every spelling, are refused by name.
    for url in [
        format!("{private}/"),
        format!("http://2130706434:{port}/"),
        format!("http://0x7f000002:{port}/"),
        format!("http://017700000002:{port}/"),
        format!("http://[::ffff:127.0.0.2]:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        format!("http://0.0.0.0:{port}/"),
    ] {
        let doc = s
            .post(&key, &nav, json!({"url": url, "timeout_ms": 10000}))
            .await;
        let doc = doc.assert_problem(403, "egress_denied");
        assert!(doc["host"].is_string(), "{url}: {doc}");
    }
    // A name that resolves to loopback: only the allowed address may be tried (nothing listens
    // on 127.0.0.1 at that port), never the refused ::1.
    let r = s
        .post(
            &key,
            &nav,
            json!({"url": format!("http://localhost.:{port}/"), "timeout_ms": 10000}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());

    // A redirect from an allowed page to a private one is refused at the proxy.
    let doc = s
        .post(
            &key,
            &nav,
            json!({"url": site.url(&format!("/go?to={private}/redirected"))}),
        )
        .await
        .assert_problem(403, "egress_denied");
    assert_eq!(doc["host"], "127.0.0.2");

    // Sub-resources, frames, fetch, WebSocket and beacons of an allowed page are refused too.
    let r = s
        .post(
            &key,
            &nav,
            json!({"url": site.url("/attack"), "wait_until": "networkidle"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert!(
        got["usage"]["egress_denied"].as_u64().unwrap_or(0) >= 5,
        "{got}"
    );

    // The DevTools port of a pooled browser is refused although 127.0.0.1 is allowed, in every
    // spelling, and answered exactly like a closed port (no port-scan oracle), uncounted.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let denied_before =
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["usage"]["egress_denied"].clone();
    let devtools = devtools_ports(s.pid());
    assert!(!devtools.is_empty(), "found no DevTools port");
    for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433"] {
        let at = |port: u16| json!({"url": format!("http://{host}:{port}/json/list")});
        let closed_answer = s.post(&key, &nav, at(closed)).await;
        let closed_problem = closed_answer.assert_problem(502, "navigation_failed");
        for dport in &devtools {
            let p = s
                .post(&key, &nav, at(*dport))
                .await
                .assert_problem(502, "navigation_failed");
            assert_eq!(
                p["detail"], closed_problem["detail"],
                "{host}:{dport} answers like a closed port"
            );
        }
    }
    let denied_after =
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["usage"]["egress_denied"].clone();
    assert_eq!(
        denied_before, denied_after,
        "DevTools refusals are not counted"
    );

    // The allow-listed host works, and nothing ever reached the trap.
    let r = s.post(&key, &nav, json!({"url": site.url("/")})).await;
    assert_eq!(r.status, 200);
    assert_eq!(trap4.hits(), 0, "the private IPv4 service was reached");
    assert_eq!(trap6.hits(), 0, "the private IPv6 service was reached");
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert!(
        got["usage"]["bytes_received"].as_u64().unwrap_or(0) > 500,
        "bytes are metered: {got}"
    );

    // An upstream proxy on a private address is refused as well.
    let r = s
        .post(&key, "/v1/sessions", json!({"proxy": {"server": format!("http://127.0.0.2:{port}"), "username": "u", "password": "p"}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        !r.text().contains("\"p\""),
        "the proxy password is not shown back"
    );
    let via = r.json()["id"].as_str().expect("id").to_owned();
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{via}/navigate"),
            json!({"url": site.url("/"), "timeout_ms": 10000}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(trap4.hits(), 0);
}

/// The DevTools ports of a server's browsers, from their `DevToolsActivePort` files.
fn devtools_ports(server_pid: u32) -> Vec<u16> {
    let root = std::env::temp_dir().join(format!("driftstack-{server_pid}"));
    std::fs::read_dir(root)
        .map(|dirs| {
            dirs.flatten()
                .filter_map(|d| std::fs::read_to_string(d.path().join("DevToolsActivePort")).ok())
                .filter_map(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

async fn upgrade_status(s: &Server, url: &str) -> support::Reply {
    let http_url = url.replacen("ws://", "http://", 1);
    s.send(
        s.http
            .get(http_url)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    )
    .await
}

async fn puppeteer_and_playwright_drive_the_session_through_connect_url(backend: Backend) {
    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let session = create(&s, &key, json!({})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    let connect = session["connect_url"]
        .as_str()
        .expect("connect_url")
        .to_owned();
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/actions"),
        json!({"actions": [{"type": "evaluate", "expression": "window.__marker = 'set-by-rest'"}]}),
    )
    .await;

    // Tampered, foreign and expired tokens are refused before the upgrade.
    let tampered = format!("{}x", connect);
    upgrade_status(&s, &tampered)
        .await
        .assert_problem(401, "unauthorized");
    let other = create(&s, &key, json!({})).await;
    let swapped = connect.replace(&sid, other["id"].as_str().expect("id"));
    let swapped = format!(
        "{}token={}",
        swapped.split("token=").next().expect("base"),
        connect.split("token=").nth(1).expect("token")
    );
    upgrade_status(&s, &swapped)
        .await
        .assert_problem(401, "unauthorized");
    let no_token = connect.split('?').next().expect("base").to_owned();
    upgrade_status(&s, &no_token)
        .await
        .assert_problem(401, "unauthorized");
    let r = s.get(&key, &format!("/v1/sessions/{sid}/cdp")).await;
    r.assert_problem(426, "websocket_required");

    // Stock puppeteer-core drives the session's existing page.
    let seen = support::cdp::node("puppeteer.mjs", &[&connect, &site.url("/")]);
    assert_eq!(
        seen["before"], "set-by-rest",
        "puppeteer sees the session's own page: {seen}"
    );
    assert_eq!(seen["title"], "Index");
    assert!(seen["pngBytes"].as_u64().unwrap_or(0) > 1000);
    assert!(
        seen["refused"]
            .as_str()
            .is_some_and(|m| m.contains("Driftstack")),
        "file: is refused: {seen}"
    );
    let browser_pid = support::cdp::browser_pid_showing(s.pid(), &site.url("/")).await;

    // Closing the socket does not end the session; REST still works on the page puppeteer left.
    let got = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(got["status"], "active");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [{"type": "evaluate", "expression": "window.__marker"}]}),
        )
        .await;
    assert_eq!(r.json()["results"][0]["value"], "set-by-puppeteer");

    // Playwright's connectOverCDP too.
    let fresh = s.get(&key, &format!("/v1/sessions/{sid}")).await.json();
    let connect2 = fresh["connect_url"]
        .as_str()
        .expect("connect_url")
        .to_owned();
    let seen = support::cdp::node("playwright.mjs", &[&connect2, &site.url("/")]);
    assert_eq!(seen["marker"], "set-by-puppeteer", "{seen}");
    assert_eq!(seen["title"], "Index");
    assert_eq!(seen["value"], "from playwright");

    // The session ends by DELETE; its browser, used over CDP, is killed rather than reused.
    assert!(std::path::Path::new(&format!("/proc/{browser_pid}")).exists());
    let r = s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(r.json()["status"], "closed");
    let gone = eventually(Duration::from_secs(10), async || {
        !std::path::Path::new(&format!("/proc/{browser_pid}")).exists()
    })
    .await;
    assert!(gone, "a dirty browser is killed");
    upgrade_status(&s, &connect2)
        .await
        .assert_problem(409, "session_ended");

    // Tokens expire after 15 minutes.
    let third = create(&s, &key, json!({})).await;
    let url3 = third["connect_url"].as_str().expect("url").to_owned();
    env.advance_clock(16 * 60);
    upgrade_status(&s, &url3)
        .await
        .assert_problem(401, "unauthorized");
}

async fn a_cdp_socket_is_closed_properly_when_its_session_times_out(backend: Backend) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let session = create(&s, &key, json!({"idle_timeout_seconds": 2})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    let url = session["connect_url"].as_str().expect("url").to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");

    // CDP traffic keeps the session alive past its idle timeout…
    for i in 0..6 {
        let cmd = json!({"id": i, "method": "Browser.getVersion"}).to_string();
        ws.send(Message::Text(cmd.into())).await.expect("send");
        let reply = ws.next().await.expect("reply").expect("frame");
        assert!(
            reply.to_text().unwrap_or("").contains("product"),
            "{reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["status"],
        "active"
    );

    // …and once it idles out, the socket gets a close frame with a code and a reason.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Ok(Message::Close(Some(close))) = frame {
                return Some(close);
            }
        }
        None
    })
    .await
    .expect("closed within 10 s")
    .expect("a close frame");
    assert_eq!(closed.code, CloseCode::Away);
    assert_eq!(closed.reason.as_str(), "session ended: idle_timeout");
    // The socket closes as teardown begins (`closing`); the final state follows.
    let timed_out = eventually(Duration::from_secs(10), async || {
        s.get(&key, &format!("/v1/sessions/{sid}")).await.json()["status"] == "timed_out"
    })
    .await;
    assert!(timed_out);
}

async fn the_live_view_streams_jpeg_frames_until_the_session_ends(backend: Backend) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

    let site = pages::start().await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let session = create(&s, &key, json!({})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    let connect = session["connect_url"].as_str().expect("url").to_owned();
    let token = connect.split("token=").nth(1).expect("token").to_owned();
    let live = |q: &str| {
        format!(
            "{}/v1/sessions/{sid}/live?{q}",
            s.base.replacen("http://", "ws://", 1)
        )
    };

    // Refusals come before the upgrade, as problems.
    upgrade_status(&s, &live("token=nonsense"))
        .await
        .assert_problem(401, "unauthorized");
    upgrade_status(&s, &live(&format!("token={token}&quality=0")))
        .await
        .assert_problem(422, "validation_failed");
    s.get(&key, &format!("/v1/sessions/{sid}/live"))
        .await
        .assert_problem(426, "websocket_required");

    let (mut ws, _) = tokio_tungstenite::connect_async(live(&format!("token={token}&quality=50")))
        .await
        .expect("connect");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let frame = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(msg) = ws.next().await {
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
    assert!(frame.len() > 500, "{} bytes", frame.len());

    // Ending the session closes the view with the reason.
    assert_eq!(
        s.delete(&key, &format!("/v1/sessions/{sid}")).await.status,
        200
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = ws.next().await {
            if let Ok(Message::Close(Some(close))) = msg {
                return Some(close);
            }
        }
        None
    })
    .await
    .expect("closed within 10 s")
    .expect("a close frame");
    assert_eq!(closed.code, CloseCode::Away);
    assert_eq!(closed.reason.as_str(), "session ended: released");
    // An ended session's live view is a 409.
    upgrade_status(&s, &live(&format!("token={token}")))
        .await
        .assert_problem(409, "session_ended");
}

/// Every everyday Playwright and Puppeteer feature that works on a directly driven browser works
/// through `connect_url` (the allow-list loses nothing): permissions and geolocation, cookies the
/// page sees, routing, emulation, input, dialogs, PDFs, tracing, new pages and contexts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_client_features_work_through_connect_url() {
    let site = pages::start().await;
    let env = Env::new(Backend::Sqlite);
    let s = env.start();
    let key = s.key().to_owned();
    for script in ["playwright-features.mjs", "puppeteer-features.mjs"] {
        let session = create(&s, &key, json!({})).await;
        let connect = session["connect_url"].as_str().expect("connect_url");
        let seen = support::cdp::node(script, &[connect, &site.url("/")]);
        let failed: Vec<_> = seen
            .as_object()
            .expect("features")
            .iter()
            .filter(|(_, v)| *v != "ok")
            .collect();
        assert!(failed.is_empty(), "{script}: {failed:?}");
        assert!(seen.as_object().is_some_and(|o| o.len() > 15), "{seen}");
    }
    let log = s.log();
    assert!(
        !log.contains("CDP command refused"),
        "stock clients sent nothing the allow-list refuses:\n{}",
        log.lines()
            .filter(|l| l.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
