//! Launching one Chromium ([`LaunchOptions`], its flags) and the [`BrowserProcess`] handle:
//! health, fresh browser contexts, and killing it with every process it started.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use chromiumoxide::{
    Browser, BrowserConfig,
    cdp::browser_protocol::{
        browser::{GetVersionParams, PermissionDescriptor, PermissionSetting, SetPermissionParams},
        target::{CreateBrowserContextParams, CreateTargetParams},
    },
};
use futures::StreamExt;
use tokio::{sync::Notify, task::JoinHandle};

use common::egress::EgressPolicy;

use super::SessionPage;
use super::stray::{kill_strays, remove_dir_retrying};
use crate::proxy::DevtoolsPorts;
use crate::sandbox::{Sandbox, is_root};

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
/// adds `--remote-debugging-port=0`, `--user-data-dir` and the headless flag; Chromium's own
/// sandbox stays on — `--no-sandbox` only when the operator turned the browser sandbox off and
/// the server runs as root, see `launch`). Background networking is off (this product's browsers must
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
    pub(super) browser: tokio::sync::Mutex<Browser>,
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
                sandbox.prepare_files(&user_data_dir)?;
                sandbox.launcher(&opts.executable, &user_data_dir)?
            }
            None => {
                std::fs::create_dir_all(&user_data_dir)?;
                let files = crate::sandbox::files_dir(&user_data_dir);
                std::fs::create_dir_all(files.join("downloads"))?;
                std::fs::create_dir_all(files.join("uploads"))?;
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
                let _ = std::fs::remove_dir_all(crate::sandbox::files_dir(&user_data_dir));
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

    /// Where this browser's downloads go (beside its user-data dir, removed with it).
    pub fn downloads_dir(&self) -> PathBuf {
        crate::sandbox::files_dir(&self.user_data_dir).join("downloads")
    }

    /// The only directory CDP file lists may name (files put there for the session; read-only
    /// for the browser).
    pub fn uploads_dir(&self) -> PathBuf {
        crate::sandbox::files_dir(&self.user_data_dir).join("uploads")
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
        remove_dir_retrying(&crate::sandbox::files_dir(&self.user_data_dir)).await;
        let _ = std::fs::remove_file(launcher_path(&self.user_data_dir));
    }
}

/// Where [`Sandbox::launcher`] writes a browser's launcher.
fn launcher_path(user_data_dir: &Path) -> PathBuf {
    user_data_dir.with_extension("launch")
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

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_given_without_dashes() {
        // chromiumoxide prefixes `--`; a flag written with dashes would reach Chromium as
        // `----flag` and be ignored silently.
        assert!(super::FLAGS.iter().all(|f| !f.starts_with('-')));
    }
}
