//! Files in sessions, end to end against the real binary and real Chromium, on SQLite and
//! PostgreSQL: a download started by a click is listed, fetched byte for byte, and still there
//! after the session ended and after a restart; one over the plan's limit is cancelled and marked
//! `too_large`; an upload (a raw body or curl's multipart form) reaches the page's file input
//! through `set_files`, and malformed or oversized ones are refused; another account gets
//! 404 for every file route; and Playwright and Puppeteer, through `connect_url`, download (the
//! file is listed and matches) and upload by the path an upload returned (any other path is
//! refused); downloads are deleted, bytes too, after the plan's retention.

mod support;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Backend, Env, Server, pages};

on_both_backends!(
    a_clicked_download_is_kept_and_fetchable_after_the_session_and_a_restart,
    a_download_over_the_plan_is_cancelled_and_marked_too_large,
    an_upload_reaches_the_page_through_set_files,
    another_account_gets_404_for_every_file_route,
    stock_clients_download_and_upload_through_connect_url,
    downloads_are_deleted_after_the_plans_retention,
);

const DOWNLOAD_PAGE: &str = r#"<title>files</title>
<a id="report" href="/bytes/300000/report%20Q3.csv" download>report</a>
<a id="big" href="/bytes/3000000/big.bin" download>big</a>
<a id="endless" href="/endless/stream.bin" download>endless</a>
<a id="notes" href="/bytes/1000/notes.txt" download>notes</a>
<input id="pick" type="file" multiple>"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn session_on_page(s: &Server, key: &str, site: &pages::Site) -> String {
    let r = s.post(key, "/v1/sessions", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    let r = s
        .post(
            key,
            &format!("/v1/sessions/{sid}/navigate"),
            json!({"url": site.url("/files")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    sid
}

/// Clicks `selector` and waits for the download it starts.
async fn click_and_wait(s: &Server, key: &str, sid: &str, selector: &str) -> support::Reply {
    let r = s
        .post(
            key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"timeout_ms": 20000, "actions": [
                {"type": "click", "selector": selector},
                {"type": "wait_for_download"}
            ]}),
        )
        .await;
    if r.status != 200 {
        // Shown with a failing test: what the server saw of the download.
        let log = s.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!(
            "server log (last lines, newest first):\n{}",
            tail.join("\n")
        );
    }
    r
}

async fn a_clicked_download_is_kept_and_fetchable_after_the_session_and_a_restart(
    backend: Backend,
) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let (hook, seen) = support::hooks::receiver().await;
    let r = s
        .post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": hook, "event_types": ["session.download.completed"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = session_on_page(&s, &key, &site).await;
    let expected = pages::bytes_of(300_000);

    let r = click_and_wait(&s, &key, &sid, "#report").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = r.json()["results"][1]["value"].clone();
    assert_eq!(done["filename"], "report Q3.csv", "{done}");
    assert_eq!(done["size"], 300_000);
    assert_eq!(done["sha256"], hex(&Sha256::digest(&expected)));

    let list = s.get(&key, &format!("/v1/sessions/{sid}/downloads")).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    let d = &list["data"][0];
    assert_eq!(d["state"], "completed");
    assert_eq!(d["mime_type"], "text/csv");
    assert_eq!(d["source_url"], site.url("/bytes/300000/report%20Q3.csv"));
    let url = d["url"].as_str().expect("url").to_owned();
    let path = url
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .expect("path");

    let r = s.get(&key, &path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, expected, "the bytes are the page's");
    let disposition = r
        .header("content-disposition")
        .unwrap_or_default()
        .to_owned();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains("report%20Q3.csv"),
        "{disposition}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    // The webhook says so, with the same facts.
    let arrived = support::eventually(std::time::Duration::from_secs(15), async || {
        seen.events()
            .iter()
            .any(|e| e["type"] == "session.download.completed")
    })
    .await;
    assert!(arrived, "session.download.completed delivered");
    let event = seen
        .events()
        .into_iter()
        .find(|e| e["type"] == "session.download.completed")
        .expect("event");
    assert_eq!(event["data"]["download_id"], d["id"], "{event}");
    assert_eq!(event["data"]["sha256"], done["sha256"]);
    assert_eq!(event["data"]["size"], 300_000);

    // A second file, and both in one archive that a standard reader opens and checks.
    let r = click_and_wait(&s, &key, &sid, "#notes").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let zip = s
        .get(&key, &format!("/v1/sessions/{sid}/downloads.zip"))
        .await;
    assert_eq!(zip.status, 200, "{}", zip.text());
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    let archive = env.dir.path().join("downloads.zip");
    std::fs::write(&archive, &zip.bytes).expect("write zip");
    let listing = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib, json, sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None\n\
             print(json.dumps({n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}))",
        ])
        .arg(&archive)
        .output()
        .expect("python3");
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let members: Value = serde_json::from_slice(&listing.stdout).expect("json");
    assert_eq!(
        members,
        json!({
            "report Q3.csv": hex(&Sha256::digest(&expected)),
            "notes.txt": hex(&Sha256::digest(pages::bytes_of(1000))),
        })
    );

    // The usage meter counts the kept bytes.
    let usage = s.get(&key, "/v1/usage").await.json();
    assert_eq!(
        usage["meters"]["download_bytes"]["used"],
        json!(301_000.0),
        "{usage}"
    );

    // The session ends: its file stays.
    assert_eq!(
        s.delete(&key, &format!("/v1/sessions/{sid}")).await.status,
        200
    );
    assert_eq!(s.get(&key, &path).await.bytes, expected);
    // A restart: still there (sealed in the blob store, not in the browser's directory).
    s.terminate();
    let s = env.start();
    assert_eq!(s.get(&key, &path).await.bytes, expected);
    assert!(!s.log().contains("panicked"));
}

async fn a_download_over_the_plan_is_cancelled_and_marked_too_large(backend: Backend) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let mut env = Env::new(backend);
    let tiers = env.dir.path().join("tiers.json");
    std::fs::write(
        &tiers,
        json!({"self_hosted": {
            "display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": null, "max_session_seconds": 3600,
            "idle_timeout_seconds": 600, "monthly_sessions": null,
            "monthly_session_minutes": null, "rate_limit_per_second": 100,
            "rate_limit_burst": 100, "max_profiles": null, "max_profile_state_bytes": 1048576,
            "max_download_bytes": 1000000, "max_session_download_bytes": 1000000,
            "max_upload_bytes": 1000, "max_session_upload_bytes": 1500
        }})
        .to_string(),
    )
    .expect("tiers");
    env.set("DRIFTSTACK_TIERS_FILE", &tiers.display().to_string());
    let s = env.start();
    let key = s.key().to_owned();
    let sid = session_on_page(&s, &key, &site).await;

    // A download that never ends stops only if it is cancelled as it grows.
    let r = click_and_wait(&s, &key, &sid, "#endless").await;
    let doc = r.assert_problem(422, "action_failed");
    assert!(
        doc["failed_action"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("larger than your plan allows")),
        "{doc}"
    );
    // And one that finishes before its size is seen is refused when it is kept.
    let r = click_and_wait(&s, &key, &sid, "#big").await;
    let doc = r.assert_problem(422, "action_failed");
    assert!(
        doc["failed_action"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("larger than your plan allows")),
        "{doc}"
    );
    let list = s
        .get(&key, &format!("/v1/sessions/{sid}/downloads"))
        .await
        .json();
    assert_eq!(list["data"][1]["state"], "too_large", "{list}");
    let d = &list["data"][0];
    assert_eq!(d["state"], "too_large", "{list}");
    assert!(d["url"].is_null());
    let id = d["id"].as_str().expect("id");
    s.get(&key, &format!("/v1/sessions/{sid}/downloads/{id}"))
        .await
        .assert_problem(409, "download_not_ready");
    // Nothing of it is left in the session's directory.
    let leftovers: Vec<_> = walk(&std::env::temp_dir())
        .into_iter()
        .filter(|p| p.contains(&format!("driftstack-{}", s.pid())) && p.contains("/downloads/"))
        .collect();
    assert!(
        support::eventually(std::time::Duration::from_secs(5), async || {
            walk(&std::env::temp_dir()).iter().all(|p| {
                !(p.contains(&format!("driftstack-{}", s.pid())) && p.contains("/downloads/"))
            })
        })
        .await,
        "{leftovers:?}"
    );

    // Uploads over the plan's limit are refused and leave nothing behind.
    let r = s
        .send(
            reqwest::Client::new()
                .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.bin")))
                .bearer_auth(&key)
                .body(vec![7u8; 5000]),
        )
        .await;
    r.assert_problem(413, "upload_too_large");
    let big = support::TempDir::new("big");
    let file = big.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 5000]).expect("file");
    let (status, doc) = curl_form(&s, &key, &sid, &["-F", &format!("f=@{}", file.display())]).await;
    assert_eq!(
        (status, doc["code"].as_str()),
        (413, Some("upload_too_large")),
        "{doc}"
    );
    // With an Idempotency-Key the body is spooled to disk first, under the same limit.
    let r = s
        .send(
            reqwest::Client::new()
                .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.bin")))
                .bearer_auth(&key)
                .header("idempotency-key", "big-once")
                .body(vec![7u8; 5000]),
        )
        .await;
    r.assert_problem(413, "upload_too_large");
    let uploads: Vec<_> = walk(&std::env::temp_dir())
        .into_iter()
        .filter(|p| p.contains(&format!("driftstack-{}", s.pid())) && p.contains("/uploads/"))
        .collect();
    assert!(
        uploads.is_empty(),
        "refused uploads leave nothing: {uploads:?}"
    );

    // An upload abandoned mid-body (the client goes away) leaves nothing behind.
    let stalled = futures::stream::unfold(0u8, |step| async move {
        match step {
            0 => Some((Ok::<_, std::io::Error>(vec![3u8; 500]), 1)),
            _ => futures::future::pending().await,
        }
    });
    let abandoned = reqwest::Client::new()
        .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=stalled.bin")))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(stalled))
        .send();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), abandoned).await;
    let clean = support::eventually(std::time::Duration::from_secs(10), async || {
        walk(&std::env::temp_dir())
            .iter()
            .all(|p| !(p.contains(&format!("driftstack-{}", s.pid())) && p.contains("stalled.bin")))
    })
    .await;
    assert!(clean, "an abandoned upload's partial file was left behind");

    // Two uploads sent in parallel cannot pass the session's limit (1500) between them: each
    // carries 900 bytes, sending 800, then the rest once the other has sent its 800 too.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let parallel = |barrier: std::sync::Arc<tokio::sync::Barrier>| {
        let body = futures::stream::unfold(0u8, move |step| {
            let barrier = barrier.clone();
            async move {
                match step {
                    0 => Some((Ok::<_, std::io::Error>(vec![1u8; 800]), 1)),
                    1 => {
                        barrier.wait().await;
                        Some((Ok(vec![2u8; 100]), 2))
                    }
                    _ => None,
                }
            }
        });
        reqwest::Client::new()
            .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=p.bin")))
            .bearer_auth(&key)
            .body(reqwest::Body::wrap_stream(body))
            .send()
    };
    let (a, b) = tokio::join!(parallel(barrier.clone()), parallel(barrier));
    let statuses = [a, b].map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0));
    assert!(
        statuses.contains(&413) && statuses.iter().all(|s| [201, 413].contains(s)),
        "at most one of two parallel 900-byte uploads fits 1500 bytes: {statuses:?}"
    );
    let stored: u64 = walk(&std::env::temp_dir())
        .into_iter()
        .filter(|p| p.contains(&format!("driftstack-{}", s.pid())) && p.contains("/uploads/"))
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(stored <= 1500, "{stored} bytes stored");
}

/// Every file path below `root` (not following links), quietly skipping unreadable ones.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => out.push(path.display().to_string()),
                _ => {}
            }
        }
    }
    out
}

async fn an_upload_reaches_the_page_through_set_files(backend: Backend) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = session_on_page(&s, &key, &site).await;

    let a = upload_to(
        &s,
        &key,
        &sid,
        "../../etc/notes.txt",
        b"hello from the client",
    )
    .await;
    assert_eq!(a["filename"], "notes.txt", "path parts are dropped: {a}");
    assert_eq!(a["size"], 21);
    assert!(
        a["path"].as_str().is_some_and(|p| p.contains("/uploads/")),
        "{a}"
    );
    let b = upload_to(&s, &key, &sid, "second.bin", b"\x00\x01\x02").await;

    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [
                {"type": "set_files", "selector": "#pick", "uploads": [a["id"], b["id"]]},
                {"type": "evaluate", "expression": "(async () => { const f = document.querySelector('#pick').files; return {n: f.length, name: f[0].name, text: await f[0].text(), size: f[1].size}; })()"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["results"][1]["value"],
        json!({"n": 2, "name": "notes.txt", "text": "hello from the client", "size": 3})
    );

    // A multipart form, as curl (or a browser's form) sends it: its file part is the upload,
    // other fields are ignored.
    let src = support::TempDir::new("form");
    let file = src.path().join("local name.txt");
    std::fs::write(&file, "sent as a form").expect("file");
    let (status, form) = curl_form(
        &s,
        &key,
        &sid,
        &[
            "-F",
            "note=ignored",
            "-F",
            &format!("file=@{};filename=form.txt", file.display()),
        ],
    )
    .await;
    assert_eq!(status, 201, "{form}");
    assert_eq!(
        (form["filename"].as_str(), form["size"].as_i64()),
        (Some("form.txt"), Some(14))
    );
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [
                {"type": "set_files", "selector": "#pick", "uploads": [form["id"]]},
                {"type": "evaluate", "expression": "document.querySelector('#pick').files[0].text()"}
            ]}),
        )
        .await;
    assert_eq!(
        r.json()["results"][1]["value"],
        "sent as a form",
        "{}",
        r.text()
    );
    // Forms that are not one file are refused with the reason, and leave nothing behind.
    let two = format!("file=@{}", file.display());
    let (status, doc) = curl_form(&s, &key, &sid, &["-F", &two, "-F", &two]).await;
    assert_eq!(status, 422, "{doc}");
    assert!(
        doc["errors"]["body"]
            .as_str()
            .is_some_and(|m| m.contains("one file")),
        "{doc}"
    );
    let (status, doc) = curl_form(&s, &key, &sid, &["-F", "note=no file here"]).await;
    assert_eq!(status, 422, "{doc}");
    assert!(
        doc["errors"]["body"]
            .as_str()
            .is_some_and(|m| m.contains("no file part")),
        "{doc}"
    );
    for (kind, body) in [
        ("multipart/form-data", "--x\r\n".to_owned()),
        (
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nno end"
                .to_owned(),
        ),
    ] {
        let r = s
            .send(
                reqwest::Client::new()
                    .post(s.url(&format!("/v1/sessions/{sid}/uploads")))
                    .bearer_auth(&key)
                    .header("content-type", kind)
                    .body(body),
            )
            .await;
        r.assert_problem(400, "upload_malformed");
    }

    // An id that is not an upload of this session is refused before the page is touched.
    let other = s.post(&key, "/v1/sessions", json!({})).await.json();
    let other_sid = other["id"].as_str().expect("id");
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{other_sid}/actions"),
            json!({"actions": [{"type": "set_files", "selector": "input", "uploads": [a["id"]]}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.json()["errors"]["actions[0].uploads"].is_string(),
        "{}",
        r.text()
    );
    let r = s
        .post(
            &key,
            &format!("/v1/sessions/{sid}/actions"),
            json!({"actions": [{"type": "set_files", "selector": "#pick", "uploads": ["/etc/passwd"]}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
}

async fn another_account_gets_404_for_every_file_route(backend: Backend) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let sid = session_on_page(&s, &key, &site).await;
    let r = click_and_wait(&s, &key, &sid, "#report").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = s
        .get(&key, &format!("/v1/sessions/{sid}/downloads"))
        .await
        .json();
    let id = list["data"][0]["id"].as_str().expect("id").to_owned();

    env.cli(&["accounts", "create", "--email", "intruder@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "intruder@example.com"]);
    s.get(&other, &format!("/v1/sessions/{sid}/downloads"))
        .await
        .assert_problem(404, "not_found");
    s.get(&other, &format!("/v1/sessions/{sid}/downloads/{id}"))
        .await
        .assert_problem(404, "not_found");
    s.get(&other, &format!("/v1/sessions/{sid}/downloads.zip"))
        .await
        .assert_problem(404, "not_found");
    let r = s
        .send(
            reqwest::Client::new()
                .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.txt")))
                .bearer_auth(&other)
                .body("intruder"),
        )
        .await;
    r.assert_problem(404, "not_found");
    // With an Idempotency-Key too (whose layer reads a body before the handler does).
    let r = s
        .send(
            reqwest::Client::new()
                .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.txt")))
                .bearer_auth(&other)
                .header("idempotency-key", "intruder-1")
                .body("intruder"),
        )
        .await;
    r.assert_problem(404, "not_found");
    // A read-only credential of the owner's own account reads the files but puts none into the
    // session.
    let reader = env.cli(&[
        "keys",
        "create",
        "--email",
        "owner@localhost",
        "--scopes",
        "sessions:read",
    ]);
    let listed = s
        .get(&reader, &format!("/v1/sessions/{sid}/downloads"))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    s.send(
        reqwest::Client::new()
            .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.txt")))
            .bearer_auth(&reader)
            .body("reader"),
    )
    .await
    .assert_problem(403, "missing_permission");
    s.send(
        reqwest::Client::new()
            .post(s.url(&format!("/v1/sessions/{sid}/uploads?filename=x.txt")))
            .bearer_auth(&reader)
            .header("idempotency-key", "reader-1")
            .body("reader"),
    )
    .await
    .assert_problem(403, "missing_permission");
    s.post(
        &reader,
        &format!("/v1/sessions/{sid}/actions"),
        json!({"actions": [{"type": "wait_for_download"}]}),
    )
    .await
    .assert_problem(403, "missing_permission");
    // The owner's own routes still answer.
    assert_eq!(
        s.get(&key, &format!("/v1/sessions/{sid}/downloads/{id}"))
            .await
            .status,
        200
    );
}

/// The session's completed downloads, once there are `n`.
async fn completed_downloads(s: &Server, key: &str, sid: &str, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    let ok = support::eventually(std::time::Duration::from_secs(20), async || {
        let list = s
            .get(key, &format!("/v1/sessions/{sid}/downloads"))
            .await
            .json();
        found = list["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["state"] == "completed")
            .collect();
        found.len() >= n
    })
    .await;
    assert!(ok, "{n} completed download(s): {found:?}");
    found
}

/// An upload sent by curl's `-F` form fields: (status, answer).
async fn curl_form(s: &Server, key: &str, sid: &str, fields: &[&str]) -> (u16, Value) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {key}"))
        .args(fields)
        .arg(s.url(&format!("/v1/sessions/{sid}/uploads")))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (
        status.trim().parse().expect("status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// An upload through the Rust SDK.
async fn upload_to(s: &Server, key: &str, sid: &str, name: &str, body: &'static [u8]) -> Value {
    let query = driftstack_sdk::UploadQuery {
        filename: Some(name.to_owned()),
    };
    let up = s
        .sdk(key)
        .upload(sid, &query, body)
        .await
        .expect("upload through the SDK");
    json!({"id": up.id, "filename": up.filename, "size": up.size, "path": up.path})
}

async fn stock_clients_download_and_upload_through_connect_url(backend: Backend) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let expected = pages::bytes_of(300_000);
    // A session whose upload the others must not be able to name.
    let bystander = session_on_page(&s, &key, &site).await;
    let foreign = upload_to(&s, &key, &bystander, "secret.txt", b"not yours").await;
    let foreign_path = foreign["path"].as_str().expect("path").to_owned();

    for client in ["playwright", "puppeteer"] {
        let created = s.post(&key, "/v1/sessions", json!({})).await.json();
        let sid = created["id"].as_str().expect("id").to_owned();
        let connect = created["connect_url"]
            .as_str()
            .expect("connect_url")
            .to_owned();
        let up = upload_to(&s, &key, &sid, "from-client.txt", b"uploaded by path").await;
        let path = up["path"].as_str().expect("path");
        // Puppeteer hands the path to the browser (`DOM.setFileInputFiles`), which may open
        // only this session's uploads; Playwright reads a path on the client's own machine and
        // sends the bytes, so the browser opens nothing (and a remote client has no such path).
        let page_url = site.url("/files");
        let mut args = vec![client, connect.as_str(), page_url.as_str(), path];
        if client == "puppeteer" {
            args.push(&foreign_path);
        }
        let seen = support::cdp::node("files.mjs", &args);
        assert_eq!(
            seen["picked"],
            json!({"name": "from-client.txt", "text": "uploaded by path"}),
            "{client}: {seen}"
        );
        if client == "puppeteer" {
            assert!(
                seen["foreign"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("refused")),
                "the browser must not open another session's upload: {seen}"
            );
        } else {
            assert_eq!(
                seen["download_event"], true,
                "Playwright sees the download: {seen}"
            );
        }
        let done = completed_downloads(&s, &key, &sid, 1).await;
        assert_eq!(done[0]["filename"], "report Q3.csv", "{client}");
        let id = done[0]["id"].as_str().expect("id");
        let bytes = s
            .get(&key, &format!("/v1/sessions/{sid}/downloads/{id}"))
            .await
            .bytes;
        assert_eq!(bytes, expected, "{client}: the bytes are the page's");
    }
    assert!(!s.log().contains("panicked"));
}

async fn downloads_are_deleted_after_the_plans_retention(backend: Backend) {
    let site = pages::start_with(vec![("/files", DOWNLOAD_PAGE.to_owned())]).await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_FILE_SWEEP_SECONDS", "1");
    // The blob store is counted below: no last frame of the session (expired by the clock jump)
    // may share it (last frames are tested in tests/inspector.rs).
    env.set("DRIFTSTACK_LAST_FRAME", "off");
    let s = env.start();
    let key = s.key().to_owned();
    let sid = session_on_page(&s, &key, &site).await;
    let r = click_and_wait(&s, &key, &sid, "#notes").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["results"][1]["value"]["download_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/sessions/{sid}/downloads/{id}");
    assert_eq!(s.get(&key, &path).await.status, 200);
    let blobs = env.dir.path().join("data/profiles");
    assert_eq!(
        walk(&blobs).len(),
        1,
        "the sealed bytes are in the blob store"
    );

    // A day short of the self-hosted plan's 30 days: still there.
    env.advance_clock(29 * 86_400);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(s.get(&key, &path).await.status, 200);
    // Past it: the row and the bytes go.
    env.advance_clock(31 * 86_400);
    let gone = support::eventually(std::time::Duration::from_secs(15), async || {
        s.get(&key, &path).await.status == 404
    })
    .await;
    assert!(gone, "the download expired");
    let list = s
        .get(&key, &format!("/v1/sessions/{sid}/downloads"))
        .await
        .json();
    assert_eq!(list["data"], json!([]), "{list}");
    assert!(walk(&blobs).is_empty(), "{:?}", walk(&blobs));
}
