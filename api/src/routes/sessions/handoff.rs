//! Handing a session to a person: `POST /v1/sessions/{id}/handoff` makes a live link for them and
//! puts the session in `waiting_for_human` (its idle timeout paused, `session.handoff.requested`
//! carrying the link); the person's *Done* on the live page, or `POST …/handoff/complete`,
//! makes it `active` again (`session.handoff.completed`); past `timeout_seconds` it is
//! `session.handoff.expired` and stays active. Answered on the session's node (the runner holds
//! the handoff).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use runner::handoff::{HandoffError, HandoffRequest};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::{
    audit::Entry,
    error::{ApiError, Problem},
    extract::{Require, Validate, ValidatedJson, Violations},
    permissions::SessionsWrite,
    routes::live_links::{LinkMode, live_session, make_link},
    state::AppState,
};

use super::{SessionResponse, load, runner};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequestBody {
    /// What the person should do, shown on the live page (1–500 characters).
    pub reason: String,
    /// `interact` (default) or `view`.
    pub mode: Option<LinkMode>,
    /// 30–86400 (default 900): then the handoff expires and the session goes on.
    #[schema(minimum = 30, maximum = 86400)]
    pub timeout_seconds: Option<i64>,
}

impl Validate for HandoffRequestBody {
    fn validate(&self, v: &mut Violations) {
        let len = self.reason.trim().chars().count();
        v.check(
            (1..=500).contains(&len),
            "reason",
            "must be 1–500 characters",
        );
        if let Some(t) = self.timeout_seconds {
            v.check(
                (30..=86_400).contains(&t),
                "timeout_seconds",
                "must be 30–86400",
            );
        }
    }
}

/// A session's handoff (also `handoff` in the session).
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffResponse {
    /// `hof_…`
    pub id: String,
    pub session_id: String,
    /// `requested`, `completed` or `expired`.
    pub state: String,
    pub reason: String,
    pub mode: String,
    /// The live page for the person (works once; also in the webhook).
    pub live_url: String,
    pub live_link_id: String,
    pub requested_at: String,
    pub expires_at: String,
}

fn handoff_error(e: HandoffError) -> ApiError {
    match e {
        HandoffError::NotFound => ApiError::conflict("session_ended", "The session has ended."),
        HandoffError::Pending => ApiError::conflict(
            "handoff_pending",
            "A handoff is already waiting for a person; complete it first.",
        ),
        HandoffError::NotPending => {
            ApiError::conflict("no_handoff", "No handoff is waiting for a person.")
        }
        HandoffError::Store(e) => e.into(),
    }
}

/// Hands the session to a person: makes a live link for them (in the webhook
/// `session.handoff.requested` too) and puts the session in `waiting_for_human` until they
/// click *Done* on the live page, the API completes it, or `timeout_seconds` pass. The idle
/// timeout is paused meanwhile; the customer's CDP connection stays open and sees what the
/// person does. Wait for it with `POST …/wait {"handoff": "completed"}`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/handoff", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = HandoffRequestBody,
    responses((status = 201, body = HandoffResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn request_handoff(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<HandoffRequestBody>,
) -> Result<(StatusCode, Json<HandoffResponse>), ApiError> {
    let p = &auth.principal;
    let session = live_session(&state, p, &id).await?;
    let mode = body.mode.unwrap_or(LinkMode::Interact);
    let now = state.clock.now_ms();
    let deadline = now + body.timeout_seconds.unwrap_or(900) * 1000;
    let link = make_link(
        &state,
        &p.account_id,
        &session,
        mode,
        deadline,
        p.actor.id(),
    )
    .await?;
    let request = HandoffRequest {
        id: common::ids::HandoffId::generate(),
        reason: body.reason.trim().to_owned(),
        mode: mode.as_str().to_owned(),
        link: link.id.clone(),
        live_url: link.url.clone(),
        deadline,
    };
    if let Err(err) = runner(&state)?
        .request_handoff(&p.account_id, &session, &request)
        .await
    {
        // The link made for it must not outlive a refused handoff.
        let _ = state
            .live_links
            .revoke(&p.account_id, &session, &link.id, now)
            .await;
        return Err(handoff_error(err));
    }
    state.dispatcher_wake();
    state
        .record(Entry::by(
            p,
            "session.handoff.requested",
            Some(session.to_string()),
            json!({"handoff_id": request.id, "mode": request.mode, "live_link_id": link.id}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(HandoffResponse {
            id: request.id.to_string(),
            session_id: session.to_string(),
            state: "requested".into(),
            reason: request.reason,
            mode: request.mode,
            live_url: link.url,
            live_link_id: link.id.to_string(),
            requested_at: common::clock::rfc3339(now),
            expires_at: common::clock::rfc3339(deadline),
        }),
    ))
}

/// Completes the session's handoff from the API (the person's *Done* does the same): the
/// session is `active` again, its live link revoked, `session.handoff.completed` sent.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/handoff/complete", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, body = SessionResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn complete_handoff(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
) -> Result<Json<SessionResponse>, ApiError> {
    let p = &auth.principal;
    let session = live_session(&state, p, &id).await?;
    let handoff = runner(&state)?
        .complete_handoff(&p.account_id, &session, p.actor.id())
        .await
        .map_err(handoff_error)?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            p,
            "session.handoff.completed",
            Some(session.to_string()),
            json!({"handoff_id": handoff}),
        ))
        .await;
    Ok(Json(load(&state, p, &session).await?))
}
