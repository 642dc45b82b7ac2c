//! Tenant isolation, end to end: the browser sandbox and the CDP allow-list, tried the way the
//! security review's attacker did (a trial account holding raw CDP).
//!
//! The exploit chain was: a drop handler in the page, then `Input.dispatchDragEvent` with
//! `data.files` naming the server's files (master key, database), read by the page. Here it is
//! tried through `connect_url` (the filter refuses it) and, to test the second wall, straight on
//! the browser's own DevTools port with no filter at all (the sandbox shows the browser none of
//! those files). A file the test puts inside the browser's own directory is read by the same
//! steps, so the test proves the drop mechanism works and would see a leak.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Server, cdp::Cdp, pages};

on_both_backends!(
    the_drag_and_drop_exploit_reads_nothing,
    browsers_run_unprivileged_in_their_own_namespaces,
    cdp_outside_the_allow_list_is_refused,
    a_credential_never_obtains_more_than_it_holds,
);

async fn create(s: &Server, key: &str, body: Value) -> Value {
    s.post(key, "/v1/sessions", body).await.json()
}

/// Installs a drop handler that records each dropped file's name and content (or the error).
const DROP_HANDLER: &str = r#"
  window.__dropped = [];
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    for (const f of e.dataTransfer.files) {
      f.text().then(
        (t) => window.__dropped.push({name: f.name, text: t}),
        (err) => window.__dropped.push({name: f.name, error: String(err)}));
    }
  });
  true
"#;

/// Drags `files` onto the page and answers what the page could read of them.
async fn drop_files(cdp: &mut Cdp, session: &str, files: &[String]) -> Result<Value, Value> {
    cdp.eval(session, DROP_HANDLER).await;
    let data = json!({"items": [], "files": files, "dragOperationsMask": 1});
    for kind in ["dragEnter", "dragOver", "drop"] {
        cdp.call(
            Some(session),
            "Input.dispatchDragEvent",
            json!({"type": kind, "x": 50, "y": 50, "data": data}),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(cdp.eval(session, "window.__dropped").await)
}

async fn the_drag_and_drop_exploit_reads_nothing(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_POOL_SIZE", "1");
    let s = env.start();
    let key = s.key().to_owned();
    let session = create(&s, &key, json!({})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let data_dir = env.dir.path().join("data");
    let secrets: Vec<String> = ["master.key", "driftstack.db", "runner-id"]
        .iter()
        .map(|f| data_dir.join(f))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .chain(["/etc/hostname".to_owned(), "/etc/passwd".to_owned()])
        .collect();
    assert!(
        secrets.len() >= 3,
        "the data dir holds files to steal: {secrets:?}"
    );

    // 1. Through connect_url: the filter refuses file lists naming host paths.
    let connect = session["connect_url"].as_str().expect("connect_url");
    let mut cdp = Cdp::connect(connect).await;
    let page = cdp.attach_page(&site.url("/")).await;
    let refused = drop_files(&mut cdp, &page, &secrets)
        .await
        .expect_err("a drag of host paths is refused");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("Driftstack") && m.contains("host paths")),
        "{refused}"
    );
    drop(cdp);

    // 2. The filter bypassed: straight on the browser's DevTools port. The sandbox is the wall.
    let (mut raw, page, browser_dir) = support::cdp::unfiltered_page(s.pid(), &site.url("/")).await;
    let dropped = drop_files(&mut raw, &page, &secrets)
        .await
        .expect("the unfiltered browser takes the drag");
    for entry in dropped.as_array().into_iter().flatten() {
        let text = entry["text"].as_str().unwrap_or("");
        assert!(
            text.is_empty(),
            "the sandboxed browser read a host file: {entry}"
        );
    }
    // The same steps do read a file inside the browser's own directory.
    let own = browser_dir.join("own-file.txt");
    std::fs::write(&own, "inside the sandbox").expect("write a file in the browser dir");
    let dropped = drop_files(&mut raw, &page, &[own.display().to_string()])
        .await
        .expect("drag of an own file");
    assert_eq!(
        dropped[0]["text"], "inside the sandbox",
        "the drop mechanism works (the control): {dropped}"
    );
}

/// `/proc/<pid>/status` field `name` of a process.
fn status_field(pid: u32, name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
}

fn namespace(pid: u32, kind: &str) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}

async fn browsers_run_unprivileged_in_their_own_namespaces(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let site = pages::start().await;
    let env = Env::new(backend);
    let tmp_mode = || {
        std::fs::metadata(std::env::temp_dir())
            .map(|m| m.permissions().mode())
            .expect("temp dir")
    };
    let mode_before = tmp_mode();
    let s = env.start();
    assert_eq!(
        tmp_mode(),
        mode_before,
        "the server left the shared temp dir's mode alone"
    );
    let key = s.key().to_owned();
    let ready = s.get(&key, "/readyz").await.json();
    assert_eq!(ready["runner"]["browser_sandbox"], "on", "{ready}");
    let session = create(&s, &key, json!({})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    s.post(
        &key,
        &format!("/v1/sessions/{sid}/navigate"),
        json!({"url": site.url("/")}),
    )
    .await;
    let me = std::process::id();
    let procs = support::browser_processes(s.pid());
    let chromium: Vec<u32> = procs
        .iter()
        .copied()
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("chromium"))
        })
        .collect();
    assert!(!chromium.is_empty(), "browser processes found: {procs:?}");
    for pid in &chromium {
        let uid = status_field(*pid, "Uid").unwrap_or_default();
        assert!(
            uid.split_whitespace().all(|u| u == "65534"),
            "browser {pid} runs as uid {uid}"
        );
        for ns in ["mnt", "pid", "ipc", "uts"] {
            assert_ne!(
                namespace(*pid, ns),
                namespace(me, ns),
                "browser {pid} shares the host's {ns} namespace"
            );
        }
        assert_eq!(status_field(*pid, "NoNewPrivs").as_deref(), Some("1"));
    }
    // Chromium's own sandbox is on: renderers are under seccomp-bpf.
    let all = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|p| status_field(*p, "Uid").is_some_and(|u| u.starts_with("65534")));
    let renderers: Vec<u32> = all
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
        })
        .collect();
    assert!(!renderers.is_empty(), "a renderer runs");
    assert!(
        renderers
            .iter()
            .any(|p| status_field(*p, "Seccomp").as_deref() == Some("2")),
        "renderers run under seccomp: {renderers:?}"
    );
    let cmdlines: String = chromium
        .iter()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .collect();
    assert!(!cmdlines.contains("--no-sandbox"), "{cmdlines}");

    // Inside, the root holds no data dir, and /proc shows only the browser's own processes.
    let (mut raw, _, _) = support::cdp::unfiltered_page(s.pid(), &site.url("/")).await;
    let info = raw
        .call(None, "SystemInfo.getProcessInfo", json!({}))
        .await
        .expect("SystemInfo on the unfiltered port");
    let pids: Vec<i64> = info["processInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    assert!(
        pids.iter().all(|p| *p < 100),
        "pids inside the sandbox are its own namespace's: {pids:?}"
    );
    s.terminate();
}

async fn cdp_outside_the_allow_list_is_refused(backend: Backend) {
    use futures::SinkExt;
    let mut env = Env::new(backend);
    env.set("METRICS_TOKEN", "metrics-secret");
    let s = env.start();
    let key = s.key().to_owned();
    let session = create(&s, &key, json!({})).await;
    let connect = session["connect_url"]
        .as_str()
        .expect("connect_url")
        .to_owned();
    let mut cdp = Cdp::connect(&connect).await;
    for (method, params) in [
        ("SystemInfo.getProcessInfo", json!({})),
        ("Browser.getBrowserCommandLine", json!({})),
        ("Extensions.loadUnpacked", json!({"path": "/tmp"})),
        ("Tethering.bind", json!({"port": 9999})),
        ("Target.sendMessageToTarget", json!({"message": "{}"})),
        (
            "Storage.getCookies",
            json!({"browserContextId": "0123456789ABCDEF"}),
        ),
        (
            "DOM.setFileInputFiles",
            json!({"files": ["/etc/passwd"], "nodeId": 1}),
        ),
        ("Tracing.start", json!({"tracingBackend": "system"})),
    ] {
        let err = cdp.call(None, method, params).await.expect_err("refused");
        assert!(
            err["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Driftstack:")),
            "{method}: {err}"
        );
    }
    // Allowed commands still work on the same connection.
    let version = cdp.call(None, "Browser.getVersion", json!({})).await;
    assert!(version.is_ok(), "{version:?}");
    // Contexts: the limit holds across reconnects.
    let mut created = 0;
    for _ in 0..2 {
        let mut c = Cdp::connect(&connect).await;
        for _ in 0..3 {
            if c.call(None, "Target.createBrowserContext", json!({}))
                .await
                .is_ok()
            {
                created += 1;
            }
        }
    }
    assert_eq!(created, runner::cdp::MAX_EXTRA_CONTEXTS);
    // A message over 16 MiB is refused before it is parsed: the socket is closed.
    let (mut ws, _) = tokio_tungstenite::connect_async(&connect)
        .await
        .expect("connect");
    let huge = format!(
        "{{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{{\"expression\":\"{}\"}}}}",
        "x".repeat(17 << 20)
    );
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::Text(huge.into()))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        use futures::StreamExt;
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
                | None
                | Some(Err(_)) => {
                    return true;
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "an oversized message closes the socket");
    let metrics = s.get("metrics-secret", "/metrics").await.text();
    assert!(
        metrics.contains("driftstack_cdp_refused_total"),
        "refusals are counted"
    );
}

async fn new_key(s: &Server, key: &str, scopes: &[&str]) -> (String, String) {
    let r = s
        .post(
            key,
            "/v1/api-keys",
            json!({"name": "narrow", "scopes": scopes}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    (
        j["id"].as_str().expect("id").to_owned(),
        j["key"].as_str().expect("key").to_owned(),
    )
}

async fn a_credential_never_obtains_more_than_it_holds(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let owner = s.key().to_owned();
    let owner_key_id = s.get(&owner, "/v1/api-keys").await.json()["data"][0]["id"]
        .as_str()
        .expect("the owner's key")
        .to_owned();

    // Raw CDP is read-write: a `sessions:read` key sees no connect_url and cannot open /cdp.
    let (_, reader) = new_key(&s, &owner, &["sessions:read"]).await;
    let session = create(&s, &owner, json!({})).await;
    let sid = session["id"].as_str().expect("id").to_owned();
    assert!(session["connect_url"].is_string());
    let seen = s.get(&reader, &format!("/v1/sessions/{sid}")).await.json();
    assert_eq!(seen["status"], "active");
    assert!(seen["connect_url"].is_null(), "{seen}");
    let listed = s.get(&reader, "/v1/sessions").await.json();
    assert!(listed["data"][0]["connect_url"].is_null(), "{listed}");
    let r = s
        .send(
            s.http
                .get(s.url(&format!("/v1/sessions/{sid}/cdp")))
                .bearer_auth(&reader)
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        )
        .await;
    r.assert_problem(403, "missing_permission");

    // Rotating a key hands out a secret with its scopes: the caller must hold them all.
    let (keys_key_id, keys_key) = new_key(&s, &owner, &["keys:read", "keys:write"]).await;
    s.post(
        &keys_key,
        &format!("/v1/api-keys/{owner_key_id}/rotate"),
        json!({"grace_seconds": 0}),
    )
    .await
    .assert_problem(403, "scope_escalation");
    assert_eq!(
        s.get(&owner, "/v1/sessions").await.status,
        200,
        "the owner's key still works"
    );
    let r = s
        .post(
            &keys_key,
            &format!("/v1/api-keys/{keys_key_id}/rotate"),
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(
        r.status,
        201,
        "a key may rotate one with its own scopes: {}",
        r.text()
    );

    // Idempotent answers belong to the credential that caused them.
    let body = json!({"name": "ci", "scopes": ["sessions:read"]});
    let first = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&owner)
                .header("idempotency-key", "make-ci-key")
                .json(&body),
        )
        .await;
    assert_eq!(first.status, 201);
    let secret = first.json()["key"].as_str().expect("secret").to_owned();
    let again = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&owner)
                .header("idempotency-key", "make-ci-key")
                .json(&body),
        )
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["key"], secret.as_str());
    let stolen = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&reader)
                .header("idempotency-key", "make-ci-key")
                .json(&body),
        )
        .await;
    stolen.assert_problem(403, "missing_permission");
    assert!(!stolen.text().contains(&secret));
    assert_eq!(stolen.header("idempotent-replayed"), None);
}

/// Secure by default: a sandbox that cannot start stops the server with one line naming the
/// opt-out; with the opt-out, the server starts, warns, and `/readyz` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sandbox_no_start_unless_the_operator_opts_out() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new(Backend::Sqlite);
    // A "browser" that cannot run inside the sandbox.
    let broken = env.dir.path().join("bin").join("chromium-broken");
    std::fs::create_dir_all(broken.parent().expect("dir")).expect("dir");
    std::fs::write(&broken, "#!/bin/sh\necho 'no browser here' >&2\nexit 3\n").expect("script");
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("mode");
    env.set("DRIFTSTACK_CHROMIUM", &broken.display().to_string());
    let out = env.command(&["serve"]).output().expect("run the server");
    assert!(!out.status.success(), "the server refused to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error:") && last.contains("DRIFTSTACK_BROWSER_SANDBOX=off"),
        "one line naming the opt-out: {stderr}"
    );

    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_BROWSER_SANDBOX", "off");
    let s = env.start();
    let ready = s.get(s.key(), "/readyz").await.json();
    assert_eq!(ready["runner"]["browser_sandbox"], "off", "{ready}");
    assert!(
        s.log()
            .contains("DRIFTSTACK_BROWSER_SANDBOX=off: browsers run unconfined"),
        "the start warns"
    );
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_BROWSER_SANDBOX", "maybe");
    let out = env.command(&["serve"]).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("DRIFTSTACK_BROWSER_SANDBOX"));
}
