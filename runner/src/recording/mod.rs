//! Session recordings: DOM replays made by the vendored rrweb recorder, which
//! `chromium::recording` injects into the session's page in an isolated world. Batches of its
//! events arrive here; one writer per session collects them into chunks, compresses (zstd) and
//! seals them (AES-256-GCM) into the blob store every [`CHUNK_EVERY`] — so a recording outlives
//! its runner and is readable while the session runs — within the plan's byte limit (past it the
//! recording stops and says `truncated`; the session goes on). Pausing drops batches at the
//! runner, so a page cannot resume its own recording.

pub mod frame;
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
/// A chunk is written early once its events would pass this many bytes.
const CHUNK_BYTES: usize = 1 << 20;
/// The largest batch of events the recorder may send at once (a full snapshot of a very large
/// page); a larger one truncates the recording, so every stored chunk stays readable.
pub const MAX_BATCH_BYTES: usize = 32 << 20;
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

    /// The recording so far as one JSON array of rrweb events, read a chunk at a time as the
    /// stream is polled (a recording is never held whole in memory). A chunk that cannot be
    /// read is left out with a warning, so the rest stays viewable.
    pub async fn read(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<(RecordingState, EventStream), RecordingError> {
        let state = self
            .store
            .state(account, session)
            .await?
            .ok_or(RecordingError::NotRecorded)?;
        let chunks = self.store.chunks(account, session).await?;
        let reader = ChunkReader {
            recordings: self.clone(),
            session: session.clone(),
            chunks: chunks.into_iter(),
            opened: false,
            wrote_any: false,
            closed: false,
        };
        // Fused: a body may be polled again after its end (the gzip encoder is).
        let stream =
            futures::StreamExt::fuse(futures::stream::unfold(reader, |mut r| async move {
                let piece = r.next_piece().await?;
                Some((Ok(piece), r))
            }));
        Ok((state, Box::pin(stream)))
    }

    /// A chunk's events: JSON values separated by commas, without the brackets.
    async fn open_chunk(&self, chunk: &Chunk) -> Result<Vec<u8>, RecordingError> {
        let compressed = self.open_blob(&chunk.blob_address).await?;
        zstd::bulk::decompress(&compressed, MAX_BATCH_BYTES.max(CHUNK_BYTES))
            .map_err(|e| RecordingError::Storage(e.to_string()))
    }

    /// Stores sealed bytes in the content-addressed blob store; answers their address.
    async fn put_blob(&self, sealed: Vec<u8>) -> Result<String, profiles::BlobError> {
        let address = common::crypto::hex(&sha2::Sha256::digest(&sealed));
        self.blobs.put(&address, sealed).await?;
        Ok(address)
    }

    /// The opened bytes of the blob at `address`.
    async fn open_blob(&self, address: &str) -> Result<Vec<u8>, RecordingError> {
        let storage = |e: String| RecordingError::Storage(e);
        let sealed = self
            .blobs
            .get(address)
            .await
            .map_err(|e| storage(e.to_string()))?;
        self.sealer
            .open_bytes(&sealed)
            .map_err(|e| storage(e.to_string()))
    }

    /// Deletes the blobs of expired rows (`what` names them in a failure's log line).
    async fn delete_blobs(&self, addresses: &[String], what: &str) {
        for address in addresses {
            if let Err(err) = self.blobs.delete(address).await {
                tracing::warn!(error = %err, "an expired {what} could not be deleted");
            }
        }
    }

    /// Deletes the recordings of `tier`'s accounts older than `before`; answers the chunks gone.
    pub async fn expire(
        &self,
        tier: &str,
        before: common::clock::Millis,
    ) -> Result<usize, RecordingError> {
        let addresses = self.store.expire(tier, before).await?;
        self.delete_blobs(&addresses, "recording chunk").await;
        Ok(addresses.len())
    }
}

/// A recording's bytes as they are read: `[`, each chunk's events, `]`.
pub type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send>>;

/// Walks a recording's chunks in order for [`Recordings::read`].
struct ChunkReader {
    recordings: Recordings,
    session: SessionId,
    chunks: std::vec::IntoIter<Chunk>,
    opened: bool,
    wrote_any: bool,
    closed: bool,
}

impl ChunkReader {
    /// The next piece of the JSON array, or `None` after its closing bracket.
    async fn next_piece(&mut self) -> Option<Vec<u8>> {
        if !self.opened {
            self.opened = true;
            return Some(b"[".to_vec());
        }
        for chunk in self.chunks.by_ref() {
            let events = match self.recordings.open_chunk(&chunk).await {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(session.id = %self.session, chunk = chunk.seq, error = %err, "a recording chunk is unreadable and was left out");
                    continue;
                }
            };
            let mut piece = Vec::with_capacity(events.len() + 1);
            if self.wrote_any {
                piece.push(b',');
            }
            self.wrote_any = true;
            piece.extend_from_slice(&events);
            return Some(piece);
        }
        if self.closed {
            return None;
        }
        self.closed = true;
        Some(b"]".to_vec())
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
    changing: tokio::sync::Mutex<()>,
    stop: CancellationToken,
    /// The writer; it answers the last chunk, stored but not yet recorded.
    task: Mutex<Option<JoinHandle<Option<Chunk>>>>,
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
        // One change at a time, so the stored state is the last one made.
        let _one = self.changing.lock().await;
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
        let mut last = None;
        if let Some(mut task) = task {
            match tokio::time::timeout(within, &mut task).await {
                Ok(Ok(chunk)) => last = chunk,
                Ok(Err(_)) => {}
                Err(_) => task.abort(),
            }
        }
        let now = self.clock.now_ms();
        let done = self
            .store
            .complete(&self.account, &self.session, last.as_ref(), now)
            .await;
        if let Err(err) = done {
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

/// Starts recording a session (the runner marks it `recording` when it activates the session).
pub fn start(target: RecordingTarget) -> SessionRecording {
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
        writer.store_chunk().await
    });
    SessionRecording {
        sink,
        changing: tokio::sync::Mutex::new(()),
        stop,
        task: Mutex::new(Some(task)),
        store,
        account,
        session,
        clock,
    }
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
        if batch.len() > MAX_BATCH_BYTES {
            self.write_chunk().await;
            self.truncate().await;
            return;
        }
        // A chunk holds at most CHUNK_BYTES of events, or one batch larger than that.
        if !self.events.is_empty() && self.events.len() + batch.len() > CHUNK_BYTES {
            self.write_chunk().await;
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

    /// Writes the collected events as a chunk (stored and recorded).
    async fn write_chunk(&mut self) {
        let Some(chunk) = self.store_chunk().await else {
            return;
        };
        let t = &self.target;
        if let Err(err) = t
            .recordings
            .store
            .add_chunk(&t.account, &t.session, &chunk, t.clock.now_ms())
            .await
        {
            tracing::warn!(session.id = %t.session, error = %err, "a recording chunk could not be recorded");
            self.truncate().await;
        }
    }

    /// Compresses, seals and stores the collected events in the blob store, within the plan's
    /// bytes; answers the chunk for its row.
    async fn store_chunk(&mut self) -> Option<Chunk> {
        if self.events.is_empty() {
            return None;
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
                return None;
            }
        };
        let size = sealed.len() as u64;
        if self.stored + size > t.limit_bytes {
            self.truncate().await;
            return None;
        }
        let address = match t.recordings.put_blob(sealed).await {
            Ok(address) => address,
            Err(err) => {
                tracing::warn!(session.id = %t.session, error = %err, "a recording chunk could not be stored");
                self.truncate().await;
                return None;
            }
        };
        let chunk = Chunk {
            seq: self.seq,
            blob_address: address,
            events: count,
            bytes: i64::try_from(size).unwrap_or(i64::MAX),
        };
        self.seq += 1;
        self.stored += size;
        Some(chunk)
    }
}
