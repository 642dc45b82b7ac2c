//! The warm pool: Chromium processes launched ahead of demand, each already holding a fresh
//! browser context with a blank page, so that starting a session costs a few CDP commands
//! instead of a launch (≈400 ms) and a new context and renderer (≈250 ms).
//!
//! A background task keeps `size` browsers ready: at once when fewer than half are ready, else
//! after a grace of a few seconds, since a session's browser usually comes back first. After a
//! session that used only the REST
//! actions, its context is disposed and the process gets a new context and page, in the
//! background, and rejoins the pool — at most `max_reuses` times. A browser whose session used
//! raw CDP, crashed or failed a health check is killed instead, never reused.
//!
//! deadpool's managed pool was the design card's choice; it recycles objects when they are
//! *checked out*, which would put the ≈250 ms context rebuild on the session-create path, and it
//! never launches ahead of demand. This pool does both in the background instead.

use std::{
    collections::{HashSet, VecDeque},
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
    recording::frame::FrameTarget,
    spec::Viewport,
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

/// How long the pool waits, while at least half of it is ready, before it launches a
/// replacement for a browser that went to a session (see the refill loop).
const REFILL_GRACE: Duration = Duration::from_secs(3);

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
    /// Recycling may run at low priority (the process can restore it: `priority`).
    deprioritize: bool,
    /// Browsers being recycled at low priority right now, by pid (boosted when the pool runs low).
    lowered: Mutex<HashSet<u32>>,
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
            deprioritize: crate::priority::wanted() && crate::priority::can_restore(),
            lowered: Mutex::new(HashSet::new()),
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
        // Since when the pool has been short of `size` (launches wait out REFILL_GRACE).
        let mut short_since: Option<Instant> = None;
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
            let ready = self.ready();
            let have = ready + self.pending.load(Ordering::SeqCst);
            if have >= self.size || self.shutdown.is_cancelled() {
                short_since = None;
            } else {
                let since = *short_since.get_or_insert_with(Instant::now);
                let waited = since.elapsed();
                // While at least half the pool is ready, a browser in use gets time to come
                // back: recycling it costs a new context, a launch costs both cores for
                // ≈300 ms — which the sessions running meanwhile would pay.
                if ready >= self.size.div_ceil(2) && waited < REFILL_GRACE {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(REFILL_GRACE - waited) => {}
                    }
                    continue;
                }
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
        if self.ready() < self.size.div_ceil(2) {
            self.boost();
        }
        match warm {
            Some(b) => Ok(b),
            None => launch_warm(&self.opts).await,
        }
    }

    /// Takes back a browser after its session. `reusable` is false after raw CDP use or a crash;
    /// `last_frame`, when given, is taken from its page first.
    pub fn give_back(
        self: &Arc<Self>,
        browser: WarmBrowser,
        reusable: bool,
        last_frame: Option<FrameTarget>,
    ) {
        let pool = self.clone();
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tracker.spawn(async move {
            let WarmBrowser { process, page, others, proxy, uses, launched_at } = browser;
            // Taken here, off the release path, while the page still shows what it showed.
            if let Some(target) = last_frame
                && process.is_alive()
            {
                target.keep(&page).instrument(common::phase!("pool.last_frame")).await;
            }
            // The other tabs go with the context (disposed below, or with the browser).
            drop(others);
            let keep = reusable
                && !pool.shutdown.is_cancelled()
                && uses + 1 < pool.max_reuses
                && process.is_alive()
                && pool.ready() < pool.size;
            // With browsers to spare, recycling takes only CPU the live sessions leave idle.
            let lowered = match process.pid() {
                Some(pid) if keep && pool.deprioritize && pool.ready() >= pool.size.div_ceil(2) => {
                    pool.lowered_set().insert(pid);
                    renice(pid, crate::priority::LOW).await;
                    Some(pid)
                }
                _ => None,
            };
            // Its next session most likely asks the same viewport: the page is sized to it here.
            let viewport = page.sized();
            let recycled = if keep {
                match process
                    .dispose(page)
                    .instrument(common::phase!("pool.dispose"))
                    .await
                {
                    Ok(()) => sized_page(&process, &proxy, viewport)
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
            // Never handed out below normal priority: restored, or the browser goes.
            if let Some(pid) = lowered {
                pool.lowered_set().remove(&pid);
            }
            let recycled = match (recycled, lowered) {
                (Some(page), Some(pid)) => {
                    if renice(pid, crate::priority::NORMAL).await {
                        Some(page)
                    } else {
                        tracing::warn!(pid, "a recycled browser's priority could not be restored; killing it");
                        None
                    }
                }
                (recycled, _) => recycled,
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

    fn lowered_set(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        match self.lowered.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The pool is running low: browsers being recycled at low priority get normal priority
    /// now, so that they are ready sooner.
    fn boost(&self) {
        let pids: Vec<u32> = self.lowered_set().drain().collect();
        for pid in pids {
            self.tracker
                .spawn(async move { renice(pid, crate::priority::NORMAL).await });
        }
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

/// Sets the priority of a browser's whole process tree (blocking `/proc` reads, off the runtime).
async fn renice(pid: u32, nice: i32) -> bool {
    tokio::task::spawn_blocking(move || crate::priority::renice_tree(pid, nice))
        .await
        .unwrap_or(false)
}

/// A fresh context and page of `process`, sized ahead to `viewport` (the default one if none).
async fn sized_page(
    process: &BrowserProcess,
    proxy: &EgressProxy,
    viewport: Option<Viewport>,
) -> anyhow::Result<SessionPage> {
    let mut page = process.new_session_page(Some(&proxy.url())).await?;
    page.size_to(viewport.unwrap_or_default())
        .await
        .map_err(|e| anyhow::anyhow!("sizing the page: {e}"))?;
    Ok(page)
}

/// Launches a browser and prepares its first page.
pub async fn launch_warm(opts: &LaunchOptions) -> anyhow::Result<WarmBrowser> {
    let launched_at = Instant::now();
    let proxy = Arc::new(EgressProxy::start(opts.policy.clone(), opts.devtools.clone()).await?);
    let process = Arc::new(BrowserProcess::launch(opts, &proxy.url()).await?);
    match sized_page(&process, &proxy, None).await {
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
