//! [`Profiles`]: what the API and the runner call. It ties the store (rows, references, events),
//! the codec (encryption) and the blob store (objects) together so that every save is written,
//! read back, decoded and counted before a profile points at it — a profile only ever moves from
//! one verified state to another, and a failed or corrupt save leaves its previous state in place.

use std::sync::Arc;

use common::{
    Clock, StoreError,
    ids::{AccountId, ProfileId, SessionId, SnapshotId},
};

use crate::{
    blobs::{BlobError, BlobStore},
    codec::{BlobCodec, CodecError},
    state::{ProfileState, StateSummary},
    store::{NewState, ProfileRecord, ProfileStore, Refusal, SnapshotRecord},
};

/// Why a profile operation failed, from the caller's side.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("no such profile or snapshot")]
    NotFound,
    #[error("the profile is in use by live session {0}")]
    InUse(SessionId),
    #[error("the plan allows {0} profiles")]
    LimitReached(u32),
    #[error("the profile state is larger than the plan's {limit} bytes after compression")]
    TooLarge { limit: usize },
    /// A stored state cannot be read back (corrupt, truncated, or encrypted under a key that is
    /// not configured). The profile itself stays usable.
    #[error("the stored profile state cannot be read: {0}")]
    Unreadable(String),
    /// A save did not read back as written.
    #[error("the saved profile state did not verify: {0}")]
    Unverified(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("profile storage failed: {0}")]
    Storage(String),
}

impl From<Refusal> for ProfileError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => ProfileError::NotFound,
            Refusal::InUse(s) => ProfileError::InUse(s),
            Refusal::LimitReached(n) => ProfileError::LimitReached(n),
            Refusal::Store(StoreError::NotFound) => ProfileError::NotFound,
            Refusal::Store(e) => ProfileError::Store(e),
        }
    }
}

fn not_found(e: StoreError) -> ProfileError {
    match e {
        StoreError::NotFound => ProfileError::NotFound,
        other => ProfileError::Store(other),
    }
}

/// A state written and verified, referenced once, waiting to be pointed at.
struct Written {
    address: String,
    summary: StateSummary,
}

#[derive(Clone)]
pub struct Profiles {
    pub store: ProfileStore,
    codec: Arc<BlobCodec>,
    blobs: BlobStore,
    clock: Clock,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Profiles({:?})", self.blobs)
    }
}

impl Profiles {
    pub fn new(store: ProfileStore, codec: BlobCodec, blobs: BlobStore, clock: Clock) -> Self {
        Profiles {
            store,
            codec: Arc::new(codec),
            blobs,
            clock,
        }
    }

    pub async fn get(
        &self,
        account: &AccountId,
        id: &ProfileId,
    ) -> Result<ProfileRecord, ProfileError> {
        self.store.get(account, id).await.map_err(not_found)
    }

    /// Reads the state a profile record points at (empty for a profile never saved).
    pub async fn read_state(&self, record: &ProfileRecord) -> Result<ProfileState, ProfileError> {
        let Some(address) = &record.state_blob else {
            return Ok(ProfileState {
                version: ProfileState::VERSION,
                ..Default::default()
            });
        };
        self.read_blob(address).await
    }

    async fn read_blob(&self, address: &str) -> Result<ProfileState, ProfileError> {
        let bytes = match self.blobs.get(address).await {
            Ok(b) => b,
            Err(BlobError::NotFound) => {
                return Err(ProfileError::Unreadable("the state blob is missing".into()));
            }
            Err(e) => return Err(ProfileError::Storage(e.to_string())),
        };
        self.codec
            .decode(&bytes)
            .map_err(|e| ProfileError::Unreadable(e.to_string()))
    }

    /// Encodes, stores, reads back and counts `state`; the result holds one reference.
    async fn write(&self, state: &ProfileState, limit: usize) -> Result<Written, ProfileError> {
        let encoded = self.codec.encode(state, limit).map_err(|e| match e {
            CodecError::TooLarge { limit } => ProfileError::TooLarge { limit },
            other => ProfileError::Storage(other.to_string()),
        })?;
        let bytes = encoded.bytes.len() as u64;
        let expected = state.summary(bytes);
        let address = encoded.address;
        let blobs = self.blobs.clone();
        let payload = encoded.bytes;
        let for_put = payload.clone();
        let addr = address.clone();
        self.store
            .reference_new_blob(&address, bytes, self.clock.now_ms(), async move || {
                blobs.put(&addr, for_put).await.map_err(anyhow::Error::new)
            })
            .await?;
        // Read back what landed. An existing object at this address that no longer decodes
        // (damaged on disk) is replaced by the fresh bytes once.
        let mut landed = self.read_blob(&address).await;
        if landed.is_err() {
            tracing::warn!(blob = %address, "stored state did not read back; rewriting it");
            if let Err(e) = self.blobs.overwrite(&address, payload).await {
                landed = Err(ProfileError::Storage(e.to_string()));
            } else {
                landed = self.read_blob(&address).await;
            }
        }
        let verified = landed.and_then(|s| {
            let got = s.summary(bytes);
            if got.same_contents(&expected) {
                Ok(got)
            } else {
                Err(ProfileError::Unverified(format!(
                    "expected {} cookies and {} origins, read back {} and {}",
                    expected.cookies, expected.origins, got.cookies, got.origins
                )))
            }
        });
        match verified {
            Ok(summary) => Ok(Written { address, summary }),
            Err(e) => {
                self.release(&address).await;
                Err(e)
            }
        }
    }

    /// Drops one reference and collects the blob if it was the last.
    async fn release(&self, address: &str) {
        if let Err(e) = self.store.unreference(address).await {
            tracing::warn!(blob = %address, error = %e, "could not drop a blob reference");
            return;
        }
        self.collect(Some(address.to_owned())).await;
    }

    async fn collect(&self, addresses: impl IntoIterator<Item = String>) {
        for address in addresses {
            let blobs = self.blobs.clone();
            let addr = address.clone();
            let result = self
                .store
                .collect(&address, async move || {
                    blobs.delete(&addr).await.map_err(anyhow::Error::new)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(blob = %address, error = %e, "could not collect an unused blob");
            }
        }
    }

    /// Saves `state` as the profile's current state (a session ending or checkpointing).
    pub async fn save(
        &self,
        account: &AccountId,
        id: &ProfileId,
        state: &ProfileState,
        limit: usize,
    ) -> Result<StateSummary, ProfileError> {
        let written = self.write(state, limit).await?;
        let new = NewState {
            address: &written.address,
            summary: &written.summary,
        };
        match self
            .store
            .set_state(account, id, &new, self.clock.now_ms())
            .await
        {
            Ok(old) => {
                self.collect(old).await;
                Ok(written.summary)
            }
            Err(e) => {
                self.release(&written.address).await;
                Err(e.into())
            }
        }
    }

    /// Records that a save failed, so users see it on the profile.
    pub async fn note_save_failure(&self, id: &ProfileId, error: &ProfileError) {
        if let Err(e) = self
            .store
            .record_save_error(id, &error.to_string(), self.clock.now_ms())
            .await
        {
            tracing::warn!(profile.id = %id, error = %e, "could not record a failed save");
        }
    }

    /// A snapshot of the profile's saved state (no new blob: the snapshot shares it).
    pub async fn snapshot_saved(
        &self,
        account: &AccountId,
        id: &ProfileId,
        name: Option<&str>,
    ) -> Result<SnapshotRecord, ProfileError> {
        Ok(self
            .store
            .insert_snapshot(account, id, name, None, None, self.clock.now_ms())
            .await?)
    }

    /// A snapshot of a state read from the live session `session`.
    pub async fn snapshot_state(
        &self,
        account: &AccountId,
        id: &ProfileId,
        name: Option<&str>,
        session: &SessionId,
        state: &ProfileState,
        limit: usize,
    ) -> Result<SnapshotRecord, ProfileError> {
        let written = self.write(state, limit).await?;
        let new = NewState {
            address: &written.address,
            summary: &written.summary,
        };
        let result = self
            .store
            .insert_snapshot(
                account,
                id,
                name,
                Some(session),
                Some(&new),
                self.clock.now_ms(),
            )
            .await;
        match result {
            Ok(s) => Ok(s),
            Err(e) => {
                self.release(&written.address).await;
                Err(e.into())
            }
        }
    }

    pub async fn restore(
        &self,
        account: &AccountId,
        id: &ProfileId,
        snapshot: &SnapshotId,
    ) -> Result<ProfileRecord, ProfileError> {
        let old = self
            .store
            .restore(account, id, snapshot, self.clock.now_ms())
            .await?;
        self.collect(old).await;
        self.get(account, id).await
    }

    pub async fn delete(&self, account: &AccountId, id: &ProfileId) -> Result<(), ProfileError> {
        let dropped = self.store.delete(account, id, self.clock.now_ms()).await?;
        self.collect(dropped).await;
        Ok(())
    }

    pub async fn delete_snapshot(
        &self,
        account: &AccountId,
        id: &ProfileId,
        snapshot: &SnapshotId,
    ) -> Result<(), ProfileError> {
        let blob = self
            .store
            .delete_snapshot(account, id, snapshot)
            .await
            .map_err(not_found)?;
        self.collect(blob).await;
        Ok(())
    }

    /// Deletes blobs a crash left unreferenced (run at start).
    pub async fn sweep(&self) -> Result<usize, ProfileError> {
        let addresses = self.store.unreferenced().await?;
        let n = addresses.len();
        self.collect(addresses).await;
        Ok(n)
    }
}
