//! Files of sessions. Downloads: every download of a session lands in its own directory inside
//! its sandbox, is followed from the browser's events (`tracker`), held to the plan's limits
//! (cancelled and marked `too_large` beyond them), and when complete is sealed (AES-256-GCM) into
//! the blob store with its SHA-256, so it outlives the session and its runner. Uploads: files a
//! client places in the session's upload directory, the only place file inputs may read from.
//!
//! A session never sees another session's files: each has its own directories, emptied when it
//! ends, and every read of the tables takes the account and the session.

mod arriving;
pub mod names;
pub mod store;
mod tracker;
pub mod zip;

use std::path::Path;

use common::{
    crypto::{SecretBox, hex},
    ids::{AccountId, DownloadId, SessionId},
};
use profiles::BlobStore;
use sha2::{Digest, Sha256};

pub use arriving::{Arrivals, Arriving};
pub use store::{DownloadRecord, DownloadState, FileStore, UploadRecord};
pub use tracker::{DownloadLimits, Finished, Follow, SessionDownloads, follow};

/// Why a file could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("the download has not completed")]
    NotReady,
    #[error("the file is larger than the plan allows")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] common::StoreError),
    #[error("file storage failed: {0}")]
    Storage(String),
}

/// The session files of this deployment: their table, the blob store, and the key that seals
/// downloaded bytes at rest.
#[derive(Clone)]
pub struct Files {
    pub store: FileStore,
    /// Uploads in progress on this node.
    pub arrivals: Arrivals,
    blobs: BlobStore,
    sealer: SecretBox,
}

impl Files {
    pub fn new(store: FileStore, blobs: BlobStore, sealer: SecretBox) -> Self {
        Files {
            store,
            arrivals: Arrivals::default(),
            blobs,
            sealer,
        }
    }

    /// The bytes of a completed download of `account`'s session, checked against their SHA-256.
    pub async fn read_download(
        &self,
        account: &AccountId,
        session: &SessionId,
        id: &DownloadId,
    ) -> Result<(DownloadRecord, Vec<u8>), FileError> {
        let record = self
            .store
            .download(account, session, id)
            .await
            .map_err(|e| match e {
                common::StoreError::NotFound => FileError::NotFound,
                other => FileError::Store(other),
            })?;
        let (Some(address), Some(sha256)) = (&record.blob_address, &record.sha256) else {
            return Err(FileError::NotReady);
        };
        let sealed = self
            .blobs
            .get(address)
            .await
            .map_err(|e| FileError::Storage(e.to_string()))?;
        let bytes = self
            .sealer
            .open_bytes(&sealed)
            .map_err(|e| FileError::Storage(e.to_string()))?;
        if &hex(&Sha256::digest(&bytes)) != sha256 {
            return Err(FileError::Storage(format!(
                "download {id} does not match its recorded digest"
            )));
        }
        Ok((record, bytes))
    }

    /// Every completed download of a session as one ZIP archive, oldest first.
    pub async fn archive(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<Vec<u8>, FileError> {
        let mut files = Vec::new();
        let mut cursor: Option<DownloadId> = None;
        loop {
            let (page, more) = self
                .store
                .downloads(account, session, cursor.as_ref(), 100)
                .await?;
            cursor = page.last().map(|d| d.id.clone());
            for d in page {
                if d.state == DownloadState::Completed {
                    let (record, bytes) = self.read_download(account, session, &d.id).await?;
                    files.push((record.filename, bytes));
                }
            }
            if !more {
                break;
            }
        }
        zip::archive(&files).ok_or(FileError::TooLarge)
    }

    /// Deletes the downloads of accounts on `tier` that began before `before`, rows first (a
    /// reader then finds nothing rather than a row without bytes); answers how many files went.
    pub async fn expire(
        &self,
        tier: &str,
        before: common::clock::Millis,
    ) -> Result<usize, FileError> {
        let addresses = self.store.expire_downloads(tier, before).await?;
        for address in &addresses {
            if let Err(err) = self.blobs.delete(address).await {
                tracing::warn!(error = %err, "an expired download's bytes could not be deleted");
            }
        }
        Ok(addresses.len())
    }

    /// Seals the finished file at `path` into the blob store and marks the download completed;
    /// returns its size and SHA-256. `limit` bounds what is read.
    async fn keep(
        &self,
        record: &DownloadRecord,
        path: &Path,
        limit: u64,
        now: common::clock::Millis,
    ) -> Result<(i64, String), FileError> {
        use tokio::io::AsyncReadExt;
        let storage = |e: std::io::Error| FileError::Storage(e.to_string());
        // The browser writes this directory: never follow a link it left there, and read only a
        // regular file, at most `limit` bytes of it.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .await
            .map_err(storage)?;
        let meta = file.metadata().await.map_err(storage)?;
        if !meta.is_file() {
            return Err(FileError::Storage(
                "a download is not a regular file".into(),
            ));
        }
        if meta.len() > limit {
            return Err(FileError::TooLarge);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(storage)?;
        if bytes.len() as u64 > limit {
            return Err(FileError::TooLarge);
        }
        let sha256 = hex(&Sha256::digest(&bytes));
        let sealed = self
            .sealer
            .seal_bytes(&bytes)
            .map_err(|e| FileError::Storage(e.to_string()))?;
        let address = hex(&Sha256::digest(&sealed));
        self.blobs
            .put(&address, sealed)
            .await
            .map_err(|e| FileError::Storage(e.to_string()))?;
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        self.store
            .complete_download(
                record,
                store::Completed {
                    size,
                    sha256: &sha256,
                    blob_address: &address,
                    now,
                },
            )
            .await?;
        Ok((size, sha256))
    }
}
