//! The warm pool: Chromium processes launched ahead of demand, each already holding a fresh
//! browser context with a blank page, so that starting a session costs a few CDP commands
//! instead of a launch (≈400 ms) and a new context and renderer (≈250 ms).
//!
//! A background task keeps `size` browsers ready. After a session that used only the REST
//! actions, its context is disposed and the process gets a new context and page, in the
//! background, and rejoins the pool — at most `max_reuses` times. A browser whose session used
//! raw CDP, crashed or failed a health check is killed instead, never reused.
//!
//! deadpool's managed pool was the design card's choice; it recycles objects when they are
//! *checked out*, which would put the ≈250 ms context rebuild on the session-create path, and it
//! never launches ahead of demand. This pool does both in the background instead.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tracing::Instrument;

use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    chromium::{BrowserProcess, LaunchOptions, SessionPage},
    proxy::EgressProxy,
};

/// A browser ready for one session: the process and its prepared page.
pub struct WarmBrowser {
    pub process: Arc<BrowserProcess>,
    /// The page commands act on: the session's first tab, or the one selected since.
    pub page: SessionPage,
    /// Other tabs of the session that were driven before (kept following their events).
    pub others: Vec<SessionPage>,
    /// The egress guard all of this browser's traffic goes through.
    pub proxy: Arc<EgressProxy>,
    /// Sessions this process has hosted before.
    pub uses: u32,
    pub launched_at: Instant,
}

pub struct Pool {
    opts: LaunchOptions,
    size: usize,
    max_reuses: u32,
    idle: Mutex<VecDeque<WarmBrowser>>,
    /// Browsers launched or being recycled in the background right now.
    pending: AtomicUsize,
    wake: Notify,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Pool {
    pub fn new(opts: LaunchOptions, size: usize, max_reuses: u32) -> Arc<Self> {
        Arc::new(Pool {
            opts,
            size,
            max_reuses,
            idle: Mutex::new(VecDeque::new()),
            pending: AtomicUsize::new(0),
            wake: Notify::new(),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<WarmBrowser>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Browsers ready right now.
    pub fn ready(&self) -> usize {
        self.idle().len()
    }

    /// Starts the background refill loop.
    pub fn start(self: &Arc<Self>) {
        let pool = self.clone();
        self.tracker.spawn(async move { pool.refill_loop().await });
    }

    async fn refill_loop(self: Arc<Self>) {
        loop {
            // Drop browsers that died while waiting.
            let dead: Vec<WarmBrowser> = {
                let mut idle = self.idle();
                let (alive, dead): (VecDeque<_>, VecDeque<_>) =
                    idle.drain(..).partition(|b| b.process.is_alive());
                *idle = alive;
                dead.into()
            };
            for browser in dead {
                tracing::warn!(pid = ?browser.process.pid(), "a pooled browser died; replacing it");
                browser.process.kill().await;
            }
            let have = self.ready() + self.pending.load(Ordering::SeqCst);
            if have < self.size && !self.shutdown.is_cancelled() {
                self.pending.fetch_add(1, Ordering::SeqCst);
                let launched = launch_warm(&self.opts)
                    .instrument(common::phase!("pool.launch"))
                    .await;
                self.pending.fetch_sub(1, Ordering::SeqCst);
                match launched {
                    Ok(browser) => self.put(browser).await,
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "could not launch a browser");
                        tokio::select! {
                            _ = self.shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Adds a ready browser to the pool, or kills it when the pool is full or shutting down.
    async fn put(&self, browser: WarmBrowser) {
        let overflow = {
            let mut idle = self.idle();
            if self.shutdown.is_cancelled() || idle.len() >= self.size {
                Some(browser)
            } else {
                idle.push_back(browser);
                None
            }
        };
        if let Some(browser) = overflow {
            browser.process.kill().await;
        }
    }

    /// A browser for a new session: a warm one when ready, else one launched now.
    pub async fn take(&self) -> anyhow::Result<WarmBrowser> {
        let (warm, dead) = {
            let mut idle = self.idle();
            let mut found = None;
            let mut dead = Vec::new();
            while let Some(b) = idle.pop_front() {
                if b.process.is_alive() {
                    found = Some(b);
                    break;
                }
                dead.push(b);
            }
            (found, dead)
        };
        // A browser that died while waiting still has a directory and a DevTools port to free
        // (the soak found these left behind); the refill loop replaces it.
        for b in dead {
            tracing::warn!(pid = ?b.process.pid(), "a pooled browser died; replacing it");
            self.tracker.spawn(async move { b.process.kill().await });
        }
        self.wake.notify_one();
        match warm {
            Some(b) => Ok(b),
            None => launch_warm(&self.opts).await,
        }
    }

    /// Takes back a browser after its session. `reusable` is false after raw CDP use or a crash.
    pub fn give_back(self: &Arc<Self>, browser: WarmBrowser, reusable: bool) {
        let pool = self.clone();
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tracker.spawn(async move {
            let WarmBrowser { process, page, others, proxy, uses, launched_at } = browser;
            // The other tabs go with the context (disposed below, or with the browser).
            drop(others);
            let keep = reusable
                && !pool.shutdown.is_cancelled()
                && uses + 1 < pool.max_reuses
                && process.is_alive()
                && pool.ready() < pool.size;
            let recycled = if keep {
                match process
                    .dispose(page)
                    .instrument(common::phase!("pool.dispose"))
                    .await
                {
                    Ok(()) => process
                        .new_session_page(Some(&proxy.url()))
                        .instrument(common::phase!("pool.new_page"))
                        .await
                        .ok(),
                    Err(err) => {
                        tracing::warn!(error = %err, "context disposal failed; killing the browser");
                        None
                    }
                }
            } else {
                drop(page);
                None
            };
            match recycled {
                Some(page) => {
                    pool.put(WarmBrowser { process, page, others: Vec::new(), proxy, uses: uses + 1, launched_at }).await;
                }
                None => process.kill().await,
            }
            pool.pending.fetch_sub(1, Ordering::SeqCst);
            pool.wake.notify_one();
        });
    }

    /// Stops refilling, kills every idle browser and waits for background recycling to end.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let idle: Vec<WarmBrowser> = self.idle().drain(..).collect();
        for browser in idle {
            browser.process.kill().await;
        }
    }
}

/// Launches a browser and prepares its first page.
pub async fn launch_warm(opts: &LaunchOptions) -> anyhow::Result<WarmBrowser> {
    let launched_at = Instant::now();
    let proxy = Arc::new(EgressProxy::start(opts.policy.clone(), opts.devtools.clone()).await?);
    let process = Arc::new(BrowserProcess::launch(opts, &proxy.url()).await?);
    match process.new_session_page(Some(&proxy.url())).await {
        Ok(page) => Ok(WarmBrowser {
            process,
            page,
            others: Vec::new(),
            proxy,
            uses: 0,
            launched_at,
        }),
        Err(err) => {
            process.kill().await;
            Err(err)
        }
    }
}
