//! The policy for raw CDP connections (`GET /v1/sessions/{id}/cdp`).
//!
//! A raw CDP client is treated as an attacker with code execution in the session's browser. The
//! relay forwards only an **allow-list**: the domains and methods stock Puppeteer and Playwright
//! send (recorded from tests/cdp's clients), each with a reason below. Everything else gets a CDP
//! error and never reaches Chromium. Parameters that could name host paths or reach beyond the
//! session are checked or rewritten: file lists (`DOM.setFileInputFiles`,
//! `Input.dispatchDragEvent`) must lie inside the session's upload dir, downloads are forced into
//! its downloads dir, URLs opened are http(s)/about:blank/data:, browser contexts named must be
//! the session's own, and tracing stays in-memory. `Browser.close` ends the session (like
//! `DELETE`) instead of killing a process the runner owns.
//!
//! The sandbox (`sandbox.rs`) is the second wall: with this filter bypassed, the browser still
//! sees no host file of interest.

use std::{
    collections::HashSet,
    path::{Component, Path},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

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

/// Browser contexts CDP clients may create in one session (over all its connections).
pub const MAX_EXTRA_CONTEXTS: u32 = 3;

/// The largest client message the relay reads; larger ones are refused before parsing.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Domains forwarded whole: they act on targets (pages, workers) the client attached to, inside
/// the session's own browser, and touch neither the host nor other sessions.
const DOMAINS: &[&str] = &[
    // Playwright's `page.accessibility` / aria snapshots.
    "Accessibility",
    // Puppeteer's and Playwright's animation controls.
    "Animation",
    // Playwright enables issue reporting.
    "Audits",
    // Playwright's coverage and stylesheet tracking.
    "CSS",
    // Cache API inspection (`caches` of the session's origins).
    "CacheStorage",
    // Legacy console messages (Puppeteer).
    "Console",
    // Element handles, queries, boxes (file inputs are checked below).
    "DOM",
    "DOMDebugger",
    "DOMSnapshot",
    "DOMStorage",
    // Playwright's JS coverage, Puppeteer's script parsing.
    "Debugger",
    "DeviceOrientation",
    // Viewport, device metrics, locale, time zone, geolocation, media emulation.
    "Emulation",
    "EventBreakpoints",
    // Request interception (`page.route`, `setRequestInterception`).
    "Fetch",
    "HeadlessExperimental",
    "HeapProfiler",
    "IndexedDB",
    // Mouse, keyboard, touch (drag data files are checked below).
    "Input",
    "Inspector",
    "LayerTree",
    // Console and browser logs.
    "Log",
    "Media",
    // Headers, cookies, caching, user agent, offline emulation (the egress proxy still applies).
    "Network",
    // Playwright's highlight and inspector overlay.
    "Overlay",
    // Navigation, lifecycle, screenshots, PDFs, dialogs, scripts on new documents.
    "Page",
    "Performance",
    "PerformanceTimeline",
    "Preload",
    "Profiler",
    "Runtime",
    "Schema",
    // `ignoreHTTPSErrors`.
    "Security",
    "ServiceWorker",
    "WebAudio",
    "WebAuthn",
    // Playwright enables it on every page (tools a page declares for agents).
    "WebMCP",
];

/// Methods forwarded from domains that are otherwise refused (browser-wide domains).
const METHODS: &[&str] = &[
    // Connection set-up and version checks (both clients).
    "Browser.getVersion",
    // Playwright's `grantPermissions` / `clearPermissions`.
    "Browser.grantPermissions",
    "Browser.resetPermissions",
    "Browser.setPermission",
    // Downloads (the path is forced to the session's own dir).
    "Browser.setDownloadBehavior",
    "Browser.cancelDownload",
    // Window geometry (headful viewports, Playwright's `setViewportSize` fallback).
    "Browser.getWindowForTarget",
    "Browser.getWindowBounds",
    "Browser.setWindowBounds",
    "Browser.setContentsSize",
    // PDF and tracing streams (handles the browser returned, never file paths).
    "IO.read",
    "IO.close",
    "IO.resolveBlob",
    // Cookies and storage of the session's own contexts.
    "Storage.getCookies",
    "Storage.setCookies",
    "Storage.clearCookies",
    "Storage.clearDataForOrigin",
    "Storage.clearDataForStorageKey",
    "Storage.getUsageAndQuota",
    "Storage.getStorageKeyForFrame",
    "Storage.trackCacheStorageForOrigin",
    "Storage.untrackCacheStorageForOrigin",
    "Storage.trackIndexedDBForOrigin",
    "Storage.untrackIndexedDBForOrigin",
    // Target discovery, attachment and pages (both clients).
    "Target.getTargets",
    "Target.getTargetInfo",
    "Target.setDiscoverTargets",
    "Target.setAutoAttach",
    "Target.autoAttachRelated",
    "Target.attachToTarget",
    "Target.attachToBrowserTarget",
    "Target.detachFromTarget",
    "Target.activateTarget",
    "Target.closeTarget",
    "Target.createTarget",
    "Target.getBrowserContexts",
    "Target.createBrowserContext",
    "Target.disposeBrowserContext",
    // Puppeteer's `page.tracing` and Playwright's `browser.startTracing` (in memory only).
    "Tracing.start",
    "Tracing.end",
    "Tracing.getCategories",
    "Tracing.recordClockSyncMarker",
    // Puppeteer's `page.metrics()`.
    "Memory.getDOMCounters",
];

/// Methods whose `browserContextId` is optional, meaning the browser's default context. For a
/// client the session's own context *is* the default one: a missing id is filled in with it, so
/// Playwright's `context.grantPermissions`, `addCookies` and `newPage`, and downloads, act on
/// the session's page rather than on a context no page of the session is in.
const SESSION_CONTEXT_BY_DEFAULT: &[&str] = &[
    "Browser.grantPermissions",
    "Browser.resetPermissions",
    "Browser.setPermission",
    "Browser.setDownloadBehavior",
    "Storage.getCookies",
    "Storage.setCookies",
    "Storage.clearCookies",
    "Target.createTarget",
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

/// Methods of forwarded domains that are refused all the same.
const REFUSED: &[&str] = &[
    // Hands V8 compiled code as trusted cache: crafted bytes would run as code in the renderer.
    "Page.addCompilationCache",
    "Page.produceCompilationCache",
    "Page.clearCompilationCache",
];

/// The longest method name a client may send (the longest real one is under 60 bytes): a
/// method name goes into refusals and the command log.
const MAX_METHOD_BYTES: usize = 128;

/// Parameters naming an isolated world or a binding, by method. Names beginning with
/// `driftstack` or `__driftstack` belong to the session recorder (`chromium::recording`): a
/// client may not create its world, script it, or add or remove its binding.
const NAMED_PARAMS: &[(&str, &str)] = &[
    ("Page.createIsolatedWorld", "worldName"),
    ("Page.addScriptToEvaluateOnNewDocument", "worldName"),
    ("Runtime.addBinding", "name"),
    ("Runtime.addBinding", "executionContextName"),
    ("Runtime.removeBinding", "name"),
];

fn reserved_name<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    NAMED_PARAMS
        .iter()
        .filter(|(m, _)| *m == method)
        .filter_map(|(_, param)| params[param].as_str())
        .find(|name| {
            let lower = name.trim().to_ascii_lowercase();
            lower.starts_with("driftstack") || lower.starts_with("__driftstack")
        })
}

fn allowed_method(method: &str) -> bool {
    if REFUSED.contains(&method) {
        return false;
    }
    if METHODS.contains(&method) {
        return true;
    }
    method
        .split_once('.')
        .is_some_and(|(domain, name)| DOMAINS.contains(&domain) && !name.is_empty())
}

/// What a session's CDP connections share (kept for the session's life, so reconnecting resets
/// nothing).
#[derive(Debug, Default)]
pub struct SessionCdp {
    /// The session's own browser context (what clients see as the default one).
    pub context_id: String,
    /// Where downloads of this session go.
    pub downloads_dir: String,
    /// The only directory file lists may name (uploads).
    pub uploads_dir: String,
    contexts_created: AtomicU32,
    /// Browser contexts of this session: its own, and those its clients created.
    contexts: Mutex<HashSet<String>>,
}

impl SessionCdp {
    pub fn new(downloads_dir: String, uploads_dir: String, context_id: String) -> Self {
        SessionCdp {
            contexts: Mutex::new(HashSet::from([context_id.clone()])),
            context_id,
            downloads_dir,
            uploads_dir,
            contexts_created: AtomicU32::new(0),
        }
    }

    /// Whether browser context `id` is this session's (its own, or one its clients created).
    pub fn owns_context(&self, id: &str) -> bool {
        self.contexts
            .lock()
            .map(|c| c.contains(id))
            .unwrap_or(false)
    }
}

/// The per-connection state of the filter.
#[derive(Debug)]
pub struct CdpFilter {
    session: Arc<SessionCdp>,
    /// Ids of this connection's `Target.createBrowserContext` calls awaiting their answer.
    pending_contexts: HashSet<i64>,
    /// The id and method of the last message judged (for the command log).
    last: (Option<i64>, String),
}

impl CdpFilter {
    pub fn new(session: Arc<SessionCdp>) -> Self {
        CdpFilter {
            session,
            pending_contexts: HashSet::new(),
            last: (None, String::new()),
        }
    }

    /// Judges one text message from the client.
    pub fn judge(&mut self, message: &str) -> Verdict {
        if message.len() > MAX_MESSAGE_BYTES {
            return Verdict::Refuse("messages are limited to 16 MiB".into());
        }
        self.last = (None, String::new());
        let Ok(mut msg) = serde_json::from_str::<Value>(message) else {
            return Verdict::Refuse("messages must be JSON".into());
        };
        let method = msg["method"].as_str().unwrap_or("").to_owned();
        if method.len() > MAX_METHOD_BYTES {
            return Verdict::Refuse(format!("method names are at most {MAX_METHOD_BYTES} bytes"));
        }
        self.last = (msg["id"].as_i64(), method.clone());
        let method = method.as_str();
        tracing::trace!(method, "cdp command");
        if method == "Browser.close" {
            return Verdict::EndSession;
        }
        if !allowed_method(method) {
            return Verdict::Refuse(format!("{method} is not available through connect_url"));
        }
        let mut rewritten = false;
        if SESSION_CONTEXT_BY_DEFAULT.contains(&method)
            && msg["params"].get("browserContextId").is_none()
        {
            if !msg["params"].is_object() {
                msg["params"] = json!({});
            }
            msg["params"]["browserContextId"] = Value::String(self.session.context_id.clone());
            rewritten = true;
        }
        let params = &msg["params"];
        if let Some((_, param)) = URL_PARAMS.iter().find(|(m, _)| *m == method) {
            let url = params[param].as_str().unwrap_or("");
            if !allowed_url(url) {
                return Verdict::Refuse(format!(
                    "{method} may open only http, https, about:blank and data: URLs"
                ));
            }
        }
        if let Some(context) = params.get("browserContextId").and_then(Value::as_str)
            && !self.session.owns_context(context)
        {
            return Verdict::Refuse(format!(
                "{method}: browser context {context} is not this session's"
            ));
        }
        if let Some(name) = reserved_name(method, params) {
            return Verdict::Refuse(format!(
                "{method}: the name {name} is reserved for Driftstack's recorder"
            ));
        }
        match method {
            "DOM.setFileInputFiles" => self.check_files(method, &params["files"]),
            "Input.dispatchDragEvent" => self.check_files(method, &params["data"]["files"]),
            "Browser.setDownloadBehavior" | "Page.setDownloadBehavior" => {
                self.confine_downloads(method, msg)
            }
            "Target.createBrowserContext" => self.create_context(method, &msg),
            _ if rewritten => Verdict::Rewrite(msg.to_string()),
            "Tracing.start" => {
                let backend = params["tracingBackend"].as_str().unwrap_or("auto");
                if params.get("perfettoConfig").is_some() || !matches!(backend, "auto" | "chrome") {
                    Verdict::Refuse(format!(
                        "{method}: only the in-browser tracing backend is available"
                    ))
                } else {
                    Verdict::Forward
                }
            }
            _ => Verdict::Forward,
        }
    }

    /// The id and method of the last message judged.
    pub fn last_command(&self) -> (Option<i64>, &str) {
        (self.last.0, &self.last.1)
    }

    /// Learns the contexts this connection created from the browser's answers.
    pub fn observe_reply(&mut self, message: &str) {
        if self.pending_contexts.is_empty() || !message.contains("browserContextId") {
            return;
        }
        let Ok(msg) = serde_json::from_str::<Value>(message) else {
            return;
        };
        let Some(id) = msg["id"].as_i64() else {
            return;
        };
        if self.pending_contexts.remove(&id)
            && let Some(context) = msg["result"]["browserContextId"].as_str()
            && let Ok(mut contexts) = self.session.contexts.lock()
        {
            contexts.insert(context.to_owned());
        }
    }

    /// File lists may name only files inside the session's upload dir.
    fn check_files(&self, method: &str, files: &Value) -> Verdict {
        if files.is_null() {
            return Verdict::Forward;
        }
        let Some(files) = files.as_array() else {
            return Verdict::Refuse(format!("{method}: files must be a list"));
        };
        let inside = |f: &Value| {
            f.as_str()
                .is_some_and(|p| within(Path::new(p), Path::new(&self.session.uploads_dir)))
        };
        if self.session.uploads_dir.is_empty() || !files.iter().all(inside) {
            return Verdict::Refuse(format!(
                "{method}: files must be uploaded to the session first; host paths are not readable"
            ));
        }
        Verdict::Forward
    }

    /// Downloads go to the session's own directory, named by GUID (so they are followed and
    /// held to the plan's limits), whatever path or behaviour was asked for. Only the session's
    /// own context downloads: other contexts a client created, and the page-level command
    /// (which names no context), are set to `deny`.
    fn confine_downloads(&self, method: &str, mut msg: Value) -> Verdict {
        let session_context = self.session.context_id.clone();
        let dir = self.session.downloads_dir.clone();
        let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) else {
            return Verdict::Refuse(format!("{method}: params must be an object"));
        };
        let behavior = params
            .get("behavior")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let own_context = method == "Browser.setDownloadBehavior"
            && params.get("browserContextId").and_then(Value::as_str)
                == Some(session_context.as_str());
        if behavior == "deny" || !own_context || dir.is_empty() {
            params.remove("downloadPath");
            params.insert("behavior".into(), Value::String("deny".into()));
            return Verdict::Rewrite(msg.to_string());
        }
        params.insert("downloadPath".into(), Value::String(dir));
        params.insert("behavior".into(), Value::String("allowAndName".into()));
        Verdict::Rewrite(msg.to_string())
    }

    fn create_context(&mut self, method: &str, msg: &Value) -> Verdict {
        // A context's own proxy would go around the egress guard.
        if msg["params"].get("proxyServer").is_some() {
            return Verdict::Refuse(format!(
                "{method}: proxyServer is not allowed; set `proxy` when creating the session"
            ));
        }
        let claimed =
            self.session
                .contexts_created
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < MAX_EXTRA_CONTEXTS).then_some(n + 1)
                });
        if claimed.is_err() {
            return Verdict::Refuse(format!(
                "{method}: at most {MAX_EXTRA_CONTEXTS} extra browser contexts per session"
            ));
        }
        if let Some(id) = msg["id"].as_i64() {
            self.pending_contexts.insert(id);
        }
        Verdict::Forward
    }
}

/// Whether `path` lies inside `dir`, judged lexically (no `..`, absolute, under `dir`).
fn within(path: &Path, dir: &Path) -> bool {
    path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        && path.starts_with(dir)
        && path != dir
}

/// The CDP error answer for a refused message.
pub fn error_reply(message: &str, reason: &str) -> String {
    let msg: Value = if message.len() > MAX_MESSAGE_BYTES {
        Value::Null
    } else {
        serde_json::from_str(message).unwrap_or(Value::Null)
    };
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
mod tests;
