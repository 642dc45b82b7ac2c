//! A recorded session's replay: its rrweb events (read by any node from the blob store, during
//! the session and after it), and pausing or resuming it (`PATCH`, on the session's node).

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use runner::recording::RecordingError;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::{
    audit::Entry,
    error::{ApiError, Problem, domain::session_error},
    extract::{Require, Validate, ValidatedJson, Violations},
    permissions::{SessionsRead, SessionsWrite},
    state::AppState,
};

use super::{SessionResponse, load, runner, session_id};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionRequest {
    /// `false` pauses a recorded session's recording (for sensitive pages), `true` resumes it
    /// (with a fresh full snapshot of the page).
    pub record: Option<bool>,
}

impl Validate for UpdateSessionRequest {
    fn validate(&self, v: &mut Violations) {
        if self.record.is_none() {
            v.add("record", "is required (the only field that can change)");
        }
    }
}

/// Changes a live session: pauses (`"record": false`) or resumes (`"record": true`) its
/// recording. 409 `session_not_recorded` when it was not created with `"record": true`.
///
/// Requires `sessions:write`.
#[utoipa::path(patch, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = UpdateSessionRequest,
    responses((status = 200, body = SessionResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_session(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<UpdateSessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let id = session_id(&id)?;
    let account = &auth.principal.account_id;
    let on = body.record.unwrap_or(true);
    let recorded = runner(&state)?
        .set_recording(account, &id, on)
        .await
        .map_err(session_error)?;
    if !recorded {
        return Err(ApiError::conflict(
            "session_not_recorded",
            "This session is not recorded (create it with \"record\": true).",
        ));
    }
    let action = if on {
        "session.recording.resumed"
    } else {
        "session.recording.paused"
    };
    state
        .record(Entry::by(
            &auth.principal,
            action,
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok(Json(load(&state, &auth.principal, &id).await?))
}

/// The session's recording: a JSON array of rrweb events (replay it with `rrweb-player`), as far
/// as it has been written (every 2 seconds while the session runs; whole once the session
/// ended), streamed a chunk at a time; gzip-encoded with `Accept-Encoding: gzip`. 404
/// `recording_not_found` when the session was not recorded.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/recording", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, description = "rrweb events", content_type = "application/json",
               body = Vec<Object>),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_recording(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let account = &auth.principal.account_id;
    state
        .sessions
        .get(account, &id)
        .await
        .map_err(|_| ApiError::not_found("session"))?;
    let (_, events) = state
        .recordings
        .read(account, &id)
        .await
        .map_err(|e| match e {
            RecordingError::NotRecorded => ApiError::new(
                StatusCode::NOT_FOUND,
                "recording_not_found",
                "This session was not recorded (create it with \"record\": true).",
            ),
            RecordingError::Store(e) => e.into(),
            other => ApiError::internal(anyhow::anyhow!("{other}")),
        })?;
    let mut response = (StatusCode::OK, axum::body::Body::from_stream(events)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The session's last frame: a JPEG of the page it was on when it ended, kept as long as its
/// logs and recording (the plan's `log_retention_days`). It is stored a moment after the
/// session ends (the release does not wait for it). 409 `session_live` while the session runs
/// (take a screenshot with `POST /v1/sessions/{id}/capture`); 404 `frame_not_found` when none
/// was kept: the session failed to start, its browser crashed, its recording was paused at the
/// end, or the frame expired.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/last-frame", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, description = "The last frame", content_type = "image/jpeg",
               body = Vec<u8>),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_last_frame(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let account = &auth.principal.account_id;
    let session = state
        .sessions
        .get(account, &id)
        .await
        .map_err(|_| ApiError::not_found("session"))?;
    if session.ended_at.is_none() {
        return Err(ApiError::conflict(
            "session_live",
            "This session is still running: its last frame is kept when it ends. Take a \
             screenshot of it now with the capture command.",
        ));
    }
    let frame = state
        .recordings
        .last_frame(account, &id)
        .await
        .map_err(|e| match e {
            RecordingError::Store(e) => e.into(),
            other => ApiError::internal(anyhow::anyhow!("{other}")),
        })?;
    let Some((jpeg, taken_at)) = frame else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "frame_not_found",
            "No last frame was kept for this session: it failed to start, its browser crashed, \
             its recording was paused when it ended, or the frame has expired. A frame is \
             stored a moment after the session ends.",
        ));
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
        // Taken once and never changed; only its account may see it.
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=86400, immutable"),
        ),
    ];
    let mut response = (StatusCode::OK, headers, jpeg).into_response();
    if let Ok(v) = HeaderValue::from_str(&common::clock::rfc3339(taken_at)) {
        response.headers_mut().insert("x-frame-taken-at", v);
    }
    Ok(response)
}
