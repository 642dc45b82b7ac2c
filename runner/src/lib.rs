//! Driftstack's browser runner: the warm pool of Chromium processes and the sessions they host.
//!
//! It owns a session from the moment the API admits it (the `sessions` row already counts
//! against the account's cap) until its end: it waits for a browser slot (bounded FIFO queue),
//! takes a warm browser, applies the session's settings, runs its commands one at a time, and
//! ends it on release, idle timeout, maximum duration, browser crash or shutdown — writing every
//! transition to the database. One live session per Chromium process: sessions never share a
//! process, so nothing of one session can be seen from another.
//!
//! This crate knows nothing of HTTP; only `chromium.rs` touches chromiumoxide.

pub mod cdp;
pub mod chromium;
pub mod pool;
pub mod proxy;
pub mod registry;
pub mod sandbox;
pub mod spec;
pub mod store;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Clock,
    clock::Millis,
    ids::{AccountId, ProfileId, RunnerId, SessionId},
};
use profiles::{ProfileError, ProfileState, Profiles};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::spec::*;
use crate::{
    chromium::LaunchOptions,
    pool::{Pool, WarmBrowser},
    store::{NewSession, SessionRecord, SessionStore},
};

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    pub id: RunnerId,
    pub chromium: Option<PathBuf>,
    /// Where browsers' user-data dirs go; removed at shutdown.
    pub temp_root: PathBuf,
    pub pool_size: usize,
    pub max_sessions: usize,
    /// How long a create waits for a free browser slot before answering "no capacity".
    pub queue_timeout: Duration,
    /// How many sessions one process may host, one after another.
    pub max_reuses: u32,
    /// Networks browsers may reach although the egress policy refuses them by default.
    pub egress_allow: Vec<common::egress::Network>,
    /// How often the runner tells the registry it is alive.
    pub heartbeat_interval: Duration,
    /// Where API nodes reach this runner's internal API; `None` when embedded in an API node.
    pub address: Option<String>,
    /// Run every browser in the sandbox (`sandbox.rs`); off only by the operator's explicit
    /// `DRIFTSTACK_BROWSER_SANDBOX=off`.
    pub sandbox: bool,
}

/// What the caller knows about a session it asks the runner to start.
pub struct StartRequest {
    pub id: SessionId,
    pub account_id: AccountId,
    pub spec: SessionSpec,
    /// Stored with the session, for reading back (no secrets).
    pub options: serde_json::Value,
    pub max_duration: Duration,
    pub idle_timeout: Duration,
    pub cap: Option<u32>,
    /// The profile to load (and maybe save back).
    pub profile: Option<ProfileRequest>,
}

/// Why a session could not be admitted.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the account has reached its concurrent session limit")]
    CapReached,
    /// Another live session holds the profile.
    #[error("the profile is in use by session {0}")]
    ProfileInUse(SessionId),
    #[error(transparent)]
    Profile(ProfileError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error(transparent)]
    Store(#[from] common::StoreError),
}

struct LiveSession {
    id: SessionId,
    account_id: AccountId,
    browser: tokio::sync::Mutex<Option<WarmBrowser>>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    cancel: CancellationToken,
    expires_at: Millis,
    idle_timeout_ms: i64,
    last_activity: AtomicI64,
    busy: AtomicU64,
    navigations: AtomicU64,
    actions: AtomicU64,
    captures: AtomicU64,
    load_mark: AtomicU64,
    /// Raw CDP was used: the process must never be reused.
    dirty: AtomicBool,
    egress: Arc<proxy::EgressCounters>,
    /// The session goes out through its own upstream proxy, which resolves destinations.
    has_upstream: bool,
    /// The browser's DevTools WebSocket, for raw CDP.
    devtools_url: String,
    /// The session's page, for the screencast.
    target_id: String,
    /// What the session's raw CDP connections share (contained dirs, contexts, limits).
    cdp: Arc<cdp::SessionCdp>,
    /// Why it ended, once it has.
    end_reason: Mutex<Option<EndReason>>,
    /// The profile this session runs on, if any.
    profile: Option<ProfileRequest>,
}

impl LiveSession {
    fn counters(&self, page: Option<&chromium::SessionPage>) -> Counters {
        let base = page
            .map(chromium::SessionPage::counters)
            .unwrap_or_default();
        Counters {
            navigations: self.navigations.load(Ordering::Relaxed),
            actions: self.actions.load(Ordering::Relaxed),
            captures: self.captures.load(Ordering::Relaxed),
            bytes_received: self.egress.bytes_received.load(Ordering::Relaxed),
            bytes_sent: self.egress.bytes_sent.load(Ordering::Relaxed),
            egress_denied: self.egress.denied.load(Ordering::Relaxed),
            ..base
        }
    }
}

/// A raw CDP connection's hold on a live session.
pub struct CdpAttachment {
    live: Arc<LiveSession>,
    clock: Clock,
}

impl CdpAttachment {
    pub fn session_id(&self) -> &SessionId {
        &self.live.id
    }

    /// The browser's DevTools WebSocket URL (loopback; never handed to clients).
    pub fn devtools_url(&self) -> &str {
        &self.live.devtools_url
    }

    /// The filter for this connection's messages.
    pub fn filter(&self) -> cdp::CdpFilter {
        cdp::CdpFilter::new(self.live.cdp.clone())
    }

    /// Records client activity, so a session driven over CDP does not idle out.
    pub fn touch(&self) {
        self.live
            .last_activity
            .store(self.clock.now_ms(), Ordering::SeqCst);
    }

    /// Resolves when the session ends, with the reason.
    pub async fn ended(&self) -> EndReason {
        ended(&self.live).await
    }
}

/// A read-only view of a live session's page (the dashboard's screencast). Unlike raw CDP it
/// leaves the browser reusable: only `Page.startScreencast` and its acks are ever sent.
pub struct Watch {
    live: Arc<LiveSession>,
}

impl Watch {
    /// The browser's DevTools WebSocket URL (loopback; never handed to clients).
    pub fn devtools_url(&self) -> &str {
        &self.live.devtools_url
    }

    /// The page target to attach to.
    pub fn target_id(&self) -> &str {
        &self.live.target_id
    }

    /// Resolves when the session ends, with the reason.
    pub async fn ended(&self) -> EndReason {
        ended(&self.live).await
    }
}

async fn ended(live: &LiveSession) -> EndReason {
    live.cancel.cancelled().await;
    live.end_reason
        .lock()
        .ok()
        .and_then(|r| *r)
        .unwrap_or(EndReason::Released)
}

pub struct Runner {
    config: RunnerConfig,
    registry: registry::RunnerRegistry,
    policy: common::egress::EgressPolicy,
    devtools: proxy::DevtoolsPorts,
    pool: Arc<Pool>,
    slots: Arc<Semaphore>,
    sessions: Mutex<HashMap<SessionId, Arc<LiveSession>>>,
    store: SessionStore,
    profiles: Profiles,
    clock: Clock,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    event_hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Runner {
    /// Prepares the runner: fails the sessions a previous run of this runner left behind, and
    /// starts filling the warm pool.
    pub async fn start(
        config: RunnerConfig,
        store: SessionStore,
        profiles: Profiles,
        registry: registry::RunnerRegistry,
        clock: Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let policy = common::egress::EgressPolicy::new(config.egress_allow.clone());
        let mut launch = LaunchOptions::detect(
            config.chromium.as_deref(),
            config.temp_root.clone(),
            policy.clone(),
        )?;
        if config.sandbox {
            launch.sandbox = Some(sandbox::Sandbox::probe(&launch.executable).await?);
        } else {
            tracing::warn!(
                "DRIFTSTACK_BROWSER_SANDBOX=off: browsers run unconfined, as this server's user; \
                 a tenant with raw CDP can reach this host. Single-tenant development only."
            );
        }
        let devtools = launch.devtools.clone();
        chromium::sweep_stale_roots(&config.temp_root).await;
        let orphans = store.fail_orphans(&config.id, clock.now_ms()).await?;
        if !orphans.is_empty() {
            tracing::warn!(
                count = orphans.len(),
                "sessions left by the previous run marked failed"
            );
        }
        register(&registry, &config, clock.now_ms()).await?;
        let pool = Pool::new(launch, config.pool_size, config.max_reuses);
        pool.start();
        let runner = Arc::new(Runner {
            registry,
            policy,
            devtools,
            slots: Arc::new(Semaphore::new(config.max_sessions)),
            pool,
            sessions: Mutex::new(HashMap::new()),
            store,
            profiles,
            clock,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            event_hook: std::sync::OnceLock::new(),
            config,
        });
        let reaper = runner.clone();
        runner.tasks.spawn(async move { reaper.reap_loop().await });
        let beat = runner.clone();
        runner
            .tasks
            .spawn(async move { beat.heartbeat_loop().await });
        Ok(runner)
    }

    pub fn id(&self) -> &RunnerId {
        &self.config.id
    }

    /// Registers what to call after the runner recorded events in the outbox (the webhook
    /// dispatcher's wake-up), so deliveries start without waiting for its next poll.
    pub fn on_events(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.event_hook.set(hook);
    }

    fn events_recorded(&self) {
        if let Some(hook) = self.event_hook.get() {
            hook();
        }
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// Whether browsers run in the sandbox.
    pub fn sandboxed(&self) -> bool {
        self.config.sandbox
    }

    /// Warm browsers ready now.
    pub fn ready_browsers(&self) -> usize {
        self.pool.ready()
    }

    pub fn live_sessions(&self) -> usize {
        self.map().len()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<LiveSession>>> {
        match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Admits a session against the account's cap, waits for a browser slot and starts it.
    #[tracing::instrument(skip_all, fields(session.id = %req.id))]
    pub async fn create(self: &Arc<Self>, req: StartRequest) -> Result<SessionRecord, StartError> {
        let started = Instant::now();
        let now = self.clock.now_ms();
        let max_ms = i64::try_from(req.max_duration.as_millis()).unwrap_or(i64::MAX);
        let idle_ms = i64::try_from(req.idle_timeout.as_millis()).unwrap_or(i64::MAX);
        let new = NewSession {
            id: &req.id,
            account_id: &req.account_id,
            runner_id: &self.config.id,
            options: &req.options,
            now,
            expires_at: now.saturating_add(max_ms),
            idle_timeout_ms: idle_ms,
        };
        if !self.store.insert_under_cap(&new, req.cap).await? {
            return Err(StartError::CapReached);
        }
        // The session row exists (and counts as live) before it takes the profile's lock.
        let profile_state = match &req.profile {
            None => None,
            Some(p) => match self.claim_profile(&req, p).await {
                Ok(state) => Some(state),
                Err(e) => {
                    self.store.delete_unstarted(&req.id).await?;
                    return Err(e);
                }
            },
        };
        let permit = match tokio::time::timeout(
            self.config.queue_timeout,
            self.slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            _ => {
                self.store.delete_unstarted(&req.id).await?;
                self.unlock_profile(&req).await;
                return Err(RunnerError::Capacity {
                    retry_after_seconds: 5,
                }
                .into());
            }
        };
        // A warm browser can die between the pool's liveness check and its setup (a crash, or
        // an operator's kill): then one fresh browser is tried before the create fails.
        let mut attempt = 0;
        let browser = loop {
            attempt += 1;
            let mut browser = match self.pool.take().await {
                Ok(b) => b,
                Err(err) => {
                    self.start_failed(&req).await?;
                    return Err(
                        RunnerError::Internal(err.context("no browser could be started")).into(),
                    );
                }
            };
            match prepare(&mut browser, &req.spec, profile_state.clone()).await {
                Ok(()) => break browser,
                Err(err) => {
                    // The page may be half-configured: never hand this browser to anyone else.
                    self.pool.give_back(browser, false);
                    if matches!(err, RunnerError::Crashed) && attempt == 1 {
                        tracing::warn!(session.id = %req.id, "a warm browser died during setup; trying another");
                        continue;
                    }
                    self.start_failed(&req).await?;
                    return Err(err.into());
                }
            }
        };
        let process = browser.process.clone();
        let has_upstream = req.spec.proxy.is_some();
        let devtools_url = browser.process.devtools_url().to_owned();
        let target_id = browser.page.target_id();
        let cdp = Arc::new(cdp::SessionCdp::new(
            browser.process.downloads_dir().display().to_string(),
            browser.process.uploads_dir().display().to_string(),
            browser.page.context_id(),
        ));
        let egress = browser.proxy.bind(req.spec.proxy.clone());
        let live = Arc::new(LiveSession {
            id: req.id.clone(),
            account_id: req.account_id.clone(),
            browser: tokio::sync::Mutex::new(Some(browser)),
            permit: Mutex::new(Some(permit)),
            cancel: CancellationToken::new(),
            expires_at: new.expires_at,
            idle_timeout_ms: idle_ms,
            last_activity: AtomicI64::new(now),
            busy: AtomicU64::new(0),
            navigations: AtomicU64::new(0),
            actions: AtomicU64::new(0),
            captures: AtomicU64::new(0),
            load_mark: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            egress,
            has_upstream,
            devtools_url,
            target_id,
            cdp,
            end_reason: Mutex::new(None),
            profile: req.profile.clone(),
        });
        self.map().insert(req.id.clone(), live.clone());
        let create_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.store
            .activate(
                &req.account_id,
                &req.id,
                &self.config.id,
                self.clock.now_ms(),
                create_ms,
            )
            .await?;
        self.events_recorded();

        // Watch the browser: a crash ends the session as failed.
        let runner = self.clone();
        let cancel = live.cancel.clone();
        let id = req.id.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = process.died() => {
                    tracing::warn!(session.id = %id, "browser died during the session");
                    runner.end(&id, EndReason::BrowserCrashed).await;
                }
            }
        });
        Ok(self.store.get(&req.account_id, &req.id).await?)
    }

    /// Records that a session could not start, and frees its profile.
    async fn start_failed(&self, req: &StartRequest) -> Result<(), common::StoreError> {
        self.store
            .finish(
                &req.id,
                EndReason::StartFailed,
                self.clock.now_ms(),
                &Counters::default(),
            )
            .await?;
        self.unlock_profile(req).await;
        Ok(())
    }

    /// Takes the profile's writer lock for the new session and reads its state.
    async fn claim_profile(
        &self,
        req: &StartRequest,
        p: &ProfileRequest,
    ) -> Result<ProfileState, StartError> {
        let record = match self
            .profiles
            .store
            .lock(&req.account_id, &p.id, &req.id)
            .await
        {
            Ok(r) => r,
            Err(profiles::store::Refusal::InUse(holder)) => {
                return Err(StartError::ProfileInUse(holder));
            }
            Err(e) => return Err(StartError::Profile(e.into())),
        };
        match self.profiles.read_state(&record).await {
            Ok(state) => Ok(state),
            Err(e) => {
                tracing::error!(profile.id = %p.id, error = %e, "a profile's state cannot be loaded");
                self.unlock_profile(req).await;
                Err(StartError::Profile(e))
            }
        }
    }

    async fn unlock_profile(&self, req: &StartRequest) {
        if let Some(p) = &req.profile {
            self.release_profile(&p.id, &req.id).await;
        }
    }

    async fn release_profile(&self, profile: &ProfileId, session: &SessionId) {
        // A lock held by an ended session is free anyway; this makes it free at once.
        if let Err(e) = self.profiles.store.unlock(profile, session).await {
            tracing::warn!(profile.id = %profile, error = %e, "could not release a profile lock");
        }
    }

    /// Reads the state of the live session on `profile`, if this runner hosts one: for a
    /// snapshot while the session runs.
    pub async fn live_profile_state(
        &self,
        account: &AccountId,
        profile: &ProfileId,
    ) -> Result<Option<(SessionId, ProfileRequest, ProfileState)>, RunnerError> {
        let live = self
            .map()
            .values()
            .find(|s| {
                &s.account_id == account && s.profile.as_ref().is_some_and(|p| &p.id == profile)
            })
            .cloned();
        let Some(live) = live else {
            return Ok(None);
        };
        let Some(request) = live.profile.clone() else {
            return Ok(None);
        };
        let guard = tokio::select! {
            g = live.browser.lock() => g,
            _ = live.cancel.cancelled() => return Err(RunnerError::Ended),
        };
        let Some(browser) = guard.as_ref() else {
            return Err(RunnerError::Ended);
        };
        let state = read_state(browser).await?;
        Ok(Some((live.id.clone(), request, state)))
    }

    fn live(&self, account: &AccountId, id: &SessionId) -> Option<Arc<LiveSession>> {
        self.map()
            .get(id)
            .filter(|s| &s.account_id == account)
            .cloned()
    }

    /// Bytes sent and received so far by the account's live sessions on this runner.
    pub fn live_bytes(&self, account: &AccountId) -> u64 {
        self.map()
            .values()
            .filter(|s| &s.account_id == account)
            .map(|s| {
                s.egress.bytes_received.load(Ordering::Relaxed)
                    + s.egress.bytes_sent.load(Ordering::Relaxed)
            })
            .sum()
    }

    /// Live counters of a session hosted here.
    pub async fn live_counters(&self, account: &AccountId, id: &SessionId) -> Option<Counters> {
        let live = self.live(account, id)?;
        let guard = live.browser.try_lock().ok();
        let page = guard.as_ref().and_then(|g| g.as_ref()).map(|b| &b.page);
        Some(live.counters(page))
    }

    /// Runs one command on a session, serialized with its other commands and cancelled when
    /// the session ends. `NotFound` for unknown sessions and other accounts' sessions.
    async fn command<T, F>(
        &self,
        account: &AccountId,
        id: &SessionId,
        f: F,
    ) -> Result<T, RunnerError>
    where
        F: AsyncFnOnce(Arc<LiveSession>, &chromium::SessionPage) -> Result<T, RunnerError>,
    {
        let live = match self.live(account, id) {
            Some(l) => l,
            None => return Err(self.not_live_error(account, id).await),
        };
        live.busy.fetch_add(1, Ordering::SeqCst);
        live.last_activity
            .store(self.clock.now_ms(), Ordering::SeqCst);
        let result = async {
            let guard = tokio::select! {
                g = live.browser.lock() => g,
                _ = live.cancel.cancelled() => return Err(RunnerError::Ended),
            };
            let Some(browser) = guard.as_ref() else {
                return Err(RunnerError::Ended);
            };
            let result = tokio::select! {
                r = f(live.clone(), &browser.page) => r,
                _ = live.cancel.cancelled() => Err(RunnerError::Ended),
            };
            // A command that timed out may mean a hung browser rather than a slow page.
            if matches!(result, Err(RunnerError::Timeout(_))) && !browser.process.healthy().await {
                tracing::warn!(session.id = %id, "browser stopped answering");
                return Err(RunnerError::Crashed);
            }
            result
        }
        .await;
        live.last_activity
            .store(self.clock.now_ms(), Ordering::SeqCst);
        live.busy.fetch_sub(1, Ordering::SeqCst);
        if matches!(result, Err(RunnerError::Crashed)) {
            self.end(id, EndReason::BrowserCrashed).await;
        }
        result
    }

    /// `Ended` for a session of this account that is not live here, else `NotFound`. (Where a
    /// live session runs is the API's concern: its routing sends commands to the right node.)
    async fn not_live_error(&self, account: &AccountId, id: &SessionId) -> RunnerError {
        match self.store.get(account, id).await {
            Ok(_) => RunnerError::Ended,
            Err(_) => RunnerError::NotFound,
        }
    }

    pub async fn navigate(
        &self,
        account: &AccountId,
        id: &SessionId,
        url: &str,
        wait_until: WaitUntil,
        timeout: Duration,
    ) -> Result<NavigateOutcome, RunnerError> {
        let target = url::Url::parse(url).map_err(|_| RunnerError::Invalid {
            field: "url".into(),
            message: "is not a valid absolute URL".into(),
        })?;
        let host = match target.host() {
            Some(h) => h.to_string(),
            None => {
                return Err(RunnerError::Invalid {
                    field: "url".into(),
                    message: "must have a host".into(),
                });
            }
        };
        let port = target.port_or_known_default().unwrap_or(80);
        self.command(account, id, async |live, page| {
            // Refuse a private destination before the browser even tries (the proxy would too;
            // this gives a clear answer naming the host).
            if !live.has_upstream
                && let Err(proxy::Refusal::Denied { host }) =
                    proxy::resolve_allowed(&self.policy, &self.devtools, &host, port).await
            {
                live.egress.denied.fetch_add(1, Ordering::Relaxed);
                return Err(RunnerError::EgressDenied { host });
            }
            remember_storage(&live, page).await;
            live.load_mark.store(page.load_mark(), Ordering::SeqCst);
            live.navigations.fetch_add(1, Ordering::Relaxed);
            let denied_before = live.egress.denied.load(Ordering::SeqCst);
            let result = page.navigate(url, wait_until, timeout).await;
            let denied_now = live.egress.denied.load(Ordering::SeqCst) > denied_before;
            let refused = || RunnerError::EgressDenied {
                host: live.egress.last_denied().unwrap_or_else(|| host.clone()),
            };
            match result {
                // A redirect to a refused address fails the tunnel or answers our 403.
                Err(RunnerError::NavigationFailed(_)) if denied_now => Err(refused()),
                Ok(outcome) if denied_now && outcome.status == Some(403) => Err(refused()),
                other => other,
            }
        })
        .await
    }

    pub async fn actions(
        &self,
        account: &AccountId,
        id: &SessionId,
        actions: &[Action],
        timeout_per_action: Duration,
    ) -> Result<Vec<ActionOutcome>, RunnerError> {
        self.command(account, id, async |live, page| {
            remember_storage(&live, page).await;
            live.load_mark.store(page.load_mark(), Ordering::SeqCst);
            let result = page.run_actions(actions, timeout_per_action).await;
            let ran = match &result {
                Ok(done) => done.len(),
                Err(RunnerError::ActionFailed { completed, .. }) => completed.len() + 1,
                Err(_) => 0,
            };
            live.actions.fetch_add(ran as u64, Ordering::Relaxed);
            result
        })
        .await
    }

    pub async fn wait(
        &self,
        account: &AccountId,
        id: &SessionId,
        spec: &WaitSpec,
    ) -> Result<(), RunnerError> {
        self.command(account, id, async |live, page| {
            page.wait(spec, live.load_mark.load(Ordering::SeqCst)).await
        })
        .await
    }

    pub async fn capture(
        &self,
        account: &AccountId,
        id: &SessionId,
        spec: &CaptureSpec,
        timeout: Duration,
    ) -> Result<Vec<u8>, RunnerError> {
        self.command(account, id, async |live, page| {
            live.captures.fetch_add(1, Ordering::Relaxed);
            page.capture(spec, timeout).await
        })
        .await
    }

    /// Opens raw CDP access to a live session. The session becomes "dirty": its browser process
    /// is killed when the session ends, never reused.
    pub fn attach_cdp(&self, id: &SessionId) -> Result<CdpAttachment, RunnerError> {
        let live = self.map().get(id).cloned().ok_or(RunnerError::NotFound)?;
        live.dirty.store(true, Ordering::SeqCst);
        live.last_activity
            .store(self.clock.now_ms(), Ordering::SeqCst);
        Ok(CdpAttachment {
            live,
            clock: self.clock.clone(),
        })
    }

    /// Opens a read-only view of a live session (the caller has checked the credential).
    pub fn watch(&self, id: &SessionId) -> Result<Watch, RunnerError> {
        let live = self.map().get(id).cloned().ok_or(RunnerError::NotFound)?;
        Ok(Watch { live })
    }

    /// Ends a session of `account` at the client's request.
    pub async fn release(&self, account: &AccountId, id: &SessionId) -> Result<(), RunnerError> {
        if self.live(account, id).is_none() {
            return Err(self.not_live_error(account, id).await);
        }
        self.end(id, EndReason::Released).await;
        Ok(())
    }

    /// Ends a session for `reason`: stops its commands, returns or kills its browser, frees its
    /// slot and writes its final state. Safe to call more than once; the first call wins.
    pub async fn end(&self, id: &SessionId, reason: EndReason) {
        let Some(live) = self.map().remove(id) else {
            return;
        };
        if let Ok(mut r) = live.end_reason.lock() {
            *r = Some(reason);
        }
        live.cancel.cancel();
        if let Err(err) = self.store.mark_closing(id).await {
            tracing::warn!(session.id = %id, error = %err, "could not mark the session closing");
        }
        let browser = live.browser.lock().await.take();
        let counters = live.counters(browser.as_ref().map(|b| &b.page));
        if let (Some(p), Some(b)) = (&live.profile, &browser)
            && p.persist
            && reason != EndReason::BrowserCrashed
            // Declared dead elsewhere: the session is already failed and its profile free.
            && reason != EndReason::RunnerLost
            && b.process.is_alive()
        {
            self.save_profile(&live.account_id, id, p, b).await;
        }
        if let Some(browser) = browser {
            let reusable = reason == EndReason::Released
                && !live.dirty.load(Ordering::SeqCst)
                && browser.process.is_alive();
            self.pool.give_back(browser, reusable);
        }
        let permit = match live.permit.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(permit);
        if let Err(err) = self
            .store
            .finish(id, reason, self.clock.now_ms(), &counters)
            .await
        {
            tracing::error!(session.id = %id, error = %err, "could not record the end of a session");
        }
        if let Some(p) = &live.profile {
            self.release_profile(&p.id, id).await;
        }
        self.events_recorded();
        tracing::info!(session.id = %id, reason = reason.as_str(), "session ended");
    }

    /// Saves a session's final state into its profile. A failure is logged and recorded on the
    /// profile, which keeps its previous state.
    async fn save_profile(
        &self,
        account: &AccountId,
        session: &SessionId,
        p: &ProfileRequest,
        browser: &WarmBrowser,
    ) {
        let started = Instant::now();
        let state = match tokio::time::timeout(Duration::from_secs(15), read_state(browser)).await {
            Ok(Ok(state)) => state,
            Ok(Err(e)) => {
                let err = ProfileError::Storage(format!("reading the browser's state failed: {e}"));
                tracing::error!(session.id = %session, profile.id = %p.id, error = %err, "profile not saved");
                self.profiles.note_save_failure(&p.id, &err).await;
                return;
            }
            Err(_) => {
                let err = ProfileError::Storage("reading the browser's state timed out".into());
                tracing::error!(session.id = %session, profile.id = %p.id, error = %err, "profile not saved");
                self.profiles.note_save_failure(&p.id, &err).await;
                return;
            }
        };
        let read_ms = started.elapsed().as_millis();
        match self
            .profiles
            .save(account, &p.id, &state, p.max_state_bytes)
            .await
        {
            Ok(summary) => tracing::info!(
                session.id = %session, profile.id = %p.id, cookies = summary.cookies,
                origins = summary.origins, bytes = summary.bytes, read_ms,
                save_ms = started.elapsed().as_millis() - read_ms, "profile saved"
            ),
            Err(err) => {
                tracing::error!(session.id = %session, profile.id = %p.id, error = %err, "profile not saved");
                self.profiles.note_save_failure(&p.id, &err).await;
            }
        }
    }

    async fn reap_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.clock.now_ms();
            let due: Vec<(SessionId, EndReason)> = self
                .map()
                .values()
                .filter_map(|s| {
                    if now >= s.expires_at {
                        Some((s.id.clone(), EndReason::MaxDuration))
                    } else if s.busy.load(Ordering::SeqCst) == 0
                        && now - s.last_activity.load(Ordering::SeqCst) >= s.idle_timeout_ms
                    {
                        Some((s.id.clone(), EndReason::IdleTimeout))
                    } else {
                        None
                    }
                })
                .collect();
            for (id, reason) in due {
                self.end(&id, reason).await;
            }
        }
    }

    /// Ends every session, kills every browser and removes their files. Returns when no
    /// Chromium process of this runner is left.
    pub async fn shutdown(&self) {
        if !self.shutdown.is_cancelled()
            && let Err(err) = self
                .registry
                .set_state(&self.config.id, registry::RunnerState::Draining)
                .await
        {
            tracing::warn!(error = %err, "could not mark the runner draining");
        }
        self.shutdown.cancel();
        let ids: Vec<SessionId> = self.map().keys().cloned().collect();
        for id in ids {
            self.end(&id, EndReason::Shutdown).await;
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.pool.shutdown().await;
        // A backstop for anything a crash left behind.
        chromium::kill_strays(&self.config.temp_root);
        chromium::remove_dir_retrying(&self.config.temp_root).await;
        if let Err(err) = self
            .registry
            .set_state(&self.config.id, registry::RunnerState::Stopped)
            .await
        {
            tracing::warn!(error = %err, "could not mark the runner stopped");
        }
    }

    /// Tells the registry every `heartbeat_interval` that this runner is alive. If another node
    /// declared it dead meanwhile (it was silent too long: a pause, a partition), its sessions
    /// are already failed there, so they are ended here too and the runner registers afresh.
    async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let live = i64::try_from(self.live_sessions()).unwrap_or(i64::MAX);
            match self
                .registry
                .heartbeat(&self.config.id, live, self.clock.now_ms())
                .await
            {
                Ok(registry::Beat::Alive) => {}
                Ok(registry::Beat::DeclaredDead) => {
                    tracing::error!(
                        runner.id = %self.config.id,
                        "this runner was declared dead by another node; ending its sessions and registering again"
                    );
                    let ids: Vec<SessionId> = self.map().keys().cloned().collect();
                    for id in ids {
                        self.end(&id, EndReason::RunnerLost).await;
                    }
                    if let Err(err) =
                        register(&self.registry, &self.config, self.clock.now_ms()).await
                    {
                        tracing::warn!(error = %err, "could not register the runner again");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "runner heartbeat failed"),
            }
        }
    }
}

async fn register(
    registry: &registry::RunnerRegistry,
    config: &RunnerConfig,
    now: Millis,
) -> Result<(), common::StoreError> {
    registry
        .register(
            &config.id,
            config.address.as_deref(),
            i64::try_from(config.max_sessions).unwrap_or(i64::MAX),
            env!("CARGO_PKG_VERSION"),
            now,
        )
        .await
}

/// Applies a session's settings and its profile's state to a fresh page, before it is handed out.
async fn prepare(
    browser: &mut WarmBrowser,
    spec: &SessionSpec,
    state: Option<ProfileState>,
) -> Result<(), RunnerError> {
    browser.page.apply(spec).await?;
    if spec.geolocation.is_some() {
        browser
            .process
            .grant_geolocation(&browser.page)
            .await
            .map_err(RunnerError::Internal)?;
    }
    if let Some(state) = state {
        if !state.cookies.is_empty() {
            browser
                .process
                .set_cookies(&browser.page, &state.cookies)
                .await
                .map_err(RunnerError::Internal)?;
        }
        browser.page.restore_local_storage(&state.origins).await?;
        browser.page.track_local_storage(state.origins);
    }
    Ok(())
}

/// Before a command that may leave the page, keeps the page's localStorage for the profile (a
/// session without a profile skips this).
async fn remember_storage(live: &LiveSession, page: &chromium::SessionPage) {
    if live.profile.is_some()
        && let Err(e) = page.remember_local_storage().await
    {
        tracing::debug!(session.id = %live.id, error = %e, "could not read localStorage");
    }
}

/// A live browser's state as a profile holds it: every cookie of its context and the
/// localStorage of every origin it touched.
async fn read_state(browser: &WarmBrowser) -> Result<ProfileState, RunnerError> {
    let (cookies, origins) = tokio::join!(
        browser.process.cookies(&browser.page),
        browser.page.all_local_storage()
    );
    let (cookies, origins) = (cookies.map_err(RunnerError::Internal)?, origins?);
    Ok(ProfileState {
        version: ProfileState::VERSION,
        cookies,
        origins,
        indexed_db: None,
    })
}
