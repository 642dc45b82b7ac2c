//! Cookies move between browsers through a profile state: read from one session's context with
//! every attribute, written into another's, and sent by it — with real Chromium.

use std::time::Duration;

use common::egress::{EgressPolicy, Network};
use runner::{WaitUntil, chromium::LaunchOptions, pool::launch_warm};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// `/set` sets three cookies; `/echo` answers the Cookie header it got.
async fn site() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let cookie = req
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("cookie:"))
                    .map(|l| l[7..].trim().to_owned())
                    .unwrap_or_default();
                let (headers, body) = if req.starts_with("GET /set") {
                    (
                        "set-cookie: session_id=abc; Path=/; HttpOnly\r\n\
                         set-cookie: pref=dark; Path=/; Max-Age=3600; SameSite=Strict\r\n"
                            .to_owned(),
                        "<title>set</title>".to_owned(),
                    )
                } else {
                    (
                        String::new(),
                        format!("<title>echo</title><pre id=c>{cookie}</pre>"),
                    )
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_carry_over_between_browsers() {
    let base = site().await;
    let root = std::env::temp_dir().join(format!("ds-runner-state-{}", std::process::id()));
    let policy = EgressPolicy::new(vec![Network::parse("127.0.0.1/32").expect("net")]);
    let opts = LaunchOptions::detect(None, root.clone(), policy).expect("a browser is installed");

    let first = launch_warm(&opts).await.expect("launch");
    let nav = first
        .page
        .navigate(
            &format!("{base}/set"),
            WaitUntil::Load,
            Duration::from_secs(20),
        )
        .await
        .expect("navigate");
    assert_eq!(nav.status, Some(200));
    first
        .page
        .run_actions(
            &[runner::Action::Evaluate {
                expression:
                    "localStorage.setItem('theme', 'dark'); localStorage.setItem('n', '42')".into(),
            }],
            Duration::from_secs(5),
            &runner::chromium::ActionContext {
                upload_paths: Default::default(),
                downloads: None,
            },
        )
        .await
        .expect("set localStorage");
    let (origin, storage) = first
        .page
        .local_storage()
        .await
        .expect("read")
        .expect("an origin");
    assert_eq!(origin, base);
    assert_eq!(
        storage.local_storage.get("theme").map(String::as_str),
        Some("dark")
    );
    let cookies = first
        .process
        .cookies(&first.page)
        .await
        .expect("read cookies");
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let sid = cookies
        .iter()
        .find(|c| c.name == "session_id")
        .expect("session cookie");
    assert!(
        sid.http_only && sid.expires.is_none(),
        "session cookies keep their attributes: {sid:?}"
    );
    let pref = cookies.iter().find(|c| c.name == "pref").expect("pref");
    assert!(
        pref.expires.is_some() && pref.same_site.as_deref() == Some("Strict"),
        "{pref:?}"
    );

    let second = launch_warm(&opts).await.expect("launch");
    let before = second.process.cookies(&second.page).await.expect("read");
    assert!(before.is_empty(), "a fresh browser starts empty");
    second
        .process
        .set_cookies(&second.page, &cookies)
        .await
        .expect("write cookies");
    let mut origins = std::collections::BTreeMap::new();
    origins.insert(origin.clone(), storage.clone());
    second
        .page
        .restore_local_storage(&origins)
        .await
        .expect("restore localStorage");
    second
        .page
        .navigate(
            &format!("{base}/echo"),
            WaitUntil::Load,
            Duration::from_secs(20),
        )
        .await
        .expect("navigate");
    let text = second
        .page
        .capture(
            &runner::CaptureSpec {
                format: runner::CaptureFormat::Text,
                full_page: false,
                selector: None,
                quality: None,
            },
            Duration::from_secs(10),
        )
        .await
        .expect("text");
    let sent = String::from_utf8_lossy(&text).to_string();
    assert!(
        sent.contains("session_id=abc") && sent.contains("pref=dark"),
        "sent: {sent}"
    );
    let copied = second.process.cookies(&second.page).await.expect("read");
    assert_eq!(copied.len(), 2);
    let (origin2, storage2) = second
        .page
        .local_storage()
        .await
        .expect("read")
        .expect("origin");
    assert_eq!(origin2, origin);
    assert_eq!(
        storage2.local_storage, storage.local_storage,
        "localStorage came along"
    );

    first.process.kill().await;
    second.process.kill().await;
    let _ = std::fs::remove_dir_all(&root);
}
