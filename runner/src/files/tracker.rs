//! Following one session's downloads: each `Began` event becomes a row, progress is held to the
//! plan's limits (the browser is told to cancel beyond them, the row marked `too_large`, the
//! partial file removed), and a completed file is kept ([`Files::keep`]). Finished downloads are
//! published for the `wait_for_download` action.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    Clock,
    ids::{AccountId, DownloadId, SessionId},
};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{DownloadRecord, DownloadState, FileError, Files, names};
use crate::chromium::{BrowserProcess, DownloadEvent};

/// How much a session may download.
#[derive(Clone, Copy, Debug)]
pub struct DownloadLimits {
    /// The largest single file.
    pub per_file: u64,
    /// All of a session's completed downloads together.
    pub per_session: u64,
}

/// A download that will not change any more.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub id: DownloadId,
    pub filename: String,
    pub state: DownloadState,
    pub size: i64,
    pub sha256: Option<String>,
}

/// The downloads of one live session; following stops when this is dropped.
pub struct SessionDownloads {
    finished: watch::Receiver<Vec<Finished>>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SessionDownloads {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

impl SessionDownloads {
    /// Stops following new events, lets what is already reported finish (a completed file
    /// being kept), and waits for that at most `within`.
    pub async fn finish(&self, within: Duration) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
        }
    }

    /// How many downloads have finished so far.
    pub fn finished_count(&self) -> usize {
        self.finished.borrow().len()
    }

    /// The download finishing after the first `seen`, waiting until `deadline`.
    pub async fn next_after(&self, seen: usize, deadline: Instant) -> Option<Finished> {
        let mut rx = self.finished.clone();
        let wait = rx.wait_for(|list| list.len() > seen);
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, wait).await {
            Ok(Ok(list)) => list.get(seen).cloned(),
            _ => None,
        }
    }
}

/// Who the downloads belong to and where they land.
pub struct Follow {
    pub files: Files,
    pub process: Arc<BrowserProcess>,
    pub context: String,
    pub dir: PathBuf,
    pub account: AccountId,
    pub session: SessionId,
    pub limits: DownloadLimits,
    pub clock: Clock,
}

struct Active {
    record: DownloadRecord,
    /// Bytes written so far.
    received: u64,
}

/// Downloads one session may have in progress at once; more are cancelled as they begin.
pub const MAX_PARALLEL_DOWNLOADS: usize = 8;

/// Downloads one session may begin in all (each is a row, empty files too); more are cancelled.
pub const MAX_DOWNLOADS_PER_SESSION: usize = 1000;

/// Starts following the session's downloads.
pub async fn follow(f: Follow) -> anyhow::Result<SessionDownloads> {
    let mut events = f.process.follow_downloads(&f.context, &f.dir).await?;
    let (tx, finished) = watch::channel(Vec::new());
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut tracked = Tracked::default();
        loop {
            let event = tokio::select! {
                biased;
                event = events.events.recv() => event,
                _ = stopped.cancelled() => None,
            };
            let Some(event) = event else { break };
            if let Some(done) = handle(&f, &mut tracked, event).await {
                tracing::info!(session.id = %f.session, download.id = %done.id, state = ?done.state, "a download ended");
                tx.send_modify(|list| list.push(done));
            }
        }
        tracing::debug!(session.id = %f.session, "downloads no longer followed");
        // Stopped: what the browser already reported still counts (a completed file is kept).
        while let Ok(event) = events.events.try_recv() {
            if let Some(done) = handle(&f, &mut tracked, event).await {
                tx.send_modify(|list| list.push(done));
            }
        }
    });
    Ok(SessionDownloads {
        finished,
        stop,
        task: std::sync::Mutex::new(Some(task)),
    })
}

/// What a session's tracker holds between events.
#[derive(Default)]
struct Tracked {
    active: HashMap<String, Active>,
    /// Bytes of the downloads kept so far.
    kept: u64,
    /// Downloads begun (rows made) so far.
    begun: usize,
}

/// One browser event: a row begun, a limit enforced, a file kept or a download ended.
async fn handle(f: &Follow, tracked: &mut Tracked, event: DownloadEvent) -> Option<Finished> {
    let Tracked {
        active,
        kept,
        begun,
    } = tracked;
    match event {
        DownloadEvent::Began {
            guid,
            url,
            suggested_filename,
        } => {
            if *begun >= MAX_DOWNLOADS_PER_SESSION {
                tracing::info!(session.id = %f.session, "the session's download count is used up; cancelling one");
                let _ = f.process.cancel_download(&f.context, &guid).await;
            } else if began(f, active, guid, &url, &suggested_filename).await {
                *begun += 1;
            }
            None
        }
        DownloadEvent::Progress {
            guid,
            received_bytes,
        } => {
            if let Some(a) = active.get_mut(&guid) {
                a.received = received_bytes;
            }
            // Downloads in flight count against the session's total with what it kept.
            let in_flight: u64 = active.values().map(|a| a.received).sum();
            let over =
                received_bytes > f.limits.per_file || *kept + in_flight > f.limits.per_session;
            match active.remove(&guid) {
                Some(a) if over => Some(too_large(f, &guid, a, received_bytes).await),
                Some(a) => {
                    active.insert(guid, a);
                    None
                }
                None => None,
            }
        }
        DownloadEvent::Completed {
            guid,
            received_bytes,
        } => match active.remove(&guid) {
            Some(a) => {
                let room = f
                    .limits
                    .per_file
                    .min(f.limits.per_session.saturating_sub(*kept));
                let path = f.dir.join(&guid);
                let outcome = match f.files.keep(&a.record, &path, room, f.clock.now_ms()).await {
                    Ok((size, sha256)) => {
                        *kept += u64::try_from(size).unwrap_or(0);
                        finished_as(&a.record, DownloadState::Completed, size, Some(sha256))
                    }
                    Err(FileError::TooLarge) => too_large(f, &guid, a, received_bytes).await,
                    Err(err) => {
                        tracing::warn!(session.id = %f.session, error = %err, "a download could not be kept");
                        end(f, &a.record, DownloadState::Failed, received_bytes).await
                    }
                };
                remove(&path).await;
                Some(outcome)
            }
            None => None,
        },
        DownloadEvent::Canceled { guid } => match active.remove(&guid) {
            Some(a) => {
                remove(&f.dir.join(&guid)).await;
                Some(end(f, &a.record, DownloadState::Failed, 0).await)
            }
            None => None,
        },
    }
}

async fn began(
    f: &Follow,
    active: &mut HashMap<String, Active>,
    guid: String,
    url: &str,
    suggested: &str,
) -> bool {
    if active.len() >= MAX_PARALLEL_DOWNLOADS {
        tracing::info!(session.id = %f.session, "too many downloads at once; cancelling one");
        let _ = f.process.cancel_download(&f.context, &guid).await;
        return false;
    }
    if !is_guid(&guid) {
        // Files are named by GUID in a directory the browser writes: anything else is refused.
        tracing::warn!(session.id = %f.session, "a download with an unexpected id; cancelling it");
        let _ = f.process.cancel_download(&f.context, &guid).await;
        return false;
    }
    let filename = names::sanitize(suggested, "download");
    let now = f.clock.now_ms();
    match f
        .files
        .store
        .begin_download(&f.account, &f.session, &guid, &filename, url, now)
        .await
    {
        Ok(id) => {
            tracing::info!(session.id = %f.session, download.id = %id, "a download began");
            let record = DownloadRecord {
                id,
                account_id: f.account.clone(),
                session_id: f.session.clone(),
                mime_type: Some(names::mime_type(&filename).to_owned()),
                filename,
                url: url.to_owned(),
                state: DownloadState::InProgress,
                size: 0,
                sha256: None,
                blob_address: None,
                created_at: now,
                completed_at: None,
            };
            active.insert(
                guid,
                Active {
                    record,
                    received: 0,
                },
            );
            true
        }
        Err(err) => {
            // Unrecorded, it cannot be listed: stop it rather than fill the disk unseen.
            tracing::warn!(session.id = %f.session, error = %err, "a download could not be recorded; cancelling it");
            let _ = f.process.cancel_download(&f.context, &guid).await;
            false
        }
    }
}

/// Cancels an oversized download and marks it.
async fn too_large(f: &Follow, guid: &str, a: Active, received: u64) -> Finished {
    if let Err(err) = f.process.cancel_download(&f.context, guid).await {
        tracing::warn!(session.id = %f.session, error = %err, "an oversized download could not be cancelled");
    }
    // The browser may still be writing for a moment; remove what it wrote once it stopped.
    let path = f.dir.join(guid);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        remove(&path).await;
    });
    end(f, &a.record, DownloadState::TooLarge, received).await
}

async fn end(f: &Follow, record: &DownloadRecord, state: DownloadState, size: u64) -> Finished {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    if let Err(err) = f
        .files
        .store
        .end_download(&record.id, state, size, f.clock.now_ms())
        .await
    {
        tracing::warn!(session.id = %f.session, error = %err, "a download's end could not be recorded");
    }
    finished_as(record, state, size, None)
}

fn finished_as(
    record: &DownloadRecord,
    state: DownloadState,
    size: i64,
    sha256: Option<String>,
) -> Finished {
    Finished {
        id: record.id.clone(),
        filename: record.filename.clone(),
        state,
        size,
        sha256,
    }
}

async fn remove(path: &std::path::Path) {
    let _ = tokio::fs::remove_file(path).await;
}

/// Whether `s` has the form of the GUIDs Chromium names downloads with (hex and dashes).
fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_guid;

    #[test]
    fn only_guids_name_downloads() {
        assert!(is_guid("8b0b3e2a-1c4d-4e5f-9a6b-7c8d9e0f1a2b"));
        assert!(!is_guid("../../../../../../../etc/shadow----"));
        assert!(!is_guid("8b0b3e2a-1c4d-4e5f-9a6b-7c8d9e0f1a2"));
        assert!(!is_guid("8b0b3e2a/1c4d-4e5f-9a6b-7c8d9e0f1a2b"));
    }
}
