//! Uploads into a session: a file streamed into the session's upload directory (a raw body, or
//! the one file part of a `multipart/form-data` form), for `set_files` actions and CDP's
//! `DOM.setFileInputFiles`. Nothing is held in memory beyond one chunk; the plan's per-file and
//! per-session limits stop a body mid-stream.

use std::path::Path as FsPath;

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
};
use common::{clock::rfc3339, ids::UploadId};
use futures::{Stream, StreamExt};
use runner::files::names;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use crate::extract::Require;
use crate::{
    error::{
        ApiError, Problem,
        domain::{session_error, upload_too_large},
    },
    permissions::SessionsWrite,
    state::AppState,
};

use super::{runner, session_id};

/// Bytes a multipart form may carry besides its file (other fields are read and ignored).
const MAX_OTHER_FIELDS_BYTES: usize = 64 << 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name as the page will see it (else the `filename` of the multipart file part,
    /// or of a `Content-Disposition` header).
    pub filename: Option<String>,
}

/// A `multipart/form-data` upload: exactly one part with a `filename` (any field name); other
/// fields are ignored.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form for OpenAPI; the body is read as a stream
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    /// `upl_…`: name it in a `set_files` action.
    pub id: String,
    pub filename: String,
    pub size: i64,
    /// The file's path inside the session's browser: for Puppeteer's `uploadFile(path)` and
    /// Playwright's `setInputFiles(path)` through `connect_url`.
    pub path: String,
    pub created_at: String,
}

/// Places a file into the session's upload directory. The body is the file itself (any content
/// type; its name from `?filename=` or `Content-Disposition`), or a `multipart/form-data` form
/// with one file part. Streamed to disk up to the plan's `max_upload_bytes` and what is left of
/// its `max_session_upload_bytes` (413 `upload_too_large` beyond).
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/uploads", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), UploadParams),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = UploadResponse),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let principal = auth.principal;
    let id = session_id(&id)?;
    let tier = state
        .tiers
        .get(&principal.tier)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", principal.tier)))?;
    // Checked before a byte is read: a malformed form type is the client's mistake.
    let boundary = multipart_boundary(&headers)?;
    let dir = runner(&state)?
        .uploads_dir(&principal.account_id, &id)
        .map_err(session_error)?;
    let upload = UploadId::generate();
    let folder = dir.join(upload.as_str());
    tokio::fs::create_dir(&folder)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("upload dir: {e}")))?;
    // Removed unless the upload is stored: also when the request is dropped mid-body (a client
    // that stalls until the request timeout leaves nothing behind).
    let leftover = Leftover(Some(folder.clone()));
    // The session's total counts too: stored uploads, and others still arriving.
    let stored = u64::try_from(state.files.store.uploaded_bytes(&id).await?).unwrap_or(0);
    let mut budget = Budget {
        per_file: tier.max_upload_bytes,
        per_session: tier.max_session_upload_bytes,
        stored,
        arriving: state.files.arrivals.begin(&id),
    };
    let written = match boundary {
        Some(boundary) => from_form(body, boundary, &folder, params.filename, &mut budget).await,
        None => {
            let raw = params
                .filename
                .or_else(|| disposition_filename(&headers))
                .unwrap_or_default();
            let filename = names::sanitize(&raw, "upload");
            write_limited(
                body.into_data_stream(),
                &folder.join(&filename),
                &mut budget,
                interrupted,
            )
            .await
            .map(|size| (filename, size))
        }
    };
    // Others of the session's uploads may have been stored meanwhile.
    let settled = match written {
        Ok((filename, size)) => {
            let stored = state.files.store.uploaded_bytes(&id).await?;
            budget
                .settle(u64::try_from(stored).unwrap_or(0), size)
                .map(|()| (filename, size))
        }
        Err(refusal) => Err(refusal),
    };
    let (filename, size) = match settled {
        Ok(written) => written,
        Err(refusal) => {
            let _ = tokio::fs::remove_dir_all(&folder).await;
            return Err(refusal);
        }
    };
    // The session may have ended while the body arrived: its directory is being emptied for
    // the next session of this browser, which must not find this file.
    if runner(&state)?
        .uploads_dir(&principal.account_id, &id)
        .is_err()
    {
        let _ = tokio::fs::remove_dir_all(&folder).await;
        return Err(ApiError::conflict(
            "session_ended",
            "The session has ended.",
        ));
    }
    let now = state.clock.now_ms();
    let shown = folder.join(&filename).display().to_string();
    state
        .files
        .store
        .add_upload(runner::files::store::NewUpload {
            account: &principal.account_id,
            session: &id,
            id: &upload,
            filename: &filename,
            size,
            path: &shown,
            now,
        })
        .await?;
    // Counted as stored now: no longer as arriving.
    drop(budget);
    leftover.keep();
    Ok((
        StatusCode::CREATED,
        Json(UploadResponse {
            id: upload.to_string(),
            filename,
            size,
            path: shown,
            created_at: rfc3339(now),
        }),
    ))
}

/// An upload's folder, removed when dropped unless kept.
struct Leftover(Option<std::path::PathBuf>);

impl Leftover {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(folder) = self.0.take() {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// The boundary of a `multipart/form-data` body; `None` for any other content type.
fn multipart_boundary(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    if !kind
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Ok(None);
    }
    multer::parse_boundary(kind).map(Some).map_err(|_| {
        ApiError::bad_request(
            "upload_malformed",
            "A multipart/form-data upload needs a `boundary` in its Content-Type.",
        )
    })
}

/// Writes the one file part of a multipart form into `folder`; its name is `named` if given,
/// else the part's own. Other fields are read and ignored (within a small bound).
async fn from_form(
    body: Body,
    boundary: String,
    folder: &FsPath,
    named: Option<String>,
    budget: &mut Budget,
) -> Result<(String, i64), ApiError> {
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut written = None;
    let mut other_bytes = 0usize;
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        let Some(part_name) = field.file_name().map(str::to_owned) else {
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                other_bytes += chunk.len();
                if other_bytes > MAX_OTHER_FIELDS_BYTES {
                    return Err(ApiError::invalid(
                        "body",
                        format!(
                            "the form's fields besides the file may carry at most \
                             {MAX_OTHER_FIELDS_BYTES} bytes"
                        ),
                    ));
                }
            }
            continue;
        };
        if written.is_some() {
            return Err(ApiError::invalid(
                "body",
                "a multipart upload carries one file; send each file in its own request",
            ));
        }
        let filename = names::sanitize(named.as_deref().unwrap_or(&part_name), "upload");
        let size = write_limited(field, &folder.join(&filename), budget, malformed).await?;
        written = Some((filename, size));
    }
    written.ok_or_else(|| {
        ApiError::invalid(
            "body",
            "the multipart form has no file part (a part with a `filename`)",
        )
    })
}

fn interrupted(_: axum::Error) -> ApiError {
    ApiError::bad_request("upload_interrupted", "The upload broke off; send it again.")
}

fn malformed(err: multer::Error) -> ApiError {
    ApiError::bad_request(
        "upload_malformed",
        format!("The multipart body could not be read ({err}); send it again."),
    )
}

/// What an upload may still carry: the plan's bytes per file, and per session less what the
/// session stores and what its other uploads in progress have brought so far.
struct Budget {
    per_file: u64,
    per_session: u64,
    stored: u64,
    arriving: runner::files::Arriving,
}

impl Budget {
    /// Counts `n` more bytes of an upload that now carries `size`.
    fn take(&mut self, size: u64, n: u64) -> Result<(), ApiError> {
        let arriving = self.arriving.add(n);
        if size > self.per_file {
            return Err(upload_too_large(self.per_file));
        }
        self.within_session(self.stored, arriving, size)
    }

    /// Refuses when the session's stored and arriving bytes pass its limit; the problem names
    /// the room this upload had.
    fn within_session(&self, stored: u64, arriving: u64, size: u64) -> Result<(), ApiError> {
        if stored + arriving <= self.per_session {
            return Ok(());
        }
        let others = arriving.saturating_sub(size);
        let room = self.per_session.saturating_sub(stored + others);
        Err(upload_too_large(room.min(self.per_file)))
    }

    /// The last check, once the upload is whole: the session's stored uploads as they are now,
    /// its other uploads in progress, and this one.
    fn settle(&mut self, stored: u64, size: i64) -> Result<(), ApiError> {
        let arriving = self.arriving.add(0);
        self.within_session(stored, arriving, u64::try_from(size).unwrap_or(u64::MAX))
    }
}

/// Streams `chunks` into a new file at `path` within `budget`; a broken stream is answered by
/// `broken`.
async fn write_limited<E>(
    chunks: impl Stream<Item = Result<Bytes, E>>,
    path: &FsPath,
    budget: &mut Budget,
    broken: fn(E) -> ApiError,
) -> Result<i64, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("upload file: {e}")))?;
    let mut chunks = std::pin::pin!(chunks);
    let mut size: u64 = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(broken)?;
        size += chunk.len() as u64;
        budget.take(size, chunk.len() as u64)?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("upload write: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("upload write: {e}")))?;
    Ok(i64::try_from(size).unwrap_or(i64::MAX))
}

/// `filename="…"` of a `Content-Disposition` header.
fn disposition_filename(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let (_, rest) = value.split_once("filename=")?;
    Some(rest.trim().trim_matches('"').to_owned())
}
