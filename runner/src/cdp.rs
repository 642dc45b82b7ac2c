//! The policy for raw CDP connections (`GET /v1/sessions/{id}/cdp`).
//!
//! A raw CDP client drives the session's own Chromium process, which hosts nothing else, so most
//! of the protocol is safe to pass through. What could reach beyond the session is filtered here:
//! commands that touch the server's file system or processes, navigations to local schemes (the
//! egress proxy only sees network traffic), and a flood of browser contexts. `Browser.close` ends
//! the session (like `DELETE`) instead of killing a process the runner owns.

use serde_json::{Value, json};

/// What to do with one client → browser message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Forward,
    /// Forward this rewritten message instead.
    Rewrite(String),
    /// Answer the client with this error instead of forwarding.
    Refuse(String),
    /// Answer `{}` and end the session (the client asked to close the browser).
    EndSession,
}

/// Browser contexts a CDP client may create in one session.
pub const MAX_EXTRA_CONTEXTS: u32 = 3;

const BLOCKED: &[(&str, &str)] = &[
    ("Browser.crash", "would crash a process the runner owns"),
    (
        "Browser.crashGpuProcess",
        "would crash a process the runner owns",
    ),
    ("Browser.executeBrowserCommand", "is not available"),
    ("DOM.setFileInputFiles", "would read files of the server"),
    (
        "Extensions.loadUnpacked",
        "would load code from the server's disk",
    ),
    (
        "Target.exposeDevToolsProtocol",
        "would hand unfiltered CDP to page scripts",
    ),
    ("Tracing.start", "is not available"),
    ("Storage.setStorageBucketTracking", "is not available"),
];

const URL_PARAMS: &[(&str, &str)] = &[
    ("Page.navigate", "url"),
    ("Target.createTarget", "url"),
    ("Network.loadNetworkResource", "url"),
];

/// Schemes a CDP client may open; local ones would bypass the network egress guard.
fn allowed_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.is_empty()
        || lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower == "about:blank"
        || lower.starts_with("about:blank#")
        || lower.starts_with("data:")
}

/// The per-connection state of the filter.
#[derive(Default, Debug)]
pub struct CdpFilter {
    contexts_created: u32,
    /// Where downloads of this session may go (inside its browser's own temp dir).
    downloads_dir: String,
}

impl CdpFilter {
    pub fn new(downloads_dir: String) -> Self {
        CdpFilter {
            contexts_created: 0,
            downloads_dir,
        }
    }

    /// Judges one text message from the client.
    pub fn judge(&mut self, message: &str) -> Verdict {
        let Ok(msg) = serde_json::from_str::<Value>(message) else {
            return Verdict::Refuse("messages must be JSON".into());
        };
        let method = msg["method"].as_str().unwrap_or("");
        if method == "Browser.close" {
            return Verdict::EndSession;
        }
        if let Some((_, why)) = BLOCKED.iter().find(|(m, _)| *m == method) {
            return Verdict::Refuse(format!("{method} {why}"));
        }
        if let Some((_, param)) = URL_PARAMS.iter().find(|(m, _)| *m == method) {
            let url = msg["params"][param].as_str().unwrap_or("");
            if !allowed_url(url) {
                return Verdict::Refuse(format!(
                    "{method} may open only http, https, about:blank and data: URLs"
                ));
            }
        }
        if method == "Browser.setDownloadBehavior" || method == "Page.setDownloadBehavior" {
            // Downloads are contained in the session's own directory, whatever path was asked for
            // (removed with the browser).
            if msg["params"].get("downloadPath").is_some() {
                if self.downloads_dir.is_empty() {
                    return Verdict::Refuse(format!("{method}: downloads are not available"));
                }
                let mut msg = msg.clone();
                msg["params"]["downloadPath"] = Value::String(self.downloads_dir.clone());
                return Verdict::Rewrite(msg.to_string());
            }
        }
        if method == "Target.createBrowserContext" {
            if self.contexts_created >= MAX_EXTRA_CONTEXTS {
                return Verdict::Refuse(format!(
                    "{method}: at most {MAX_EXTRA_CONTEXTS} extra browser contexts per session"
                ));
            }
            // A context's own proxy would go around the egress guard.
            if msg["params"].get("proxyServer").is_some() {
                return Verdict::Refuse(format!(
                    "{method}: proxyServer is not allowed; set `proxy` when creating the session"
                ));
            }
            self.contexts_created += 1;
        }
        Verdict::Forward
    }
}

/// The CDP error answer for a refused message.
pub fn error_reply(message: &str, reason: &str) -> String {
    let msg: Value = serde_json::from_str(message).unwrap_or(Value::Null);
    let mut reply = json!({
        "id": msg["id"],
        "error": {"code": -32000, "message": format!("Driftstack: {reason}")},
    });
    if let Some(session) = msg.get("sessionId") {
        reply["sessionId"] = session.clone();
    }
    reply.to_string()
}

/// The success answer for a message that ends the session.
pub fn empty_reply(message: &str) -> String {
    let msg: Value = serde_json::from_str(message).unwrap_or(Value::Null);
    let mut reply = json!({"id": msg["id"], "result": {}});
    if let Some(session) = msg.get("sessionId") {
        reply["sessionId"] = session.clone();
    }
    reply.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(method: &str, params: Value) -> String {
        json!({"id": 1, "method": method, "params": params}).to_string()
    }

    #[test]
    fn ordinary_commands_pass() {
        let mut f = CdpFilter::default();
        for method in [
            "Runtime.evaluate",
            "Page.captureScreenshot",
            "Target.getTargets",
            "Network.enable",
        ] {
            assert_eq!(f.judge(&m(method, json!({}))), Verdict::Forward);
        }
        assert_eq!(
            f.judge(&m("Page.navigate", json!({"url": "https://example.com/"}))),
            Verdict::Forward
        );
        assert_eq!(
            f.judge(&m("Target.createTarget", json!({"url": "about:blank"}))),
            Verdict::Forward
        );
    }

    #[test]
    fn escapes_are_refused() {
        let mut f = CdpFilter::default();
        for (method, params) in [
            ("Page.navigate", json!({"url": "file:///etc/passwd"})),
            ("Page.navigate", json!({"url": "chrome://settings"})),
            ("Page.navigate", json!({"url": " FILE:///etc/passwd"})),
            (
                "Target.createTarget",
                json!({"url": "view-source:http://x"}),
            ),
            (
                "Network.loadNetworkResource",
                json!({"url": "file:///etc/shadow"}),
            ),
            ("DOM.setFileInputFiles", json!({"files": ["/etc/passwd"]})),
            (
                "Target.createBrowserContext",
                json!({"proxyServer": "http://10.0.0.1:80"}),
            ),
            ("Browser.crash", json!({})),
        ] {
            assert!(
                matches!(f.judge(&m(method, params.clone())), Verdict::Refuse(_)),
                "{method} {params}"
            );
        }
        assert!(matches!(f.judge("not json"), Verdict::Refuse(_)));
    }

    #[test]
    fn downloads_are_contained_in_the_session_dir() {
        let mut f = CdpFilter::new("/tmp/ds/browser-1/downloads".into());
        let v = f.judge(&m(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allowAndName", "downloadPath": "/etc"}),
        ));
        let Verdict::Rewrite(text) = v else {
            panic!("expected a rewrite: {v:?}")
        };
        let rewritten: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            rewritten["params"]["downloadPath"],
            "/tmp/ds/browser-1/downloads"
        );
        assert_eq!(rewritten["id"], 1);
        assert_eq!(
            f.judge(&m(
                "Browser.setDownloadBehavior",
                json!({"behavior": "deny"})
            )),
            Verdict::Forward
        );
    }

    #[test]
    fn contexts_are_limited_and_close_ends_the_session() {
        let mut f = CdpFilter::default();
        for _ in 0..MAX_EXTRA_CONTEXTS {
            assert_eq!(
                f.judge(&m("Target.createBrowserContext", json!({}))),
                Verdict::Forward
            );
        }
        assert!(matches!(
            f.judge(&m("Target.createBrowserContext", json!({}))),
            Verdict::Refuse(_)
        ));
        assert_eq!(f.judge(&m("Browser.close", json!({}))), Verdict::EndSession);
    }

    #[test]
    fn replies_keep_id_and_session() {
        let msg = json!({"id": 7, "sessionId": "S", "method": "Browser.crash"}).to_string();
        let reply: Value = serde_json::from_str(&error_reply(&msg, "no")).expect("json");
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["sessionId"], "S");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|s| s.contains("no"))
        );
    }
}
