//! Running one command at a time on a live session (navigate, actions, wait, capture), and
//! handing out CDP attachments and live-view watches.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tracing::Instrument;

use common::{
    clock::Millis,
    ids::{AccountId, SessionId},
};

use crate::*;

impl Runner {
    pub(crate) fn live(&self, account: &AccountId, id: &SessionId) -> Option<Arc<LiveSession>> {
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

    /// When a session hosted here ends by idleness if nothing happens before: its last
    /// command plus its idle timeout. `None` while a command runs or a person holds a handoff
    /// (idleness does not count then), or when the session is not live here.
    pub fn idle_deadline(&self, account: &AccountId, id: &SessionId) -> Option<Millis> {
        let live = self.live(account, id)?;
        if live.busy.load(Ordering::SeqCst) > 0 || live.handoff_pending() {
            return None;
        }
        Some(
            live.last_activity
                .load(Ordering::SeqCst)
                .saturating_add(live.idle_timeout_ms)
                .min(live.expires_at),
        )
    }

    /// Live counters of a session hosted here.
    pub async fn live_counters(&self, account: &AccountId, id: &SessionId) -> Option<Counters> {
        let live = self.live(account, id)?;
        let guard = live.browser.try_lock().ok();
        Some(live.counters(guard.as_ref().and_then(|g| g.as_ref())))
    }

    /// Runs one command on a session, serialized with its other commands and cancelled when
    /// the session ends. `NotFound` for unknown sessions and other accounts' sessions.
    pub(crate) async fn command<T, F>(
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
    pub(crate) async fn not_live_error(&self, account: &AccountId, id: &SessionId) -> RunnerError {
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
                && let Err(proxy::Refusal::Policy(common::egress::Refusal::Denied { host })) =
                    proxy::resolve_allowed(&self.policy, &self.devtools, &host, port)
                        .instrument(common::phase!("navigate.precheck"))
                        .await
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
        let upload_paths = self.upload_paths(account, id, actions).await?;
        self.command(account, id, async |live, page| {
            remember_storage(&live, page).await;
            live.load_mark.store(page.load_mark(), Ordering::SeqCst);
            let ctx = chromium::ActionContext {
                upload_paths,
                downloads: live.downloads.as_ref(),
            };
            let result = page.run_actions(actions, timeout_per_action, &ctx).await;
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

    /// The paths of the uploads `set_files` actions name; an upload of another session (or
    /// account) is unknown, naming the action.
    async fn upload_paths(
        &self,
        account: &AccountId,
        id: &SessionId,
        actions: &[Action],
    ) -> Result<std::collections::HashMap<String, String>, RunnerError> {
        let mut paths = std::collections::HashMap::new();
        for (index, action) in actions.iter().enumerate() {
            let Action::SetFiles { uploads, .. } = action else {
                continue;
            };
            for upload in uploads {
                match self.files.store.upload(account, id, upload).await {
                    Ok(u) => {
                        paths.insert(upload.clone(), u.path);
                    }
                    Err(common::StoreError::NotFound) => {
                        return Err(RunnerError::Invalid {
                            field: format!("actions[{index}].uploads"),
                            message: format!("{upload} is not an upload of this session"),
                        });
                    }
                    Err(e) => return Err(RunnerError::Internal(e.into())),
                }
            }
        }
        Ok(paths)
    }

    /// Whether this runner hosts the live session `id` of `account` (memory only).
    pub fn hosts(&self, account: &AccountId, id: &SessionId) -> bool {
        self.live(account, id).is_some()
    }

    /// Where a live session of `account` keeps its uploads (created, readable by its browser).
    pub fn uploads_dir(
        &self,
        account: &AccountId,
        id: &SessionId,
    ) -> Result<std::path::PathBuf, RunnerError> {
        let live = self.live(account, id).ok_or(RunnerError::NotFound)?;
        Ok(live.uploads_dir.clone())
    }

    /// The files of this deployment's sessions.
    pub fn files(&self) -> &files::Files {
        &self.files
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
}

impl Runner {
    /// Pauses (`false`) or resumes (`true`) a recorded session's recording; on resume the
    /// recorder takes a full snapshot, so the replay shows the page as it is then. `Ok(false)`
    /// when the session is not recorded.
    pub async fn set_recording(
        &self,
        account: &AccountId,
        id: &SessionId,
        on: bool,
    ) -> Result<bool, RunnerError> {
        self.command(account, id, async |live, page| {
            let Some(recording) = &live.recording else {
                return Ok(false);
            };
            let changed = recording
                .set_recording(on)
                .await
                .map_err(|e| RunnerError::Internal(e.into()))?;
            if changed && on {
                page.recorder_snapshot().await?;
            }
            Ok(true)
        })
        .await
    }
}
