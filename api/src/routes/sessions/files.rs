//! A session's downloads: listed, fetched byte for byte and zipped, also after the session and
//! its runner are gone. Uploads into a session are `uploads.rs`.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use common::{clock::rfc3339, ids::DownloadId};
use runner::files::{DownloadRecord, FileError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Require;
use crate::{
    error::{ApiError, Problem},
    extract::{ListParams, ValidatedQuery, parse_path_id},
    permissions::SessionsRead,
    routes::Page,
    state::AppState,
};

use super::own_session;

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadResponse {
    /// `dl_…`
    pub id: String,
    /// The name the page gave it, made safe (no path, no control characters).
    pub filename: String,
    /// Bytes: the whole file once `completed`, what had arrived otherwise.
    pub size: i64,
    pub mime_type: Option<String>,
    /// SHA-256 of the bytes, hex (once `completed`).
    pub sha256: Option<String>,
    /// `in_progress`, `completed`, `failed` or `too_large` (over the plan's limit: cancelled).
    pub state: String,
    /// Where to fetch the bytes, once `completed`.
    pub url: Option<String>,
    /// The address the page downloaded it from.
    pub source_url: String,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl DownloadResponse {
    fn new(state: &AppState, d: DownloadRecord) -> Self {
        let completed = d.state == runner::files::DownloadState::Completed;
        DownloadResponse {
            url: completed.then(|| {
                format!(
                    "{}/v1/sessions/{}/downloads/{}",
                    state.public_url, d.session_id, d.id
                )
            }),
            id: d.id.to_string(),
            filename: d.filename,
            size: d.size,
            mime_type: d.mime_type,
            sha256: d.sha256,
            state: d.state.as_str().to_owned(),
            source_url: d.url,
            created_at: rfc3339(d.created_at),
            completed_at: d.completed_at.map(rfc3339),
        }
    }
}

/// The session's downloads, oldest first. Each `completed` one has a `url` to fetch its bytes;
/// they stay available after the session ends.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/downloads", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), ListParams),
    responses((status = 200, body = Page<DownloadResponse>),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_downloads(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
    ValidatedQuery(params): ValidatedQuery<ListParams>,
) -> Result<Json<Page<DownloadResponse>>, ApiError> {
    let account = &auth.principal.account_id;
    let id = own_session(&state, account, &id).await?;
    let cursor: Option<DownloadId> = params.cursor()?;
    let (rows, has_more) = state
        .files
        .store
        .downloads(account, &id, cursor.as_ref(), params.limit())
        .await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|d| DownloadResponse::new(&state, d))
            .collect(),
        has_more,
    }))
}

/// The bytes of a completed download, as an attachment with its file name. 409
/// `download_not_ready` while it is in progress (or when it failed or was too large).
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/downloads/{download_id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"),
           ("download_id" = String, Path, description = "`dl_…`")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_download(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path((id, download)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = &auth.principal.account_id;
    let id = own_session(&state, account, &id).await?;
    let download: DownloadId = parse_path_id(&download)?;
    let (record, bytes) = state
        .files
        .read_download(account, &id, &download)
        .await
        .map_err(|e| match e {
            FileError::NotFound => ApiError::not_found("download"),
            FileError::NotReady => ApiError::conflict(
                "download_not_ready",
                "The download has not completed (see its `state`).",
            ),
            FileError::Store(e) => e.into(),
            other => ApiError::internal(anyhow::anyhow!("{other}")),
        })?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    // Pages' files are never rendered as this origin's documents.
    let kind = record
        .mime_type
        .as_deref()
        .filter(|m| !matches!(*m, "text/html" | "image/svg+xml" | "application/xml"))
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, kind);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&attachment(&record.filename)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Every completed download of the session in one ZIP archive (stored, names made safe; a
/// repeated name is numbered).
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/downloads.zip", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, description = "The archive", content_type = "application/zip"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn downloads_zip(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account = &auth.principal.account_id;
    let id = own_session(&state, account, &id).await?;
    let zip = state
        .files
        .archive(account, &id)
        .await
        .map_err(|e| match e {
            FileError::Store(e) => e.into(),
            other => ApiError::internal(anyhow::anyhow!("{other}")),
        })?;
    let disposition = attachment(&format!("{id}-downloads.zip"));
    let mut response = (StatusCode::OK, zip).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 one (RFC 6266 / 5987).
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn attachment_names_cannot_break_the_header() {
        let h = attachment("a\"b;\r\nc.pdf");
        assert!(!h.contains('\r') && !h.contains('\n'), "{h}");
        assert!(h.starts_with("attachment; filename=\"a_b;__c.pdf\""), "{h}");
        assert!(h.contains("filename*=UTF-8''a%22b%3B%0D%0Ac.pdf"), "{h}");
    }
}
