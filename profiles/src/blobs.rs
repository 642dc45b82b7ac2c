//! Where encoded profile states live: content-addressed objects behind `object_store` — a local
//! directory in embedded mode (S3-compatible storage can be plugged in for multi-node).
//! An address names its content, so writing an address that exists is a no-op and identical
//! states are stored once; deleting is the caller's job once nothing references an address.

use std::{path::Path, sync::Arc};

use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, local::LocalFileSystem,
    path::Path as ObjectPath,
};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob at this address")]
    NotFound,
    #[error("not a blob address")]
    BadAddress,
    #[error("blob storage failed: {0}")]
    Storage(String),
}

#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.store)
    }
}

/// `blobs/ab/abcdef…`: a fan-out directory keeps listings small.
fn path_of(address: &str) -> Result<ObjectPath, BlobError> {
    let valid = address.len() == 64 && address.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(BlobError::BadAddress);
    }
    Ok(ObjectPath::from(format!(
        "blobs/{}/{address}",
        &address[..2]
    )))
}

impl BlobStore {
    /// Blobs in a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Storage(e.to_string()))?;
        let fs =
            LocalFileSystem::new_with_prefix(dir).map_err(|e| BlobError::Storage(e.to_string()))?;
        Ok(BlobStore {
            store: Arc::new(fs),
        })
    }

    /// Any `object_store` backend (S3-compatible in multi-node deployments).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore { store }
    }

    /// Stores `bytes` under `address` unless something is already there.
    pub async fn put(&self, address: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = path_of(address)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, bytes.into(), opts).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(BlobError::Storage(e.to_string())),
        }
    }

    /// Replaces whatever is at `address` (repairing an object that no longer reads back).
    pub async fn overwrite(&self, address: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = path_of(address)?;
        self.store
            .put(&path, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| BlobError::Storage(e.to_string()))
    }

    pub async fn get(&self, address: &str) -> Result<Vec<u8>, BlobError> {
        let path = path_of(address)?;
        match self.store.get(&path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| BlobError::Storage(e.to_string())),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound),
            Err(e) => Err(BlobError::Storage(e.to_string())),
        }
    }

    /// Removes a blob; removing one that is gone is not an error.
    pub async fn delete(&self, address: &str) -> Result<(), BlobError> {
        let path = path_of(address)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Storage(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_by_address() {
        let dir = std::env::temp_dir().join(format!("ds-blobs-{}", std::process::id()));
        let store = BlobStore::local(&dir).expect("store");
        let addr = "ab".repeat(32);
        store.put(&addr, b"first".to_vec()).await.expect("put");
        // Same address again: the first content stays (content addressing).
        store
            .put(&addr, b"second".to_vec())
            .await
            .expect("put again");
        assert_eq!(store.get(&addr).await.expect("get"), b"first");
        assert!(dir.join("blobs/ab").join(&addr).exists());
        store.delete(&addr).await.expect("delete");
        store.delete(&addr).await.expect("delete twice");
        assert!(matches!(store.get(&addr).await, Err(BlobError::NotFound)));
        for bad in ["../../etc/passwd", "", "zz", &"g".repeat(64)] {
            assert!(
                matches!(store.put(bad, vec![]).await, Err(BlobError::BadAddress)),
                "{bad}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
