//! The page monitor: follows a page's lifecycle and network events (main-frame loads, requests
//! in flight, the main document's status and the egress guard's marker on it, blocked requests)
//! and lets callers wait until what it saw satisfies a condition.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chromiumoxide::{
    Page,
    cdp::browser_protocol::{
        browser::BrowserContextId,
        network::{
            EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent,
            EventResponseReceived, ResourceType,
        },
        page::EventLifecycleEvent,
    },
};
use futures::StreamExt;
use tokio::sync::Notify;

use super::SessionPage;

/// What the monitor has seen of a page.
#[derive(Default)]
pub(super) struct MonitorState {
    /// `load` events of the main frame so far.
    pub(super) loads: u64,
    /// Lifecycle events of the main frame, by loader id.
    pub(super) lifecycle: HashMap<String, HashSet<String>>,
    /// Main-document response status, by loader id.
    pub(super) document_status: HashMap<String, u16>,
    /// The egress guard's marker on a main-document response it wrote itself, by loader id.
    pub(super) document_marker: HashMap<String, String>,
    /// Requests in flight, with when they started.
    inflight: HashMap<String, Instant>,
    last_network_activity: Option<Instant>,
}

pub(super) struct Monitor {
    state: Mutex<MonitorState>,
    changed: Notify,
    pub(super) requests: AtomicU64,
    pub(super) blocked: AtomicU64,
    main_frame: String,
}

impl Monitor {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, MonitorState> {
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
    pub(super) async fn wait_for(
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

const NETWORK_IDLE: Duration = Duration::from_millis(500);
/// Requests open longer than this (long polls, streams, or ones whose end event Chromium never
/// sent) do not keep a page from counting as idle.
const STALE_REQUEST: Duration = Duration::from_secs(10);

pub(super) fn network_idle(s: &MonitorState) -> bool {
    s.inflight
        .values()
        .all(|started| started.elapsed() >= STALE_REQUEST)
        && s.last_network_activity
            .is_none_or(|t| t.elapsed() >= NETWORK_IDLE)
}

impl SessionPage {
    pub(super) async fn start(page: Page, context_id: BrowserContextId) -> anyhow::Result<Self> {
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
            recorder_world: Arc::default(),
            sized: None,
        })
    }
}
