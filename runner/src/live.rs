//! A session hosted here: its browser, counters and cancellation; and the handles the API
//! holds on it (a CDP attachment, a live-view watch).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering},
};

use common::{
    Clock,
    clock::Millis,
    ids::{AccountId, SessionId},
};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::{pool::WarmBrowser, *};

pub(crate) struct LiveSession {
    pub(crate) id: SessionId,
    pub(crate) account_id: AccountId,
    pub(crate) browser: tokio::sync::Mutex<Option<WarmBrowser>>,
    pub(crate) permit: Mutex<Option<OwnedSemaphorePermit>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) expires_at: Millis,
    pub(crate) idle_timeout_ms: i64,
    pub(crate) last_activity: AtomicI64,
    pub(crate) busy: AtomicU64,
    pub(crate) navigations: AtomicU64,
    pub(crate) actions: AtomicU64,
    pub(crate) captures: AtomicU64,
    pub(crate) load_mark: AtomicU64,
    /// Raw CDP was used: the process must never be reused.
    pub(crate) dirty: AtomicBool,
    pub(crate) egress: Arc<proxy::EgressCounters>,
    /// The session goes out through its own upstream proxy, which resolves destinations.
    pub(crate) has_upstream: bool,
    /// The browser's DevTools WebSocket, for raw CDP.
    pub(crate) devtools_url: String,
    /// The session's page, for the screencast.
    pub(crate) target_id: String,
    /// What the session's raw CDP connections share (contained dirs, contexts, limits).
    pub(crate) cdp: Arc<cdp::SessionCdp>,
    /// Why it ended, once it has.
    pub(crate) end_reason: Mutex<Option<EndReason>>,
    /// The profile this session runs on, if any.
    pub(crate) profile: Option<ProfileRequest>,
    /// Its logs' writer.
    pub(crate) log: crate::logs::SessionLog,
    /// Its recording, when it is recorded.
    pub(crate) recording: Option<crate::recording::SessionRecording>,
    /// Its downloads, followed while it lives (`None` when following could not start).
    pub(crate) downloads: Option<crate::files::SessionDownloads>,
    /// Where its downloads land and its uploads are placed (emptied when it ends).
    pub(crate) downloads_dir: std::path::PathBuf,
    pub(crate) uploads_dir: std::path::PathBuf,
    /// Who controls its interactive live view.
    pub(crate) control: crate::control::Control,
    /// How its browser was set up (for the tabs it adopts).
    pub(crate) spec: SessionSpec,
    /// Its handoff to a person, if one was requested.
    pub(crate) handoff: crate::handoff::HandoffCell,
    /// One handoff change at a time (the stored state is the last one made).
    pub(crate) handoff_lock: tokio::sync::Mutex<()>,
    /// Its live viewers now.
    pub(crate) viewers: AtomicUsize,
}

impl LiveSession {
    pub(crate) fn counters(&self, browser: Option<&WarmBrowser>) -> Counters {
        // Every tab the session drove counts (a tab it left keeps counting).
        let base = browser
            .map(|b| {
                std::iter::once(&b.page)
                    .chain(&b.others)
                    .map(chromium::SessionPage::counters)
                    .fold(Counters::default(), |acc, c| Counters {
                        requests: acc.requests + c.requests,
                        blocked_requests: acc.blocked_requests + c.blocked_requests,
                        ..acc
                    })
            })
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
    pub(crate) live: Arc<LiveSession>,
    pub(crate) clock: Clock,
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

    /// The command log of one CDP connection.
    pub fn command_log(&self) -> crate::logs::commands::CommandLog {
        crate::logs::commands::CommandLog::new(self.live.log.sink(), self.clock.clone())
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
    pub(crate) live: Arc<LiveSession>,
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

    /// Whether browser context `id` is this session's: its tabs are the pages in its own
    /// context and in those its clients created (a reused browser's next session has another).
    pub fn owns_context(&self, id: &str) -> bool {
        self.live.cdp.owns_context(id)
    }

    /// Counts a live viewer of the session; `None` past `max` at once. The count drops with
    /// the guard.
    pub fn viewer_slot(&self, max: usize) -> Option<ViewerSlot> {
        let n = self.live.viewers.fetch_add(1, Ordering::SeqCst);
        let slot = ViewerSlot {
            live: self.live.clone(),
        };
        (n < max).then_some(slot)
    }

    /// Who controls the interactive view.
    pub fn control(&self) -> &crate::control::Control {
        &self.live.control
    }

    /// The session's handoff and its changes.
    pub fn handoff(&self) -> tokio::sync::watch::Receiver<crate::handoff::HandoffStatus> {
        self.live.handoff.subscribe()
    }

    /// Records input from the live view, so a session driven by a person does not idle out.
    pub fn touch(&self, now: Millis) {
        self.live.last_activity.store(now, Ordering::SeqCst);
    }

    /// Resolves when the session ends, with the reason.
    pub async fn ended(&self) -> EndReason {
        ended(&self.live).await
    }
}

/// One of a session's live viewers (see [`Watch::viewer_slot`]).
pub struct ViewerSlot {
    live: Arc<LiveSession>,
}

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        self.live.viewers.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn ended(live: &LiveSession) -> EndReason {
    live.cancel.cancelled().await;
    live.end_reason
        .lock()
        .ok()
        .and_then(|r| *r)
        .unwrap_or(EndReason::Released)
}
