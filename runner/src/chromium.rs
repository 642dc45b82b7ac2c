//! Everything that touches Chromium, and the only module that uses chromiumoxide.
//!
//! A [`BrowserProcess`] is one headless Chromium with its own temporary user-data dir, reached
//! over CDP. It hands out [`SessionPage`]s: a fresh browser context with one page, plus a monitor
//! that follows the page's lifecycle and network events (load counts, in-flight requests, bytes,
//! blocked requests). `kill` ends the process and every child it spawned and removes its
//! user-data dir; nothing a browser creates outlives it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chromiumoxide::{
    Browser, BrowserConfig, Page,
    cdp::browser_protocol::{
        browser::{
            BrowserContextId, GetVersionParams, PermissionDescriptor, PermissionSetting,
            SetPermissionParams,
        },
        dom::Rect,
        emulation::{
            SetDeviceMetricsOverrideParams, SetGeolocationOverrideParams, SetLocaleOverrideParams,
            SetTimezoneOverrideParams,
        },
        fetch::{self, EventRequestPaused, FailRequestParams, RequestPattern, RequestStage},
        input::{DispatchKeyEventParams, DispatchKeyEventType},
        network::{
            ErrorReason, EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent,
            EventResponseReceived, Headers, ResourceType, SetExtraHttpHeadersParams,
            SetUserAgentOverrideParams,
        },
        page::{
            CaptureScreenshotFormat, CaptureScreenshotParams, EventLifecycleEvent,
            GetLayoutMetricsParams, NavigateParams, PrintToPdfParams, Viewport as CdpViewport,
        },
        target::{CreateBrowserContextParams, CreateTargetParams},
    },
    cdp::js_protocol::runtime::EvaluateParams,
};
use futures::StreamExt;
use tokio::{sync::Notify, task::JoinHandle};

use common::egress::EgressPolicy;

use crate::proxy::DevtoolsPorts;
use crate::sandbox::{Sandbox, is_root};
use crate::spec::{
    Action, ActionOutcome, BlockedResource, CaptureFormat, CaptureSpec, Counters, ElementState,
    NavigateOutcome, RunnerError, SessionSpec, WaitSpec, WaitUntil,
};

/// How browsers are launched.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub executable: PathBuf,
    /// Directory under which each browser gets its own user-data dir.
    pub temp_root: PathBuf,
    /// The sandbox every browser runs in; `None` only when the operator turned it off
    /// (`DRIFTSTACK_BROWSER_SANDBOX=off`), and then `--no-sandbox` when running as root.
    pub sandbox: Option<Sandbox>,
    /// Use the old headless mode (for `chromium-headless-shell`).
    pub headless_shell: bool,
    /// What browsers may connect to (enforced by their egress proxies).
    pub policy: EgressPolicy,
    /// The DevTools ports of this runner's browsers, refused by every egress proxy.
    pub devtools: DevtoolsPorts,
}

impl LaunchOptions {
    /// Finds a browser: `configured`, else Debian's `chromium-headless-shell` (measured lighter
    /// and faster than `chromium --headless=new`: see docs/PERFORMANCE.md), else Debian's
    /// chromium binary (skipping the `/usr/bin` wrapper script, which costs ≈40 ms and prints
    /// noise), else one on `PATH`.
    pub fn detect(
        configured: Option<&Path>,
        temp_root: PathBuf,
        policy: EgressPolicy,
    ) -> anyhow::Result<Self> {
        let executable = match configured {
            Some(p) => p.to_path_buf(),
            None => {
                let candidates = [
                    "/usr/lib/chromium/chromium-headless-shell",
                    "/usr/lib/chromium/chromium",
                    "/usr/bin/chromium",
                    "/usr/bin/chromium-browser",
                    "/usr/bin/google-chrome",
                ];
                candidates
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
                    .context("no Chromium found: install Debian's `chromium` package or set DRIFTSTACK_CHROMIUM")?
            }
        };
        if !executable.exists() {
            anyhow::bail!(
                "DRIFTSTACK_CHROMIUM: {} does not exist",
                executable.display()
            );
        }
        let headless_shell = executable
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("headless-shell"));
        Ok(LaunchOptions {
            executable,
            temp_root,
            sandbox: None,
            headless_shell,
            policy,
            devtools: DevtoolsPorts::default(),
        })
    }
}

/// Flags every pooled browser gets, without their leading `--` (chromiumoxide adds it; it also
/// adds `--remote-debugging-port=0`, `--user-data-dir`, `--no-sandbox` and the headless flag). Background networking is off (this product's browsers must
/// only fetch what a session asks for), and nothing is written outside the user-data dir.
const FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-default-apps",
    "disable-extensions",
    "disable-breakpad",
    "disable-crash-reporter",
    "disable-quic",
    "disable-dev-shm-usage",
    "disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,InterestFeedContentSuggestions,CalculateNativeWinOcclusion,AutofillServerCommunication",
    "disable-background-timer-throttling",
    "disable-renderer-backgrounding",
    "disable-backgrounding-occluded-windows",
    "disable-ipc-flooding-protection",
    "disable-hang-monitor",
    "metrics-recording-only",
    "no-first-run",
    "no-default-browser-check",
    "no-service-autorun",
    "password-store=basic",
    "use-mock-keychain",
    "mute-audio",
    "hide-scrollbars",
    // Loopback is proxied like any other address, so the egress guard sees it.
    "proxy-bypass-list=<-loopback>",
    // WebRTC must not send UDP around the proxy.
    "force-webrtc-ip-handling-policy=disable_non_proxied_udp",
];

/// One Chromium process.
pub struct BrowserProcess {
    browser: tokio::sync::Mutex<Browser>,
    handler: JoinHandle<()>,
    pid: Option<u32>,
    devtools_port: Option<u16>,
    devtools_url: String,
    devtools: DevtoolsPorts,
    user_data_dir: PathBuf,
    dead: Arc<AtomicBool>,
    died: Arc<Notify>,
}

impl BrowserProcess {
    /// Launches a browser whose every connection goes through `proxy_url`.
    pub async fn launch(opts: &LaunchOptions, proxy_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.temp_root)
            .with_context(|| format!("cannot create {}", opts.temp_root.display()))?;
        let user_data_dir = opts.temp_root.join(format!("browser-{}", uuid_like()));
        let executable = match &opts.sandbox {
            Some(sandbox) => {
                sandbox.prepare_dir(&opts.temp_root, &user_data_dir)?;
                sandbox.launcher(&opts.executable, &user_data_dir)?
            }
            None => {
                std::fs::create_dir_all(&user_data_dir)?;
                opts.executable.clone()
            }
        };
        let mut builder = BrowserConfig::builder()
            .chrome_executable(&executable)
            .user_data_dir(&user_data_dir)
            .disable_default_args()
            .viewport(None)
            .launch_timeout(Duration::from_secs(20))
            .request_timeout(Duration::from_secs(120))
            .args(FLAGS.iter().copied())
            .arg(format!("proxy-server={proxy_url}"));
        // The default mode passes `--headless`, which chromium-headless-shell expects.
        if !opts.headless_shell {
            builder = builder.new_headless_mode();
        }
        if opts.sandbox.is_none() && is_root() {
            builder = builder.no_sandbox();
        }
        let config = builder
            .build()
            .map_err(|e| anyhow::anyhow!("browser config: {e}"))?;
        let (mut browser, mut handler) = match Browser::launch(config).await {
            Ok(pair) => pair,
            Err(err) => {
                kill_strays(&user_data_dir);
                let _ = std::fs::remove_dir_all(&user_data_dir);
                let _ = std::fs::remove_file(launcher_path(&user_data_dir));
                return Err(anyhow::Error::new(err).context("Chromium did not start"));
            }
        };
        let pid = browser.get_mut_child().and_then(|c| c.inner.id());
        let devtools_url = browser.websocket_address().clone();
        let devtools_port = url::Url::parse(&devtools_url).ok().and_then(|u| u.port());
        if let Some(port) = devtools_port {
            opts.devtools.add(port);
        }
        let dead = Arc::new(AtomicBool::new(false));
        let died = Arc::new(Notify::new());
        let (dead2, died2) = (dead.clone(), died.clone());
        let handler = tokio::spawn(async move {
            // After the browser dies the handler yields an error and then waits forever: stop at
            // the first error.
            while let Some(event) = handler.next().await {
                if let Err(err) = event {
                    tracing::debug!(error = %err, "browser connection ended");
                    break;
                }
            }
            dead2.store(true, Ordering::SeqCst);
            died2.notify_waiters();
        });
        Ok(BrowserProcess {
            browser: tokio::sync::Mutex::new(browser),
            handler,
            pid,
            devtools_port,
            devtools_url,
            devtools: opts.devtools.clone(),
            user_data_dir,
            dead,
            died,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Where this browser's downloads go (inside its user-data dir, removed with it).
    pub fn downloads_dir(&self) -> PathBuf {
        self.user_data_dir.join("downloads")
    }

    /// The only directory CDP file lists may name (files put there for the session).
    pub fn uploads_dir(&self) -> PathBuf {
        self.user_data_dir.join("uploads")
    }

    /// The browser-level DevTools WebSocket URL.
    pub fn devtools_url(&self) -> &str {
        &self.devtools_url
    }

    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    /// Resolves when the browser's connection ends (crash or kill).
    pub async fn died(&self) {
        let notified = self.died.notified();
        if !self.is_alive() {
            return;
        }
        notified.await;
    }

    /// Whether the browser answers a trivial command within two seconds.
    pub async fn healthy(&self) -> bool {
        if !self.is_alive() {
            return false;
        }
        let browser = self.browser.lock().await;
        matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                browser.execute(GetVersionParams::default())
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// A fresh browser context with one blank page, optionally sending its traffic through
    /// `proxy_server` (e.g. `http://127.0.0.1:PORT`).
    pub async fn new_session_page(
        &self,
        proxy_server: Option<&str>,
    ) -> anyhow::Result<SessionPage> {
        let browser = self.browser.lock().await;
        let mut params = CreateBrowserContextParams::builder().dispose_on_detach(true);
        if let Some(proxy) = proxy_server {
            params = params.proxy_server(proxy).proxy_bypass_list("<-loopback>");
        }
        let context_id = browser
            .create_browser_context(params.build())
            .await
            .context("createBrowserContext")?;
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context_id.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("createTarget params: {e}"))?;
        let page = match browser.new_page(target).await {
            Ok(page) => page,
            Err(err) => {
                let _ = browser.dispose_browser_context(context_id).await;
                return Err(anyhow::Error::new(err).context("createTarget"));
            }
        };
        drop(browser);
        SessionPage::start(page, context_id).await
    }

    /// Every cookie of the page's browser context, with all attributes (a profile's state).
    pub async fn cookies(&self, page: &SessionPage) -> anyhow::Result<Vec<profiles::Cookie>> {
        use chromiumoxide::cdp::browser_protocol::storage::GetCookiesParams;
        let browser = self.browser.lock().await;
        let params = GetCookiesParams {
            browser_context_id: Some(page.context_id.clone()),
        };
        let res = browser
            .execute(params)
            .await
            .context("Storage.getCookies")?;
        Ok(res
            .result
            .cookies
            .into_iter()
            .map(|c| profiles::Cookie {
                name: c.name,
                value: c.value,
                domain: c.domain,
                path: c.path,
                expires: (!c.session).then_some(c.expires),
                http_only: c.http_only,
                secure: c.secure,
                same_site: c
                    .same_site
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| v.as_str().map(str::to_owned)),
                partition_key: c.partition_key.map(|k| k.top_level_site),
            })
            .collect())
    }

    /// Puts cookies into the page's browser context (before it is handed to a session).
    pub async fn set_cookies(
        &self,
        page: &SessionPage,
        cookies: &[profiles::Cookie],
    ) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::{
            network::{CookieParam, TimeSinceEpoch},
            storage::SetCookiesParams,
        };
        let params = cookies
            .iter()
            .map(|c| {
                let mut p = CookieParam::new(c.name.clone(), c.value.clone());
                p.domain = Some(c.domain.clone());
                p.path = Some(c.path.clone());
                p.secure = Some(c.secure);
                p.http_only = Some(c.http_only);
                p.expires = c.expires.map(TimeSinceEpoch::new);
                p.same_site = c.same_site.as_ref().and_then(|s| {
                    serde_json::from_value(serde_json::Value::String(s.clone())).ok()
                });
                p
            })
            .collect();
        let browser = self.browser.lock().await;
        browser
            .execute(SetCookiesParams {
                cookies: params,
                browser_context_id: Some(page.context_id.clone()),
            })
            .await
            .context("Storage.setCookies")?;
        Ok(())
    }

    /// Lets the page's context read its (overridden) position without a prompt.
    pub async fn grant_geolocation(&self, page: &SessionPage) -> anyhow::Result<()> {
        let mut params = SetPermissionParams::new(
            PermissionDescriptor::new("geolocation"),
            PermissionSetting::Granted,
        );
        params.browser_context_id = Some(page.context_id.clone());
        let browser = self.browser.lock().await;
        browser
            .execute(params)
            .await
            .context("Browser.setPermission")?;
        Ok(())
    }

    /// Disposes a context and everything in it (pages, cookies, storage, cache).
    pub async fn dispose(&self, page: SessionPage) -> anyhow::Result<()> {
        page.stop_monitor();
        let browser = self.browser.lock().await;
        tokio::time::timeout(
            Duration::from_secs(5),
            browser.dispose_browser_context(page.context_id.clone()),
        )
        .await
        .context("disposeBrowserContext timed out")?
        .context("disposeBrowserContext")?;
        Ok(())
    }

    /// Kills the browser and every process it started, and removes its user-data dir.
    pub async fn kill(&self) {
        {
            let mut browser = self.browser.lock().await;
            if let Some(child) = browser.get_mut_child() {
                let _ = child.kill().await;
                let _ = child.wait().await;
            }
        }
        self.handler.abort();
        if let Some(port) = self.devtools_port {
            self.devtools.remove(port);
        }
        kill_strays(&self.user_data_dir);
        remove_dir_retrying(&self.user_data_dir).await;
        let _ = std::fs::remove_file(launcher_path(&self.user_data_dir));
    }
}

/// Where [`Sandbox::launcher`] writes a browser's launcher.
fn launcher_path(user_data_dir: &Path) -> PathBuf {
    user_data_dir.with_extension("launch")
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_given_without_dashes() {
        // chromiumoxide prefixes `--`; a flag written with dashes would reach Chromium as
        // `----flag` and be ignored silently.
        assert!(super::FLAGS.iter().all(|f| !f.starts_with('-')));
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// SIGKILLs every process whose command line mentions `dir` (a browser's user-data dir, or a
/// temp root holding several): renderers, GPU, utility and crashpad processes of a browser whose
/// main process is gone. A backstop: they normally exit with it.
pub fn kill_strays(dir: &Path) {
    for pid in pids_mentioning(&dir.display().to_string()) {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// Pids of processes with an argument naming the path `needle` or a path under it (`needle`
/// followed by the end of the argument or a `/`), so `/tmp/driftstack-12` never matches
/// `/tmp/driftstack-123/…`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = needle.as_bytes();
    let names = |arg: &[u8]| {
        arg.windows(needle.len())
            .enumerate()
            .any(|(i, w)| w == needle && matches!(arg.get(i + needle.len()), None | Some(b'/')))
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|&b| b == 0).any(names))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes the browser temp roots (`driftstack-<pid>` beside `own_root`) of server processes that
/// are gone, killing any browser still running from them: what a crashed (SIGKILLed) server left.
pub async fn sweep_stale_roots(own_root: &Path) {
    let Some(parent) = own_root.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == own_root {
            continue;
        }
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("driftstack-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("driftstack"))
            .unwrap_or(false);
        if alive {
            continue;
        }
        kill_strays(&path);
        remove_dir_retrying(&path).await;
        tracing::warn!(dir = %path.display(), "removed browsers left by a server that died");
    }
}

pub async fn remove_dir_retrying(dir: &Path) {
    // Dying processes may still write for a moment (and a loaded machine slows them down).
    for _ in 0..100 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tracing::warn!(dir = %dir.display(), "could not remove a browser's user-data dir");
}

/// What the monitor has seen of a page.
#[derive(Default)]
struct MonitorState {
    /// `load` events of the main frame so far.
    loads: u64,
    /// Lifecycle events of the main frame, by loader id.
    lifecycle: HashMap<String, HashSet<String>>,
    /// Main-document response status, by loader id.
    document_status: HashMap<String, u16>,
    /// The egress guard's marker on a main-document response it wrote itself, by loader id.
    document_marker: HashMap<String, String>,
    /// Requests in flight, with when they started.
    inflight: HashMap<String, Instant>,
    last_network_activity: Option<Instant>,
}

struct Monitor {
    state: Mutex<MonitorState>,
    changed: Notify,
    requests: AtomicU64,
    blocked: AtomicU64,
    main_frame: String,
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, MonitorState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut MonitorState)) {
        f(&mut self.lock());
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds or `deadline` passes.
    async fn wait_for(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&MonitorState) -> bool,
    ) -> bool {
        loop {
            let notified = self.changed.notified();
            if done(&self.lock()) {
                return true;
            }
            // Network idleness turns true by time passing, so wake up regularly.
            let nap = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            if nap.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }
}

const TIMED_OUT: &str = "timed out";

const NETWORK_IDLE: Duration = Duration::from_millis(500);
/// Requests open longer than this (long polls, streams, or ones whose end event Chromium never
/// sent) do not keep a page from counting as idle.
const STALE_REQUEST: Duration = Duration::from_secs(10);

fn network_idle(s: &MonitorState) -> bool {
    s.inflight
        .values()
        .all(|started| started.elapsed() >= STALE_REQUEST)
        && s.last_network_activity
            .is_none_or(|t| t.elapsed() >= NETWORK_IDLE)
}

/// A session's page in its own browser context, with its event monitor.
pub struct SessionPage {
    page: Page,
    context_id: BrowserContextId,
    monitor: Arc<Monitor>,
    tasks: Vec<JoinHandle<()>>,
    /// localStorage per origin, followed from DOMStorage events (profile sessions only).
    storage: Arc<Mutex<BTreeMap<String, profiles::OriginStorage>>>,
}

impl SessionPage {
    async fn start(page: Page, context_id: BrowserContextId) -> anyhow::Result<Self> {
        let main_frame = page.target_id().inner().clone();
        let monitor = Arc::new(Monitor {
            state: Mutex::new(MonitorState::default()),
            changed: Notify::new(),
            requests: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            main_frame,
        });
        let mut tasks = Vec::new();

        let mut lifecycle = page.event_listener::<EventLifecycleEvent>().await?;
        let m = monitor.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = lifecycle.next().await {
                if ev.frame_id.inner() != &m.main_frame {
                    continue;
                }
                m.update(|s| {
                    if ev.name == "load" {
                        s.loads += 1;
                    }
                    // A new document: requests of the old one are gone with it.
                    if ev.name == "init" {
                        s.inflight.clear();
                    }
                    s.lifecycle
                        .entry(ev.loader_id.inner().clone())
                        .or_default()
                        .insert(ev.name.clone());
                });
            }
        }));

        let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
        let m = monitor.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = sent.next().await {
                if ev.redirect_response.is_none() {
                    m.requests.fetch_add(1, Ordering::Relaxed);
                }
                m.update(|s| {
                    s.inflight
                        .insert(ev.request_id.inner().clone(), Instant::now());
                    s.last_network_activity = Some(Instant::now());
                });
            }
        }));

        let mut finished = page.event_listener::<EventLoadingFinished>().await?;
        let m = monitor.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = finished.next().await {
                m.update(|s| {
                    s.inflight.remove(ev.request_id.inner());
                    s.last_network_activity = Some(Instant::now());
                });
            }
        }));

        let mut failed = page.event_listener::<EventLoadingFailed>().await?;
        let m = monitor.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = failed.next().await {
                m.update(|s| {
                    s.inflight.remove(ev.request_id.inner());
                    s.last_network_activity = Some(Instant::now());
                });
            }
        }));

        let mut responses = page.event_listener::<EventResponseReceived>().await?;
        let m = monitor.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = responses.next().await {
                if ev.r#type == ResourceType::Document
                    && ev
                        .frame_id
                        .as_ref()
                        .is_some_and(|f| f.inner() == &m.main_frame)
                {
                    let status = u16::try_from(ev.response.status).unwrap_or(0);
                    let marker = ev.response.headers.inner().as_object().and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(crate::proxy::DENIED_HEADER))
                            .and_then(|(_, v)| v.as_str().map(str::to_owned))
                    });
                    m.update(|s| {
                        let loader = ev.loader_id.inner().clone();
                        if let Some(marker) = marker {
                            s.document_marker.insert(loader.clone(), marker);
                        }
                        s.document_status.insert(loader, status);
                    });
                }
            }
        }));

        Ok(SessionPage {
            page,
            context_id,
            monitor,
            tasks,
            storage: Arc::default(),
        })
    }

    fn stop_monitor(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Applies a session's settings to its page before it is handed out.
    pub async fn apply(&mut self, spec: &SessionSpec) -> Result<(), RunnerError> {
        let page = &self.page;
        page.execute(SetDeviceMetricsOverrideParams::new(
            i64::from(spec.viewport.width),
            i64::from(spec.viewport.height),
            1.0,
            false,
        ))
        .await
        .map_err(internal("setDeviceMetricsOverride"))?;
        if spec.user_agent.is_some() || spec.locale.is_some() {
            let ua = match &spec.user_agent {
                Some(ua) => ua.clone(),
                None => page.user_agent().await.map_err(internal("user agent"))?,
            };
            let mut params = SetUserAgentOverrideParams::new(ua);
            params.accept_language = spec.locale.clone();
            page.execute(params)
                .await
                .map_err(internal("setUserAgentOverride"))?;
        }
        if let Some(locale) = &spec.locale {
            let params = SetLocaleOverrideParams {
                locale: Some(locale.clone()),
            };
            page.execute(params)
                .await
                .map_err(|e| RunnerError::Invalid {
                    field: "locale".into(),
                    message: format!("Chromium refused this locale ({e})"),
                })?;
        }
        if let Some(tz) = &spec.timezone {
            page.execute(SetTimezoneOverrideParams::new(tz.clone()))
                .await
                .map_err(|_| RunnerError::Invalid {
                    field: "timezone".into(),
                    message: "is not a known IANA time zone".into(),
                })?;
        }
        if !spec.extra_headers.is_empty() {
            let headers = serde_json::to_value(&spec.extra_headers)
                .map_err(|e| RunnerError::Internal(e.into()))?;
            page.execute(SetExtraHttpHeadersParams::new(Headers::new(headers)))
                .await
                .map_err(internal("setExtraHTTPHeaders"))?;
        }
        if let Some(geo) = spec.geolocation {
            let params = SetGeolocationOverrideParams {
                latitude: Some(geo.latitude),
                longitude: Some(geo.longitude),
                accuracy: Some(geo.accuracy.unwrap_or(50.0)),
                ..Default::default()
            };
            page.execute(params)
                .await
                .map_err(internal("setGeolocationOverride"))?;
        }
        if !spec.block.is_empty() {
            self.start_blocking(&spec.block).await?;
        }
        Ok(())
    }

    /// Starts keeping localStorage per origin for a profile session, from `seed` (the profile's
    /// stored origins). [`Self::remember_local_storage`] adds the current page's origin; the
    /// runner calls it before every command that may leave the page.
    pub fn track_local_storage(&mut self, seed: BTreeMap<String, profiles::OriginStorage>) {
        let mut map = match self.storage.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *map = seed;
    }

    /// Reads the current page's localStorage into what [`Self::all_local_storage`] returns.
    pub async fn remember_local_storage(&self) -> Result<(), RunnerError> {
        if let Some((origin, storage)) = self.local_storage().await? {
            let mut map = match self.storage.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            map.insert(origin, storage);
        }
        Ok(())
    }

    /// The localStorage of every origin kept since [`Self::track_local_storage`], with the
    /// current page's origin read directly (origins left empty are dropped).
    pub async fn all_local_storage(
        &self,
    ) -> Result<BTreeMap<String, profiles::OriginStorage>, RunnerError> {
        let mut all = match self.storage.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if let Some((origin, storage)) = self.local_storage().await? {
            all.insert(origin, storage);
        }
        all.retain(|_, s| !s.local_storage.is_empty());
        Ok(all)
    }

    /// Fails requests of the blocked resource types before they are sent.
    async fn start_blocking(&mut self, block: &[BlockedResource]) -> Result<(), RunnerError> {
        let patterns = block
            .iter()
            .map(|b| {
                let rt = match b {
                    BlockedResource::Image => ResourceType::Image,
                    BlockedResource::Font => ResourceType::Font,
                    BlockedResource::Media => ResourceType::Media,
                    BlockedResource::Stylesheet => ResourceType::Stylesheet,
                };
                RequestPattern {
                    url_pattern: Some("*".into()),
                    resource_type: Some(rt),
                    request_stage: Some(RequestStage::Request),
                }
            })
            .collect::<Vec<_>>();
        let mut paused = self
            .page
            .event_listener::<EventRequestPaused>()
            .await
            .map_err(internal("Fetch listener"))?;
        let enable = fetch::EnableParams {
            patterns: Some(patterns),
            ..Default::default()
        };
        self.page
            .execute(enable)
            .await
            .map_err(internal("Fetch.enable"))?;
        let page = self.page.clone();
        let m = self.monitor.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = paused.next().await {
                m.blocked.fetch_add(1, Ordering::Relaxed);
                let fail =
                    FailRequestParams::new(ev.request_id.clone(), ErrorReason::BlockedByClient);
                let _ = page.execute(fail).await;
            }
        }));
        Ok(())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.monitor.requests.load(Ordering::Relaxed),
            blocked_requests: self.monitor.blocked.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    /// The number of main-frame loads so far (a mark for `wait { navigation }`).
    pub fn load_mark(&self) -> u64 {
        self.monitor.lock().loads
    }

    pub async fn navigate(
        &self,
        url: &str,
        wait_until: WaitUntil,
        timeout: Duration,
    ) -> Result<NavigateOutcome, RunnerError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let timeout_ms = timeout.as_millis() as u64;
        let nav = tokio::time::timeout(timeout, self.page.execute(NavigateParams::new(url)))
            .await
            .map_err(|_| RunnerError::Timeout(timeout_ms))?;
        let nav = match nav {
            Ok(response) => response.result,
            Err(chromiumoxide::error::CdpError::ChromeMessage(text)) => {
                return Err(RunnerError::NavigationFailed(text));
            }
            Err(chromiumoxide::error::CdpError::Timeout) => {
                return Err(RunnerError::Timeout(timeout_ms));
            }
            Err(err) => return Err(map_cdp(err, "navigate")),
        };
        if let Some(text) = nav.error_text {
            return Err(RunnerError::NavigationFailed(text));
        }
        let loader = nav.loader_id.map(|l| l.inner().clone());
        let wanted = match wait_until {
            WaitUntil::Load => "load",
            WaitUntil::DomContentLoaded => "DOMContentLoaded",
            WaitUntil::NetworkIdle => "load",
        };
        if let Some(loader) = &loader {
            let reached = self
                .monitor
                .wait_for(deadline, |s| {
                    s.lifecycle
                        .get(loader)
                        .is_some_and(|names| names.contains(wanted))
                })
                .await;
            if !reached {
                return Err(RunnerError::Timeout(timeout_ms));
            }
            // Lifecycle and response events are read by separate tasks: under load the `load`
            // can be seen before the document's response (its status and the egress guard's
            // marker). Give the response a moment to be recorded; an http(s) document has one.
            let grace = (Instant::now() + Duration::from_secs(2)).min(deadline);
            self.monitor
                .wait_for(grace, |s| s.document_status.contains_key(loader))
                .await;
        }
        if wait_until == WaitUntil::NetworkIdle
            && !self.monitor.wait_for(deadline, network_idle).await
        {
            return Err(RunnerError::Timeout(timeout_ms));
        }
        let (status, marker) = match &loader {
            Some(l) => {
                let s = self.monitor.lock();
                (
                    s.document_status.get(l).copied(),
                    s.document_marker.get(l).cloned(),
                )
            }
            None => (None, None),
        };
        let current = self
            .page
            .url()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| url.to_owned());
        let current_host = url::Url::parse(&current)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        match marker.as_deref() {
            Some("denied") => return Err(RunnerError::EgressDenied { host: current_host }),
            Some("unreachable") => {
                return Err(RunnerError::NavigationFailed(format!(
                    "cannot connect to {current_host}"
                )));
            }
            _ => {}
        }
        let title = self
            .evaluate_value("document.title", deadline)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(NavigateOutcome {
            url: current,
            status,
            title,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Evaluates `expression` in the page (awaiting promises) and returns its JSON value.
    async fn evaluate_value(
        &self,
        expression: &str,
        deadline: Instant,
    ) -> Result<serde_json::Value, String> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .return_by_value(true)
            .await_promise(true)
            .user_gesture(true)
            .build()
            .map_err(|e| e.to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        let response = tokio::time::timeout(left, self.page.execute(params))
            .await
            .map_err(|_| TIMED_OUT.to_owned())?
            .map_err(|e| e.to_string())?;
        if let Some(exception) = response.result.exception_details {
            let text = exception
                .exception
                .as_ref()
                .and_then(|e| e.description.clone())
                .unwrap_or(exception.text);
            return Err(text);
        }
        Ok(response
            .result
            .result
            .value
            .unwrap_or(serde_json::Value::Null))
    }

    /// Waits until an element matches `selector` (and is visible when `visible`).
    async fn wait_for_element(
        &self,
        selector: &str,
        state: ElementState,
        deadline: Instant,
    ) -> Result<(), String> {
        let sel = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        let probe = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) return 'absent'; \
             const r = el.getBoundingClientRect(); const st = getComputedStyle(el); \
             return (r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none') \
             ? 'visible' : 'hidden'; }})()"
        );
        let missing = || match state {
            ElementState::Attached => format!("no element matches `{selector}`"),
            ElementState::Visible => format!("no visible element matches `{selector}`"),
            ElementState::Hidden => format!("`{selector}` stayed visible"),
        };
        loop {
            let found = match self.evaluate_value(&probe, deadline).await {
                Ok(v) => v,
                // The deadline passed while the page was busy: the element never showed up.
                Err(e) if e == TIMED_OUT => return Err(missing()),
                Err(e) => return Err(e),
            };
            let found = found.as_str().unwrap_or("absent");
            let ok = match state {
                ElementState::Attached => found != "absent",
                ElementState::Visible => found == "visible",
                ElementState::Hidden => found != "visible",
            };
            if ok {
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(missing());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs actions in order; the first failure stops the list.
    pub async fn run_actions(
        &self,
        actions: &[Action],
        timeout_per_action: Duration,
    ) -> Result<Vec<ActionOutcome>, RunnerError> {
        let mut done = Vec::with_capacity(actions.len());
        for (index, action) in actions.iter().enumerate() {
            let started = Instant::now();
            let deadline = started + timeout_per_action;
            match self.run_action(action, deadline).await {
                Ok(value) => done.push(ActionOutcome {
                    index,
                    kind: action.kind(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    value,
                }),
                Err(reason) => {
                    return Err(RunnerError::ActionFailed {
                        index,
                        kind: action.kind(),
                        reason,
                        completed: done,
                    });
                }
            }
        }
        Ok(done)
    }

    async fn run_action(
        &self,
        action: &Action,
        deadline: Instant,
    ) -> Result<Option<serde_json::Value>, String> {
        match action {
            Action::Click { selector } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.click().await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Hover { selector } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.hover().await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Type { selector, text } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.click().await?;
                    el.type_str(text).await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Press { key } => {
                let def = chromiumoxide::keys::get_key_definition(key)
                    .ok_or_else(|| format!("unknown key `{key}`"))?;
                within(deadline, async {
                    let mut down = DispatchKeyEventParams::builder()
                        .r#type(DispatchKeyEventType::KeyDown)
                        .key(def.key)
                        .code(def.code)
                        .windows_virtual_key_code(def.key_code)
                        .native_virtual_key_code(def.key_code);
                    if let Some(text) = def.text {
                        down = down.text(text);
                    } else if def.key.chars().count() == 1 {
                        down = down.text(def.key);
                    }
                    let down = down
                        .build()
                        .map_err(chromiumoxide::error::CdpError::ChromeMessage)?;
                    self.page.execute(down).await?;
                    let up = DispatchKeyEventParams::builder()
                        .r#type(DispatchKeyEventType::KeyUp)
                        .key(def.key)
                        .code(def.code)
                        .windows_virtual_key_code(def.key_code)
                        .native_virtual_key_code(def.key_code)
                        .build()
                        .map_err(chromiumoxide::error::CdpError::ChromeMessage)?;
                    self.page.execute(up).await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Scroll { x, y, selector } => {
                let script = match selector {
                    Some(sel) => {
                        self.wait_for_element(sel, ElementState::Attached, deadline)
                            .await?;
                        let sel = serde_json::to_string(sel).map_err(|e| e.to_string())?;
                        format!(
                            "document.querySelector({sel}).scrollIntoView({{block: 'center'}}); \
                             [window.scrollX, window.scrollY]"
                        )
                    }
                    None => format!(
                        "window.scrollBy({}, {}); [window.scrollX, window.scrollY]",
                        x.unwrap_or(0.0),
                        y.unwrap_or(0.0)
                    ),
                };
                let value = self.evaluate_value(&script, deadline).await?;
                Ok(Some(value))
            }
            Action::Select { selector, value } => {
                self.wait_for_element(selector, ElementState::Attached, deadline)
                    .await?;
                let sel = serde_json::to_string(selector).map_err(|e| e.to_string())?;
                let val = serde_json::to_string(value).map_err(|e| e.to_string())?;
                let script = format!(
                    "(() => {{ const el = document.querySelector({sel}); \
                     if (!(el instanceof HTMLSelectElement)) return 'not a <select> element'; \
                     if (![...el.options].some(o => o.value === {val})) return 'no option has this value'; \
                     el.value = {val}; \
                     el.dispatchEvent(new Event('input', {{bubbles: true}})); \
                     el.dispatchEvent(new Event('change', {{bubbles: true}})); return null; }})()"
                );
                match self.evaluate_value(&script, deadline).await? {
                    serde_json::Value::String(problem) => Err(problem),
                    _ => Ok(None),
                }
            }
            Action::Evaluate { expression } => {
                let value = self.evaluate_value(expression, deadline).await?;
                Ok(Some(value))
            }
        }
    }

    pub async fn wait(&self, spec: &WaitSpec, load_mark: u64) -> Result<(), RunnerError> {
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let timeout = RunnerError::Timeout(spec.timeout_ms);
        if spec.navigation
            && !self
                .monitor
                .wait_for(deadline, |s| s.loads > load_mark)
                .await
        {
            return Err(timeout);
        }
        if let Some(selector) = &spec.selector {
            self.wait_for_element(selector, spec.state, deadline)
                .await
                .map_err(|reason| {
                    if Instant::now() >= deadline - Duration::from_millis(50) {
                        RunnerError::Timeout(spec.timeout_ms)
                    } else {
                        RunnerError::Invalid {
                            field: "selector".into(),
                            message: reason,
                        }
                    }
                })?;
        }
        if spec.network_idle && !self.monitor.wait_for(deadline, network_idle).await {
            return Err(timeout);
        }
        Ok(())
    }

    pub async fn capture(
        &self,
        spec: &CaptureSpec,
        timeout: Duration,
    ) -> Result<Vec<u8>, RunnerError> {
        let deadline = Instant::now() + timeout;
        let timeout_ms = timeout.as_millis() as u64;
        let run = async {
            match spec.format {
                CaptureFormat::Html => {
                    let html = self
                        .evaluate_value(
                            "document.documentElement ? document.documentElement.outerHTML : ''",
                            deadline,
                        )
                        .await
                        .map_err(RunnerError::NavigationFailed)?;
                    let doctype = "<!DOCTYPE html>\n";
                    Ok(format!("{doctype}{}", html.as_str().unwrap_or("")).into_bytes())
                }
                CaptureFormat::Text => {
                    let text = self
                        .evaluate_value("document.body ? document.body.innerText : ''", deadline)
                        .await
                        .map_err(RunnerError::NavigationFailed)?;
                    Ok(text.as_str().unwrap_or("").as_bytes().to_vec())
                }
                CaptureFormat::Pdf => {
                    let params = PrintToPdfParams {
                        print_background: Some(true),
                        ..PrintToPdfParams::default()
                    };
                    let response = self
                        .page
                        .execute(params)
                        .await
                        .map_err(|e| map_cdp(e, "printToPDF"))?;
                    decode_base64(response.result.data.as_ref())
                }
                CaptureFormat::Png | CaptureFormat::Jpeg | CaptureFormat::Webp => {
                    self.screenshot(spec, deadline).await
                }
            }
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| RunnerError::Timeout(timeout_ms))?
    }

    async fn screenshot(
        &self,
        spec: &CaptureSpec,
        deadline: Instant,
    ) -> Result<Vec<u8>, RunnerError> {
        let format = match spec.format {
            CaptureFormat::Jpeg => CaptureScreenshotFormat::Jpeg,
            CaptureFormat::Webp => CaptureScreenshotFormat::Webp,
            _ => CaptureScreenshotFormat::Png,
        };
        let mut params = CaptureScreenshotParams {
            format: Some(format),
            ..CaptureScreenshotParams::default()
        };
        if spec.format != CaptureFormat::Png {
            params.quality = spec.quality.map(i64::from);
        }
        if let Some(selector) = &spec.selector {
            self.wait_for_element(selector, ElementState::Visible, deadline)
                .await
                .map_err(|message| RunnerError::Invalid {
                    field: "selector".into(),
                    message,
                })?;
            let el = self
                .page
                .find_element(selector.as_str())
                .await
                .map_err(|e| map_cdp(e, "find element"))?;
            el.scroll_into_view()
                .await
                .map_err(|e| map_cdp(e, "scroll"))?;
            let bb = el
                .bounding_box()
                .await
                .map_err(|e| map_cdp(e, "bounding box"))?;
            let scroll = self
                .evaluate_value("[window.scrollX, window.scrollY]", deadline)
                .await
                .map_err(RunnerError::NavigationFailed)?;
            let sx = scroll
                .get(0)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            let sy = scroll
                .get(1)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            params.clip = Some(CdpViewport {
                x: bb.x + sx,
                y: bb.y + sy,
                width: bb.width.max(1.0),
                height: bb.height.max(1.0),
                scale: 1.0,
            });
            params.capture_beyond_viewport = Some(true);
        } else if spec.full_page {
            let metrics = self
                .page
                .execute(GetLayoutMetricsParams::default())
                .await
                .map_err(|e| map_cdp(e, "layout metrics"))?;
            let Rect { width, height, .. } = metrics.result.css_content_size;
            params.clip = Some(CdpViewport {
                x: 0.0,
                y: 0.0,
                width: width.max(1.0),
                height: height.max(1.0),
                scale: 1.0,
            });
            params.capture_beyond_viewport = Some(true);
        }
        let response = self
            .page
            .execute(params)
            .await
            .map_err(|e| map_cdp(e, "screenshot"))?;
        decode_base64(response.result.data.as_ref())
    }

    /// The localStorage of the page's current origin, if it has one (`about:blank` has none).
    pub async fn local_storage(
        &self,
    ) -> Result<Option<(String, profiles::OriginStorage)>, RunnerError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let value = self
            .evaluate_value(
                "(() => { try { return [location.origin, Object.fromEntries(Object.entries(localStorage))]; } \
                 catch (e) { return null; } })()",
                deadline,
            )
            .await
            .map_err(|e| RunnerError::Internal(anyhow::anyhow!("reading localStorage: {e}")))?;
        let Some([origin, items]) = value
            .as_array()
            .and_then(|a| <&[_; 2]>::try_from(a.as_slice()).ok())
        else {
            return Ok(None);
        };
        let origin = origin.as_str().unwrap_or("null");
        if origin == "null" || !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Ok(None);
        }
        let local_storage = items
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some((
            origin.to_owned(),
            profiles::OriginStorage { local_storage },
        )))
    }

    /// Makes every document of a stored origin start with that origin's localStorage: a script
    /// that runs before the page's own scripts fills it in once per session and origin.
    pub async fn restore_local_storage(
        &self,
        origins: &std::collections::BTreeMap<String, profiles::OriginStorage>,
    ) -> Result<(), RunnerError> {
        use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
        if origins.is_empty() {
            return Ok(());
        }
        let data: std::collections::BTreeMap<&String, &std::collections::BTreeMap<String, String>> =
            origins.iter().map(|(o, s)| (o, &s.local_storage)).collect();
        let json = serde_json::to_string(&data).map_err(|e| RunnerError::Internal(e.into()))?;
        let source = format!(
            "(() => {{ try {{ const all = {json}; const items = all[location.origin]; \
             const mark = '__driftstack_restored'; \
             if (!items || sessionStorage.getItem(mark)) return; \
             for (const [k, v] of Object.entries(items)) localStorage.setItem(k, v); \
             sessionStorage.setItem(mark, '1'); }} catch (e) {{}} }})()"
        );
        self.page
            .execute(AddScriptToEvaluateOnNewDocumentParams::new(source))
            .await
            .map_err(|e| map_cdp(e, "addScriptToEvaluateOnNewDocument"))?;
        Ok(())
    }

    pub fn target_id(&self) -> String {
        self.page.target_id().inner().clone()
    }

    /// The page's browser context.
    pub fn context_id(&self) -> String {
        self.context_id.inner().clone()
    }
}

impl Drop for SessionPage {
    fn drop(&mut self) {
        self.stop_monitor();
    }
}

/// Runs a CDP step until `deadline`, turning its failure into a reason for the caller.
async fn within<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
) -> Result<T, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(cdp_reason(e)),
        Err(_) => Err("timed out".to_owned()),
    }
}

fn decode_base64(data: &str) -> Result<Vec<u8>, RunnerError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| RunnerError::Internal(anyhow::anyhow!("capture data: {e}")))
}

fn cdp_reason(err: chromiumoxide::error::CdpError) -> String {
    use chromiumoxide::error::CdpError;
    match err {
        CdpError::NotFound => "no element matches the selector".to_owned(),
        CdpError::Chrome(e) => e.message,
        CdpError::Timeout => "timed out".to_owned(),
        other => other.to_string(),
    }
}

fn map_cdp(err: chromiumoxide::error::CdpError, what: &str) -> RunnerError {
    use chromiumoxide::error::CdpError;
    match err {
        CdpError::Ws(_) | CdpError::ChannelSendError(_) | CdpError::NoResponse => {
            RunnerError::Crashed
        }
        CdpError::Timeout => RunnerError::Timeout(0),
        other => RunnerError::Internal(anyhow::anyhow!("{what}: {other}")),
    }
}

fn internal(what: &'static str) -> impl Fn(chromiumoxide::error::CdpError) -> RunnerError {
    move |e| map_cdp(e, what)
}
