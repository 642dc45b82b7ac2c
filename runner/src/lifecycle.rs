//! How sessions end (release, timeouts, crashes, shutdown), saving a persisting session's state
//! into its profile, and the runner's heartbeat in the registry.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};
use tracing::Instrument;

use common::{
    clock::Millis,
    ids::{AccountId, SessionId},
};
use profiles::ProfileError;

use crate::{pool::WarmBrowser, *};

impl Runner {
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
        if let Err(err) = self
            .store
            .mark_closing(id)
            .instrument(common::phase!("release.closing"))
            .await
        {
            tracing::warn!(session.id = %id, error = %err, "could not mark the session closing");
        }
        let browser = live.browser.lock().await.take();
        let counters = live.counters(browser.as_ref());
        self.forget_files(&live)
            .instrument(common::phase!("release.files"))
            .await;
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
            // A live viewer still connected holds a DevTools connection to this browser: it is
            // not handed to another session while that could still be open.
            let reusable = reason == EndReason::Released
                && !live.dirty.load(Ordering::SeqCst)
                && live.viewers.load(Ordering::SeqCst) == 0
                && browser.process.is_alive();
            let last_frame = self.last_frame_of(&live, reason);
            self.pool.give_back(browser, reusable, last_frame);
        }
        let permit = match live.permit.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(permit);
        if let Err(err) = self
            .store
            .finish(
                id,
                reason,
                self.clock.now_ms(),
                &counters,
                (reason == EndReason::BrowserCrashed).then_some(
                    "The browser process exited or stopped answering during the session.",
                ),
            )
            .instrument(common::phase!("release.finish"))
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

    /// Who gets the page's last frame as the session ends for `reason`: nobody when the browser
    /// is gone, the session's recording is paused (the page may be one the user hides) or the
    /// operator turned last frames off.
    fn last_frame_of(
        &self,
        live: &LiveSession,
        reason: EndReason,
    ) -> Option<crate::recording::frame::FrameTarget> {
        let gone = matches!(
            reason,
            EndReason::BrowserCrashed | EndReason::RunnerLost | EndReason::StartFailed
        );
        let hidden = live
            .recording
            .as_ref()
            .is_some_and(|r| r.sink().is_paused());
        (!gone && !hidden && crate::recording::frame::wanted()).then(|| {
            crate::recording::frame::FrameTarget {
                recordings: self.recordings.clone(),
                account: live.account_id.clone(),
                session: live.id.clone(),
                clock: self.clock.clone(),
            }
        })
    }

    /// A session's downloads stop being followed, unfinished ones fail, and its download and
    /// upload directories are emptied: the next session of this browser starts with none.
    async fn forget_files(&self, live: &LiveSession) {
        // What the page logged last is written before the session reads as ended.
        live.log.finish(std::time::Duration::from_secs(5)).await;
        if let Some(recording) = &live.recording {
            recording.finish(std::time::Duration::from_secs(5)).await;
        }
        if let Some(downloads) = &live.downloads {
            // A file the browser finished just before the end is still kept.
            downloads.finish(std::time::Duration::from_secs(5)).await;
        }
        if let Err(err) = self
            .files
            .store
            .fail_unfinished(&live.id, self.clock.now_ms())
            .await
        {
            tracing::warn!(session.id = %live.id, error = %err, "unfinished downloads not marked failed");
        }
        for dir in [&live.downloads_dir, &live.uploads_dir] {
            if let Err(err) = empty_dir(dir) {
                tracing::warn!(session.id = %live.id, dir = %dir.display(), error = %err, "a session's files could not be removed");
            }
        }
    }

    /// Saves a session's final state into its profile. A failure is logged and recorded on the
    /// profile, which keeps its previous state.
    pub(crate) async fn save_profile(
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

    pub(crate) async fn reap_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.clock.now_ms();
            self.expire_handoffs(now).await;
            let due: Vec<(SessionId, EndReason)> = self
                .map()
                .values()
                .filter_map(|s| {
                    if now >= s.expires_at {
                        Some((s.id.clone(), EndReason::MaxDuration))
                    } else if s.busy.load(Ordering::SeqCst) == 0
                        && !s.handoff_pending()
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
    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
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

pub(crate) async fn register(
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

/// Removes everything inside `dir`, keeping `dir` itself (and its owner).
fn empty_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // The entry's own type: a link is removed, never followed.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
