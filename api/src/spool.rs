//! Request bodies that are files, kept on disk instead of in memory when a layer must read a
//! body whole before its handler runs (the `Idempotency-Key` layer hashes it): the bytes go to an
//! unlinked temporary file under the data directory and are handed on as a stream from it.

use std::path::Path;

use axum::body::Body;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::{ApiError, domain::upload_too_large};

/// Routes whose request bodies are files: never read into memory.
pub const FILE_BODIES: [&str; 1] = ["/v1/sessions/{id}/uploads"];

/// Writes `body` (at most `limit` bytes, else 413 `upload_too_large`) to a temporary file in
/// `dir`, feeding `hash` as it goes; answers the same bytes as a body streamed from that file.
/// The file is unlinked at once: its space is freed when the body is dropped, also on a crash.
pub async fn to_disk(
    dir: &Path,
    body: Body,
    limit: u64,
    hash: &mut Sha256,
) -> Result<Body, ApiError> {
    let failed = |e: std::io::Error| ApiError::internal(anyhow::anyhow!("spool: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    let path = dir.join(common::crypto::hex(&rand::random::<[u8; 16]>()));
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(failed)?;
    tokio::fs::remove_file(&path).await.map_err(failed)?;
    let mut chunks = body.into_data_stream();
    let mut size: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("upload_interrupted", "The upload broke off; send it again.")
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(upload_too_large(limit));
        }
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    file.rewind().await.map_err(failed)?;
    Ok(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
}
