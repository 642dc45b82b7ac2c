//! Session recordings: DOM replays made by the vendored rrweb recorder, which
//! `chromium::recording` injects into the session's page in an isolated world. Batches of its
//! events arrive here; one writer per session collects them into chunks, compresses (zstd) and
//! seals them (AES-256-GCM) into the blob store every [`CHUNK_EVERY`] — so a recording outlives
//! its runner and is readable while the session runs — within the plan's byte limit (past it the
//! recording stops and says `truncated`; the session goes on). Pausing drops batches at the
//! runner, so a page cannot resume its own recording.

pub mod store;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{
    Clock,
    crypto::SecretBox,
    ids::{AccountId, SessionId},
};
use profiles::BlobStore;
use sha2::Digest;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use store::{Chunk, RecordingState, RecordingStore};

/// How often a session's events are written as a chunk.
pub const CHUNK_EVERY: Duration = Duration::from_secs(2);
/// A chunk is written early once its events reach this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// Batches the recorder may get ahead of the writer; beyond, the recording is truncated.
const QUEUE: usize = 1024;

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("the session was not recorded")]
    NotRecorded,
    #[error(transparent)]
    Store(#[from] common::StoreError),
    #[error("recording storage failed: {0}")]
    Storage(String),
}

/// The recordings of this deployment: their table, the blob store, and the key that seals them.
#[derive(Clone)]
pub struct Recordings {
    pub store: RecordingStore,
    blobs: BlobStore,
    sealer: SecretBox,
}

impl Recordings {
    pub fn new(store: RecordingStore, blobs: BlobStore, sealer: SecretBox) -> Self {
        Recordings {
            store,
            blobs,
            sealer,
        }
    }

    /// The whole recording so far as one JSON array of rrweb events.
    pub async fn read(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<(RecordingState, Vec<u8>), RecordingError> {
        let state = self
            .store
            .state(account, session)
            .await?
            .ok_or(RecordingError::NotRecorded)?;
        let mut out = Vec::from(*b"[");
        for chunk in self.store.chunks(account, session).await? {
            let events = self.open_chunk(&chunk).await?;
            if events.is_empty() {
                continue;
            }
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&events);
        }
        out.push(b']');
        Ok((state, out))
    }

    /// A chunk's events: JSON values separated by commas, without the brackets.
    async fn open_chunk(&self, chunk: &Chunk) -> Result<Vec<u8>, RecordingError> {
        let storage = |e: String| RecordingError::Storage(e);
        let sealed = self
            .blobs
            .get(&chunk.blob_address)
            .await
            .map_err(|e| storage(e.to_string()))?;
        let compressed = self
            .sealer
            .open_bytes(&sealed)
            .map_err(|e| storage(e.to_string()))?;
        zstd::bulk::decompress(&compressed, 64 << 20).map_err(|e| storage(e.to_string()))
    }

    /// Deletes the recordings of `tier`'s accounts older than `before`; answers the chunks gone.
    pub async fn expire(
        &self,
        tier: &str,
        before: common::clock::Millis,
    ) -> Result<usize, RecordingError> {
        let addresses = self.store.expire(tier, before).await?;
        for address in &addresses {
            if let Err(err) = self.blobs.delete(address).await {
                tracing::warn!(error = %err, "an expired recording chunk could not be deleted");
            }
        }
        Ok(addresses.len())
    }
}

/// Where the recorder's batches go (each a JSON array of rrweb events, as text).
#[derive(Clone)]
pub struct RecordingSink {
    tx: mpsc::Sender<String>,
    paused: Arc<AtomicBool>,
    overflow: Arc<AtomicBool>,
}

impl RecordingSink {
    pub fn send(&self, batch: String) {
        if self.paused.load(Ordering::Relaxed) {
            return;
        }
        if self.tx.try_send(batch).is_err() {
            self.overflow.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

/// The recording of one live session.
pub struct SessionRecording {
    sink: RecordingSink,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    store: RecordingStore,
    account: AccountId,
    session: SessionId,
    clock: Clock,
}

impl SessionRecording {
    pub fn sink(&self) -> RecordingSink {
        self.sink.clone()
    }

    /// Pauses (`false`) or resumes (`true`) recording; answers whether it changed.
    pub async fn set_recording(&self, on: bool) -> Result<bool, common::StoreError> {
        let was_paused = self.sink.paused.swap(!on, Ordering::SeqCst);
        if was_paused != on {
            return Ok(false);
        }
        let state = if on { "recording" } else { "paused" };
        self.store.set_state(&self.session, state).await?;
        Ok(true)
    }

    /// Writes what is queued as a last chunk, stops (waiting for that at most `within`), and
    /// marks the recording complete with its `session.recording.ready` webhook.
    pub async fn finish(&self, within: Duration) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
        }
        let now = self.clock.now_ms();
        if let Err(err) = self.store.complete(&self.account, &self.session, now).await {
            tracing::warn!(session.id = %self.session, error = %err, "a recording could not be marked complete");
        }
    }
}

impl Drop for SessionRecording {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

/// Whose recording it is and how much of it may be kept.
pub struct RecordingTarget {
    pub recordings: Recordings,
    pub account: AccountId,
    pub session: SessionId,
    /// Stored (compressed) bytes the recording may take in all.
    pub limit_bytes: u64,
    pub clock: Clock,
}

/// Starts recording a session (its state `recording`).
pub async fn start(target: RecordingTarget) -> Result<SessionRecording, common::StoreError> {
    target
        .recordings
        .store
        .set_state(&target.session, "recording")
        .await?;
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let sink = RecordingSink {
        tx,
        paused: Arc::default(),
        overflow: Arc::default(),
    };
    let overflow = sink.overflow.clone();
    let store = target.recordings.store.clone();
    let account = target.account.clone();
    let session = target.session.clone();
    let clock = target.clock.clone();
    let task = tokio::spawn(async move {
        let mut writer = Writer {
            target,
            events: Vec::new(),
            count: 0,
            seq: 0,
            stored: 0,
            truncated: false,
        };
        let mut tick = tokio::time::interval(CHUNK_EVERY);
        loop {
            tokio::select! {
                biased;
                batch = rx.recv() => match batch {
                    Some(batch) => writer.push(&batch).await,
                    None => break,
                },
                _ = tick.tick() => writer.write_chunk().await,
                _ = stopped.cancelled() => break,
            }
        }
        while let Ok(batch) = rx.try_recv() {
            writer.push(&batch).await;
        }
        if overflow.load(Ordering::Relaxed) {
            writer.truncate().await;
        }
        writer.write_chunk().await;
    });
    Ok(SessionRecording {
        sink,
        stop,
        task: Mutex::new(Some(task)),
        store,
        account,
        session,
        clock,
    })
}

struct Writer {
    target: RecordingTarget,
    /// Events of the chunk being collected: JSON values joined by commas.
    events: Vec<u8>,
    count: i64,
    seq: i64,
    /// Bytes stored so far.
    stored: u64,
    truncated: bool,
}

impl Writer {
    async fn push(&mut self, batch: &str) {
        if self.truncated {
            return;
        }
        // A batch is a JSON array of events: kept only if it is one, its brackets dropped.
        let Ok(events) = serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(batch)
        else {
            return;
        };
        for event in events {
            if !self.events.is_empty() {
                self.events.push(b',');
            }
            self.events.extend_from_slice(event.get().as_bytes());
            self.count += 1;
        }
        if self.events.len() >= CHUNK_BYTES {
            self.write_chunk().await;
        }
    }

    async fn truncate(&mut self) {
        if self.truncated {
            return;
        }
        self.truncated = true;
        self.events.clear();
        let t = &self.target;
        tracing::info!(session.id = %t.session, "the session's recording reached the plan's limit");
        if let Err(err) = t.recordings.store.mark_truncated(&t.session).await {
            tracing::warn!(session.id = %t.session, error = %err, "could not mark a recording truncated");
        }
    }

    async fn write_chunk(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let count = std::mem::take(&mut self.count);
        let t = &self.target;
        let sealed = zstd::bulk::compress(&events, 3)
            .map_err(anyhow::Error::from)
            .and_then(|c| t.recordings.sealer.seal_bytes(&c));
        let sealed = match sealed {
            Ok(sealed) => sealed,
            Err(err) => {
                tracing::warn!(session.id = %t.session, error = %err, "a recording chunk could not be sealed");
                return;
            }
        };
        let size = sealed.len() as u64;
        if self.stored + size > t.limit_bytes {
            self.truncate().await;
            return;
        }
        // The blob store is content-addressed.
        let address = common::crypto::hex(&sha2::Sha256::digest(&sealed));
        if let Err(err) = t.recordings.blobs.put(&address, sealed).await {
            tracing::warn!(session.id = %t.session, error = %err, "a recording chunk could not be stored");
            self.truncate().await;
            return;
        }
        let chunk = Chunk {
            seq: self.seq,
            blob_address: address,
            events: count,
            bytes: i64::try_from(size).unwrap_or(i64::MAX),
        };
        if let Err(err) = t
            .recordings
            .store
            .add_chunk(&t.account, &t.session, &chunk, t.clock.now_ms())
            .await
        {
            tracing::warn!(session.id = %t.session, error = %err, "a recording chunk could not be recorded");
            self.truncate().await;
            return;
        }
        self.seq += 1;
        self.stored += size;
    }
}
