//! Session logs: the console messages, page errors and network log of every session's page, and
//! the CDP command log of raw-CDP clients. Collectors (`chromium::logs`, the CDP proxy) hand
//! entries to a [`LogSink`] without waiting (already redacted, [`redact`]); one writer task per
//! session batches them into the `session_logs` table every
//! [`FLUSH_EVERY`] within the plan's byte limit — past it later entries are dropped and the
//! session is marked `logs_truncated`, the session itself goes on — and flushes what is left
//! when the session ends. [`har`] turns the network log into HAR 1.2.

pub mod commands;
pub mod har;
pub mod redact;
pub mod store;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{
    clock::Millis,
    ids::{AccountId, LogId, SessionId},
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use store::{LogRecord, LogStore, NewLog};

/// What an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// `console.*` calls of the page.
    Console,
    /// Uncaught errors of the page.
    Page,
    /// One network request, once it finished or failed.
    Network,
    /// One CDP command of a raw-CDP client (or an event to it): never its parameters.
    Cdp,
}

impl LogKind {
    pub const ALL: [LogKind; 4] = [
        LogKind::Console,
        LogKind::Page,
        LogKind::Network,
        LogKind::Cdp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Console => "console",
            LogKind::Page => "page",
            LogKind::Network => "network",
            LogKind::Cdp => "cdp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry as a collector reports it (already redacted).
#[derive(Debug)]
pub struct LogEntry {
    pub kind: LogKind,
    /// When it happened (epoch milliseconds).
    pub at: Millis,
    pub data: serde_json::Value,
}

/// Entries a session's collectors may get ahead of its writer; beyond, entries are dropped (and
/// the log marked truncated) rather than slowing the browser's event handling.
const QUEUE: usize = 4096;
/// How often a session's entries are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// The most entries written in one statement.
const BATCH: usize = 200;

/// Where a session's collectors send entries. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<LogEntry>,
    dropped: Arc<AtomicBool>,
}

impl LogSink {
    pub fn send(&self, entry: LogEntry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.store(true, Ordering::Relaxed);
        }
    }
}

/// The log writer of one live session.
pub struct SessionLog {
    sink: LogSink,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SessionLog {
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// Writes what is queued and stops, waiting for that at most `within`.
    pub async fn finish(&self, within: Duration) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

/// Whose log it is and how much of it may be kept.
pub struct LogTarget {
    pub store: LogStore,
    pub account: AccountId,
    pub session: SessionId,
    /// Bytes of entries the session may keep in all.
    pub limit_bytes: u64,
}

/// Starts a session's log writer.
pub fn start(target: LogTarget) -> SessionLog {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let lost = dropped.clone();
    let task = tokio::spawn(async move {
        let mut writer = Writer {
            target,
            batch: Vec::new(),
            kept: 0,
            truncated: false,
        };
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                biased;
                entry = rx.recv() => match entry {
                    Some(entry) => writer.push(entry).await,
                    None => break,
                },
                _ = tick.tick() => writer.flush().await,
                _ = stopped.cancelled() => break,
            }
        }
        while let Ok(entry) = rx.try_recv() {
            writer.push(entry).await;
        }
        if lost.load(Ordering::Relaxed) {
            writer.truncate().await;
        }
        writer.flush().await;
    });
    SessionLog {
        sink: LogSink { tx, dropped },
        stop,
        task: Mutex::new(Some(task)),
    }
}

struct Writer {
    target: LogTarget,
    batch: Vec<NewLog>,
    /// Bytes of the entries kept so far.
    kept: u64,
    truncated: bool,
}

impl Writer {
    async fn push(&mut self, entry: LogEntry) {
        if self.truncated {
            return;
        }
        let text = entry.data.to_string();
        let size = text.len() as u64;
        if self.kept + size > self.target.limit_bytes {
            self.truncate().await;
            return;
        }
        self.kept += size;
        self.batch.push(NewLog {
            id: LogId::generate().to_string(),
            kind: entry.kind.as_str(),
            at: entry.at,
            entry: text,
        });
        if self.batch.len() >= BATCH {
            self.flush().await;
        }
    }

    async fn truncate(&mut self) {
        if self.truncated {
            return;
        }
        self.truncated = true;
        let t = &self.target;
        tracing::info!(session.id = %t.session, "the session's logs reached the plan's limit");
        if let Err(err) = t.store.mark_truncated(&t.session).await {
            tracing::warn!(session.id = %t.session, error = %err, "could not mark a session's logs truncated");
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let t = &self.target;
        if let Err(err) = t.store.insert(&t.account, &t.session, &batch).await {
            // Logs never fail a session; a lost batch is said so in the session.
            tracing::warn!(session.id = %t.session, error = %err, entries = batch.len(), "session log entries not written");
            self.truncate().await;
        }
    }
}
