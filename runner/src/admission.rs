//! Starting a session: a browser slot (bounded FIFO queue), a warm browser, the profile's lock and
//! state, the session's settings; and undoing all of it when a start fails.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64},
    },
    time::Instant,
};

use common::ids::{AccountId, ProfileId, SessionId};
use profiles::ProfileState;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    pool::WarmBrowser,
    store::{NewSession, SessionRecord},
    *,
};

impl Runner {
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
            created_by: req.created_by.as_deref(),
            source: req.source.as_deref(),
        };
        if !self
            .store
            .insert_under_cap(&new, req.cap)
            .instrument(common::phase!("create.insert"))
            .await?
        {
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
        .instrument(common::phase!("create.slot"))
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
        let mut browser = loop {
            attempt += 1;
            let mut browser = match self
                .pool
                .take()
                .instrument(common::phase!("create.take"))
                .await
            {
                Ok(b) => b,
                Err(err) => {
                    self.start_failed(&req, "No browser could be started on the node.")
                        .await?;
                    return Err(
                        RunnerError::Internal(err.context("no browser could be started")).into(),
                    );
                }
            };
            match prepare(&mut browser, &req.spec, profile_state.clone())
                .instrument(common::phase!("create.prepare"))
                .await
            {
                Ok(()) => break browser,
                Err(err) => {
                    // The page may be half-configured: never hand this browser to anyone else.
                    self.pool.give_back(browser, false, None);
                    if matches!(err, RunnerError::Crashed) && attempt == 1 {
                        tracing::warn!(session.id = %req.id, "a warm browser died during setup; trying another");
                        continue;
                    }
                    self.start_failed(&req, &setup_failure(&err)).await?;
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
        let downloads_dir = browser.process.downloads_dir();
        let uploads_dir = browser.process.uploads_dir();
        // What the session follows from its first moment: downloads, the page's logs, and
        // (when asked) the recorder.
        let (downloads, log, recording) = async {
            let downloads = match files::follow(files::Follow {
                files: self.files.clone(),
                process: process.clone(),
                context: browser.page.context_id(),
                dir: downloads_dir.clone(),
                account: req.account_id.clone(),
                session: req.id.clone(),
                limits: req.download_limits,
                clock: self.clock.clone(),
            })
            .await
            {
                Ok(d) => Some(d),
                Err(err) => {
                    tracing::warn!(session.id = %req.id, error = %err, "downloads cannot be followed in this session");
                    None
                }
            };
            let log = crate::logs::start(crate::logs::LogTarget {
                store: self.logs.clone(),
                account: req.account_id.clone(),
                session: req.id.clone(),
                limit_bytes: req.log_limit_bytes,
            });
            if let Err(err) = browser.page.follow_logs(log.sink()).await {
                tracing::warn!(session.id = %req.id, error = %err, "the page's logs cannot be followed in this session");
            }
            let recording = match &req.record {
                Some(record) => self.start_recording(&req, record, &mut browser).await,
                None => None,
            };
            (downloads, log, recording)
        }
        .instrument(common::phase!("create.follow"))
        .await;
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
            log,
            recording,
            downloads,
            downloads_dir,
            uploads_dir,
            control: Default::default(),
            spec: req.spec.clone(),
            handoff: tokio::sync::watch::Sender::new(Default::default()),
            handoff_lock: tokio::sync::Mutex::new(()),
            viewers: Default::default(),
        });
        self.map().insert(req.id.clone(), live.clone());
        let create_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let started_at = self.clock.now_ms();
        let activated = self
            .store
            .activate(
                &req.account_id,
                &req.id,
                &self.config.id,
                started_at,
                create_ms,
                live.recording.is_some(),
            )
            .instrument(common::phase!("create.activate"))
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
        if !activated {
            // Ended in the meantime (a crash, a shutdown): the row says how.
            return Ok(self
                .store
                .get(&req.account_id, &req.id)
                .instrument(common::phase!("create.read"))
                .await?);
        }
        // The row as activation wrote it, without reading it back.
        Ok(SessionRecord {
            id: req.id.clone(),
            account_id: req.account_id.clone(),
            runner_id: self.config.id.clone(),
            status: SessionStatus::Active,
            options: req.options.clone(),
            created_at: now,
            started_at: Some(started_at),
            expires_at: new.expires_at,
            idle_timeout_ms: idle_ms,
            ended_at: None,
            end_reason: None,
            create_ms: Some(create_ms),
            counters: Counters::default(),
            logs_truncated: false,
            recording: live
                .recording
                .as_ref()
                .map(|_| crate::recording::RecordingState {
                    state: "recording".into(),
                    truncated: false,
                    bytes: 0,
                }),
            handoff: None,
            created_by: req.created_by.clone(),
            source: req.source.clone(),
            failure: None,
        })
    }

    /// Starts recording a new session; a recording that cannot start is logged and the session
    /// goes on unrecorded (its `recording` then reads `null`).
    async fn start_recording(
        &self,
        req: &StartRequest,
        record: &crate::RecordRequest,
        browser: &mut crate::pool::WarmBrowser,
    ) -> Option<crate::recording::SessionRecording> {
        let target = crate::recording::RecordingTarget {
            recordings: self.recordings.clone(),
            account: req.account_id.clone(),
            session: req.id.clone(),
            limit_bytes: record.limit_bytes,
            clock: self.clock.clone(),
        };
        // Its state is written with the session's activation (one write less on the hot path).
        let recording = crate::recording::start(target);
        if let Err(err) = browser
            .page
            .start_recording(recording.sink(), record.options)
            .await
        {
            tracing::warn!(session.id = %req.id, error = %err, "the recorder cannot be injected");
            return None;
        }
        Some(recording)
    }

    /// Records that a session could not start (and why, as a sentence), and frees its profile.
    pub(crate) async fn start_failed(
        &self,
        req: &StartRequest,
        failure: &str,
    ) -> Result<(), common::StoreError> {
        self.store
            .finish(
                &req.id,
                EndReason::StartFailed,
                self.clock.now_ms(),
                &Counters::default(),
                Some(failure),
            )
            .await?;
        self.unlock_profile(req).await;
        Ok(())
    }

    /// Takes the profile's writer lock for the new session and reads its state.
    pub(crate) async fn claim_profile(
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

    pub(crate) async fn unlock_profile(&self, req: &StartRequest) {
        if let Some(p) = &req.profile {
            self.release_profile(&p.id, &req.id).await;
        }
    }

    pub(crate) async fn release_profile(&self, profile: &ProfileId, session: &SessionId) {
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
}

/// Why setting a browser up for a session failed, as its page shows it: the setting at fault
/// when Chromium refused one, never internal detail.
fn setup_failure(err: &RunnerError) -> String {
    match err {
        RunnerError::Invalid { field, message } => {
            format!("Chromium refused the session's `{field}`: {message}.")
        }
        RunnerError::Crashed => "The browser crashed while the session was being set up.".into(),
        _ => "The browser could not be set up for the session.".into(),
    }
}

/// Applies a session's settings and its profile's state to a fresh page, before it is handed out.
pub(crate) async fn prepare(
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
pub(crate) async fn remember_storage(live: &LiveSession, page: &chromium::SessionPage) {
    if live.profile.is_some()
        && let Err(e) = page.remember_local_storage().await
    {
        tracing::debug!(session.id = %live.id, error = %e, "could not read localStorage");
    }
}

/// A live browser's state as a profile holds it: every cookie of its context and the
/// localStorage of every origin it touched.
pub(crate) async fn read_state(browser: &WarmBrowser) -> Result<ProfileState, RunnerError> {
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
