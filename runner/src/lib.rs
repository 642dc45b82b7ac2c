//! Driftstack's browser runner: the warm pool of Chromium processes and the sessions they host.
//!
//! It owns a session from the moment the API admits it (the `sessions` row already counts
//! against the account's cap) until its end: it waits for a browser slot (bounded FIFO queue),
//! takes a warm browser, applies the session's settings, runs its commands one at a time, and
//! ends it on release, idle timeout, maximum duration, browser crash or shutdown — writing every
//! transition to the database. One live session per Chromium process: sessions never share a
//! process, so nothing of one session can be seen from another.
//!
//! This crate knows nothing of HTTP; only `chromium/` touches chromiumoxide. `admission` starts
//! sessions, `commands` drives them, `lifecycle` ends them; `live` is a hosted session.

pub mod cdp;
pub mod chromium;
pub mod control;
pub mod files;
pub mod handoff;
pub mod logs;
pub mod pool;
pub mod priority;
pub mod proxy;
pub mod recording;
pub mod registry;
pub mod sandbox;
pub mod spec;
pub mod store;

mod admission;
mod commands;
mod lifecycle;
mod live;
mod tabs;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Clock,
    ids::{AccountId, RunnerId, SessionId},
};
use profiles::{ProfileError, Profiles};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::spec::*;
use crate::{chromium::LaunchOptions, pool::Pool, store::SessionStore};
use admission::{read_state, remember_storage};
use lifecycle::register;
use live::LiveSession;
pub use live::{CdpAttachment, ViewerSlot, Watch};
pub use tabs::Tab;

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

/// Where a runner keeps what it knows: sessions, profiles, the runner registry, session files,
/// logs and recordings.
pub struct Stores {
    pub sessions: SessionStore,
    pub profiles: Profiles,
    pub registry: registry::RunnerRegistry,
    pub files: files::Files,
    pub logs: logs::LogStore,
    pub recordings: recording::Recordings,
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
    /// How much the session may download.
    pub download_limits: files::DownloadLimits,
    /// Bytes of log entries the session may keep.
    pub log_limit_bytes: u64,
    /// Record the session (rrweb), within this limit.
    pub record: Option<RecordRequest>,
    /// Who starts it (`key_…` or `usr_…`), stored with it.
    pub created_by: Option<String>,
    /// Where it is started from (`api`, `mcp` or `dashboard`), stored with it.
    pub source: Option<String>,
}

/// How a session is recorded.
pub struct RecordRequest {
    pub options: chromium::RecordOptions,
    /// Stored bytes the recording may take.
    pub limit_bytes: u64,
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
    files: files::Files,
    logs: logs::LogStore,
    recordings: recording::Recordings,
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
        stores: Stores,
        clock: Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let Stores {
            sessions: store,
            profiles,
            registry,
            files,
            logs,
            recordings,
        } = stores;
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
            files,
            logs,
            recordings,
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
}
