//! The client SDKs against the real binary. Rust (sdk/rust, generated from openapi.json): the
//! generated code must match the spec (drift check), and the client drives sessions, profiles,
//! pagination, problems, webhooks with signature verification, and retries. Python and
//! TypeScript (sdk/python, sdk/typescript): their own suites (pytest; Node's test runner) run
//! with this server's address, an API key and a page to load, and the TypeScript declarations
//! are type-checked with `tsc`; each suite checks that every route its client names is in the
//! committed openapi.json.
//! `scripts/test` prepares the tools (a venv with pytest and the SDK installed by
//! `pip install ./sdk/python`; `npm ci` in sdk/typescript).

mod support;

use std::{
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use driftstack_sdk as sdk;
use futures::TryStreamExt;
use support::{Backend, Env, eventually, hooks, pages};

/// Runs a tool, fails with its output unless it succeeds, and returns its stdout.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    eprintln!(
        "{what}: {}",
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    );
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_typescript_clients_pass_their_suites_against_the_server() {
    let root = env!("CARGO_MANIFEST_DIR");
    let site = pages::start().await;
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_POOL_SIZE", "1");
    let s = env.start();
    let page = site.url("/");

    let python = support::tool("python");
    let report = run(
        "pytest sdk/python",
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "sdk/python/tests",
            ])
            .current_dir(root)
            // The working copy, not a stale install.
            .env("PYTHONPATH", format!("{root}/sdk/python"))
            .env("DRIFTSTACK_URL", &s.base)
            .env("DRIFTSTACK_API_KEY", s.key())
            .env("DRIFTSTACK_PAGE_URL", &page),
    );

    // Nothing may skip itself for want of the server.
    assert!(
        report.contains(" passed") && !report.contains("skipped"),
        "{report}"
    );

    let report = run(
        "node --test sdk/typescript",
        Command::new("node")
            .args(["--test", "test/"])
            .current_dir(format!("{root}/sdk/typescript"))
            .env("DRIFTSTACK_URL", &s.base)
            .env("DRIFTSTACK_API_KEY", s.key())
            .env("DRIFTSTACK_PAGE_URL", &page),
    );
    assert!(
        report.contains("# fail 0") && report.contains("# skipped 0"),
        "{report}"
    );
    let tsc = format!("{root}/sdk/typescript/node_modules/.bin/tsc");
    assert!(
        std::path::Path::new(&tsc).exists(),
        "TypeScript is not installed: run scripts/test (it runs npm ci in sdk/typescript)"
    );
    run(
        "tsc sdk/typescript",
        Command::new(&tsc)
            .args(["-p", "test/tsconfig.json"])
            .current_dir(format!("{root}/sdk/typescript")),
    );
    assert!(!s.log().contains("panicked"), "a panic in the server log");
}

#[test]
fn the_rust_sdk_matches_openapi_json() {
    let root = env!("CARGO_MANIFEST_DIR");
    run(
        "sdk/rust/generate.py --check",
        Command::new("python3")
            .args(["sdk/rust/generate.py", "--check"])
            .current_dir(root),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_drives_the_api() {
    let site = pages::start().await;
    let env = Env::new(Backend::Sqlite);
    let s = env.start();
    let ds = s.sdk(s.key());

    // The quickstart: a session, a navigation, a PNG.
    let session = ds
        .create_session(Some(&sdk::CreateSessionRequest {
            viewport: Some(sdk::ViewportBody {
                width: 800,
                height: 600,
            }),
            ..Default::default()
        }))
        .await
        .expect("create");
    assert!(
        session
            .connect_url
            .as_deref()
            .is_some_and(|u| u.starts_with("ws://"))
    );
    let nav = ds
        .navigate(
            &session.id,
            &sdk::NavigateRequest {
                url: site.url("/"),
                wait_until: Some(sdk::WaitUntilBody::Load),
                timeout_ms: None,
            },
        )
        .await
        .expect("navigate");
    assert_eq!(nav.status, Some(200));
    let results = ds
        .run_actions(
            &session.id,
            &sdk::ActionsRequest {
                actions: vec![sdk::ActionBody::Evaluate {
                    expression: "1 + 1".into(),
                }],
                timeout_ms: None,
            },
        )
        .await
        .expect("actions");
    assert_eq!(results.results[0].value, Some(serde_json::json!(2)));
    let png = ds
        .capture(&session.id, &sdk::CaptureRequest::png())
        .await
        .expect("capture");
    assert!(png.starts_with(b"\x89PNG"));
    let closed = ds.release_session(&session.id).await.expect("release");
    assert_eq!(closed.status, "closed");

    // Problems are typed errors.
    let err = ds
        .get_session("ses_00000000000000000000000000000000")
        .await
        .expect_err("unknown");
    assert_eq!(err.status(), Some(404));
    let err = ds
        .create_profile(&sdk::CreateProfileRequest {
            name: String::new(),
            fingerprint: None,
        })
        .await
        .expect_err("empty name");
    assert_eq!(err.code(), Some("validation_failed"));
    assert!(err.problem().is_some_and(|p| p.errors.contains_key("name")));

    // Profiles, snapshots and pagination over several pages.
    let mut made = Vec::new();
    for i in 0..5 {
        let p = ds
            .create_profile(&sdk::CreateProfileRequest {
                name: format!("rust {i}"),
                fingerprint: None,
            })
            .await
            .expect("profile");
        made.push(p.id);
    }
    let small = s.sdk(s.key()).with_page_size(2);
    let all: Vec<sdk::ProfileResponse> = small
        .list_profiles_all(sdk::ListProfilesQuery::default())
        .try_collect()
        .await
        .expect("pages");
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    for id in &made {
        assert!(ids.contains(&id.as_str()), "{id} listed");
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no item twice across pages");
    let snap = ds
        .create_snapshot(
            &made[0],
            Some(&sdk::CreateSnapshotRequest {
                name: Some("first".into()),
            }),
        )
        .await
        .expect("snapshot");
    let restored = ds
        .restore_snapshot(&made[0], &snap.id)
        .await
        .expect("restore");
    assert_eq!(restored.id, made[0]);

    // Webhooks: the event arrives signed, and the SDK's verifier accepts it (and nothing else).
    let (url, seen) = hooks::receiver().await;
    let endpoint = ds
        .create_endpoint(&sdk::CreateEndpointRequest {
            url,
            description: None,
            event_types: Some(vec!["profile.created".into()]),
        })
        .await
        .expect("endpoint");
    let secret = endpoint.secret.clone().expect("secret shown once");
    let p = ds
        .create_profile(&sdk::CreateProfileRequest {
            name: "hooked".into(),
            fingerprint: None,
        })
        .await
        .expect("profile");
    assert!(
        eventually(Duration::from_secs(20), async || { !seen.all().is_empty() }).await,
        "the event arrives"
    );
    let (headers, body) = seen.all()[0].clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs(),
    )
    .expect("now");
    let event = sdk::webhooks::verify(&secret, header, &body, now, 300).expect("verifies");
    assert_eq!(event.kind, "profile.created");
    assert_eq!(event.data["profile_id"], p.id.as_str());
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(
        sdk::webhooks::verify(&secret, header, &tampered, now, 300),
        Err(sdk::webhooks::VerifyError::Signature)
    );
    assert!(!s.log().contains("panicked"), "a panic in the server log");
}

#[tokio::test]
async fn the_rust_sdk_retries_a_post_with_the_same_idempotency_key() {
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let k = keys.clone();
    let app = axum::Router::new().route(
        "/v1/profiles",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let k = k.clone();
            async move {
                let n = k
                    .lock()
                    .map(|mut v| {
                        v.push(
                            headers
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned(),
                        );
                        v.len()
                    })
                    .unwrap_or(0);
                if n == 1 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "0"), ("content-type", "application/problem+json")],
                        r#"{"title":"busy","status":503,"code":"service_unavailable","detail":"busy"}"#,
                    )
                } else {
                    (
                        axum::http::StatusCode::CREATED,
                        [("retry-after", "0"), ("content-type", "application/json")],
                        r#"{"id":"prof_1","name":"x","fingerprint":{"extra_header_names":[]},"created_at":"t","updated_at":"t"}"#,
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let ds = sdk::Client::new(&base, "ds_test_x");
    let p = ds
        .create_profile(&sdk::CreateProfileRequest {
            name: "x".into(),
            fingerprint: None,
        })
        .await
        .expect("created after one retry");
    assert_eq!(p.id, "prof_1");
    let keys = keys.lock().expect("keys").clone();
    assert_eq!(keys.len(), 2);
    assert!(!keys[0].is_empty() && keys[0] == keys[1], "{keys:?}");
}

/// The READMEs' promises, from the packages as users install them: `npm install ./sdk/typescript`
/// and `pip install ./sdk/python` (done by scripts/test into its venv), the quickstart gives a
/// PNG, and the Playwright example connects through `connect_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quickstarts_work_from_the_installed_packages() {
    let root = env!("CARGO_MANIFEST_DIR");
    let site = pages::start().await;
    let env = Env::new(Backend::Sqlite);
    let s = env.start();
    let page = site.url("/");
    let dir = support::TempDir::new("quickstart");
    let d = dir.path();
    std::fs::write(
        d.join("package.json"),
        r#"{"name": "quickstart", "private": true, "type": "module"}"#,
    )
    .expect("package.json");
    run(
        "npm install ./sdk/typescript",
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .arg(format!("{root}/sdk/typescript"))
            .arg(format!("{root}/tests/cdp/node_modules/playwright-core"))
            .current_dir(d),
    );
    std::fs::write(
        d.join("quickstart.mjs"),
        r#"import { writeFile } from "node:fs/promises";
import { Client } from "driftstack";

const ds = new Client(process.env.DRIFTSTACK_API_KEY, { baseUrl: process.env.DRIFTSTACK_URL });
const session = await ds.sessions.create();
await ds.sessions.navigate(session.id, process.env.DRIFTSTACK_PAGE_URL);
const png = await ds.sessions.capture(session.id, { format: "png" });
await writeFile("page.png", png);
await ds.sessions.release(session.id);
"#,
    )
    .expect("quickstart.mjs");
    std::fs::write(
        d.join("playwright.mjs"),
        r#"import { chromium } from "playwright-core";
import { Client } from "driftstack";

const ds = new Client(process.env.DRIFTSTACK_API_KEY, { baseUrl: process.env.DRIFTSTACK_URL });
const session = await ds.sessions.create();
const browser = await chromium.connectOverCDP(session.connect_url);
const page = browser.contexts()[0].pages()[0];
await page.goto(process.env.DRIFTSTACK_PAGE_URL);
await page.screenshot({ path: "playwright.png" });
await browser.close(); // disconnects; the session lives on until released
await ds.sessions.release(session.id);
console.log(JSON.stringify({ id: session.id }));
"#,
    )
    .expect("playwright.mjs");
    std::fs::write(
        d.join("quickstart.py"),
        r#"import os
from driftstack import Client

ds = Client(os.environ["DRIFTSTACK_API_KEY"], base_url=os.environ["DRIFTSTACK_URL"])
session = ds.sessions.create()
ds.sessions.navigate(session["id"], os.environ["DRIFTSTACK_PAGE_URL"])
png = ds.sessions.capture(session["id"], format="png")
open("page-py.png", "wb").write(png)
ds.sessions.release(session["id"])
"#,
    )
    .expect("quickstart.py");
    let with_env = |cmd: &mut Command| {
        cmd.current_dir(d)
            .env("DRIFTSTACK_URL", &s.base)
            .env("DRIFTSTACK_API_KEY", s.key())
            .env("DRIFTSTACK_PAGE_URL", &page);
    };
    let mut node = Command::new("node");
    node.arg("quickstart.mjs");
    with_env(&mut node);
    run("the TypeScript quickstart", &mut node);
    let mut pw = Command::new("node");
    pw.arg("playwright.mjs");
    with_env(&mut pw);
    let out = run("the Playwright example", &mut pw);
    let python = support::tool("python");
    let mut py = Command::new(&python);
    py.arg("quickstart.py");
    with_env(&mut py);
    run("the Python quickstart (installed package)", &mut py);

    for png in ["page.png", "playwright.png", "page-py.png"] {
        let bytes = std::fs::read(d.join(png)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is a PNG");
    }
    // The Playwright session was released.
    let id: serde_json::Value = serde_json::from_str(out.trim()).expect("id line");
    let sid = id["id"].as_str().expect("id").to_owned();
    let ds = s.sdk(s.key());
    assert!(
        eventually(Duration::from_secs(10), async || {
            ds.get_session(&sid)
                .await
                .is_ok_and(|x| x.ended_at.is_some())
        })
        .await,
        "the Playwright session is over"
    );
}
