//! A minimal raw CDP client over a WebSocket, for tests that speak the protocol the way an
//! attacker holding a `connect_url` (or, to test the second wall, the browser's own DevTools
//! port) would.

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

pub struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: i64,
}

impl Cdp {
    pub async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("CDP connect to {url}: {e}"));
        Cdp { ws, next_id: 0 }
    }

    /// Sends one command (to `session` when given) and answers its reply: `Ok(result)` or
    /// `Err(error)`. Events in between are skipped.
    pub async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send a CDP command");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no reply to {method} within 30 s"));
            let Some(Ok(Message::Text(text))) = next else {
                match next {
                    Some(Ok(_)) => continue,
                    other => panic!("CDP socket ended while waiting for {method}: {other:?}"),
                }
            };
            let reply: Value = serde_json::from_str(text.as_str()).expect("CDP JSON");
            if reply["id"].as_i64() == Some(id) {
                return match reply.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(reply["result"].clone()),
                };
            }
        }
    }

    /// Attaches to the first page target whose URL starts with `url_prefix` and answers the
    /// flat session id.
    pub async fn attach_page(&mut self, url_prefix: &str) -> String {
        let targets = self
            .call(None, "Target.getTargets", json!({}))
            .await
            .expect("Target.getTargets");
        let target = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url_prefix))
            })
            .unwrap_or_else(|| panic!("no page at {url_prefix}: {targets}"))
            .clone();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await
            .expect("Target.attachToTarget");
        attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned()
    }

    /// Evaluates `expression` in the page (awaiting promises) and answers its JSON value.
    pub async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await
            .expect("Runtime.evaluate");
        r["result"]["value"].clone()
    }
}

/// Connects straight to the DevTools port of the server's browser showing `url_prefix` (found
/// through the browsers' own directories, which the test, as root, can read) and attaches to
/// that page: CDP with no filter in between.
pub async fn unfiltered_page(
    server_pid: u32,
    url_prefix: &str,
) -> (Cdp, String, std::path::PathBuf) {
    let root = std::env::temp_dir().join(format!("driftstack-{server_pid}"));
    for dir in std::fs::read_dir(&root)
        .expect("the browsers' root")
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(dir.path().join("DevToolsActivePort")) else {
            continue;
        };
        let mut lines = text.lines();
        let (Some(port), Some(path)) = (lines.next(), lines.next()) else {
            continue;
        };
        let mut cdp = Cdp::connect(&format!("ws://127.0.0.1:{}{}", port.trim(), path.trim())).await;
        let targets = cdp
            .call(None, "Target.getTargets", json!({}))
            .await
            .expect("targets");
        if targets.to_string().contains(url_prefix) {
            let page = cdp.attach_page(url_prefix).await;
            return (cdp, page, dir.path());
        }
    }
    panic!("no browser under {} shows {url_prefix}", root.display());
}

/// The main process of the server's browser showing `url_prefix`.
pub async fn browser_pid_showing(server_pid: u32, url_prefix: &str) -> u32 {
    let (_, _, dir) = unfiltered_page(server_pid, url_prefix).await;
    let needle = format!("--user-data-dir={}", dir.display());
    super::main_browser_processes(server_pid)
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == needle.as_bytes()))
        })
        .unwrap_or_else(|| panic!("no browser process with {needle}"))
}

/// Runs a script of tests/cdp with node and returns the JSON line it prints last.
pub fn node(script: &str, args: &[&str]) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cdp");
    let out = std::process::Command::new("node")
        .arg(format!("{dir}/{script}"))
        .args(args)
        .output()
        .expect("node (tests/cdp needs `npm ci`; scripts/test runs it)");
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("JSON line");
    serde_json::from_str(line).expect("JSON")
}
