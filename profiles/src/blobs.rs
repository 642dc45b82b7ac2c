//! Where encoded profile states live: content-addressed objects behind `object_store` — a local
//! directory in embedded mode, an S3-compatible bucket when several runners share profiles
//! (`DRIFTSTACK_BLOB_STORE=s3://bucket[/prefix]`).
//! An address names its content, so writing an address that exists is a no-op and identical
//! states are stored once; deleting is the caller's job once nothing references an address.

use std::{path::Path, sync::Arc};

use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, local::LocalFileSystem,
    path::Path as ObjectPath,
};

/// The largest blob read back (profile states are far smaller; their limit is per tier).
pub const MAX_BLOB_BYTES: usize = 256 << 20;

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
    /// Whether the backend refuses to overwrite on `PutMode::Create`. Object stores that cannot
    /// (S3-compatible ones without conditional writes) simply overwrite: an address names its
    /// content, so writing it again writes the same bytes.
    conditional: bool,
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
            conditional: true,
        })
    }

    /// Blobs in an S3-compatible bucket: `url` is `s3://bucket[/prefix]`; credentials, region
    /// and endpoint come from the standard `AWS_*` variables (`AWS_ENDPOINT_URL` for a store
    /// other than AWS; plain `http://` endpoints are allowed for a store on the local network).
    pub fn s3(url: &str) -> Result<Self, BlobError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| BlobError::Storage("the blob store URL must start with s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Storage(
                "the blob store URL names no bucket".into(),
            ));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let s3 = builder
            .build()
            .map_err(|e| BlobError::Storage(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_matches('/'),
            ))
        };
        Ok(BlobStore {
            store,
            conditional: false,
        })
    }

    /// Any `object_store` backend that honours `PutMode::Create`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        BlobStore {
            store,
            conditional: true,
        }
    }

    /// Stores `bytes` under `address` unless something is already there.
    pub async fn put(&self, address: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = path_of(address)?;
        let opts = PutOptions {
            mode: if self.conditional {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
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

    /// Reads a blob, at most [`MAX_BLOB_BYTES`] of it: a hostile or broken object store cannot
    /// grow this process by answering more (a longer object is an error).
    pub async fn get(&self, address: &str) -> Result<Vec<u8>, BlobError> {
        use futures::StreamExt;
        let path = path_of(address)?;
        match self.store.get(&path).await {
            Ok(r) => {
                if r.meta.size > MAX_BLOB_BYTES as u64 {
                    return Err(BlobError::Storage(format!(
                        "object {address} is larger than {MAX_BLOB_BYTES} bytes"
                    )));
                }
                let mut out = Vec::with_capacity(usize::try_from(r.meta.size).unwrap_or(0));
                let mut stream = r.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| BlobError::Storage(e.to_string()))?;
                    if out.len() + chunk.len() > MAX_BLOB_BYTES {
                        return Err(BlobError::Storage(format!(
                            "object {address} is larger than {MAX_BLOB_BYTES} bytes"
                        )));
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(out)
            }
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
