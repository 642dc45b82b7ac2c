//! Waiting on a session's page (`wait`) and capturing it (`capture`).

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use runner::{CaptureFormat, CaptureSpec, ElementState, WaitSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::Require;
use crate::{
    error::{ApiError, Problem, domain::session_error},
    extract::{Validate, ValidatedJson, Violations},
    permissions::SessionsWrite,
    state::AppState,
};

use super::{
    commands::{check_selector, check_timeout},
    runner, session_id,
};

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElementStateBody {
    #[default]
    Attached,
    Visible,
    Hidden,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum HandoffWait {
    Completed,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// Wait for an element matching this CSS selector to reach `state`.
    pub selector: Option<String>,
    /// `attached` (default), `visible` or `hidden`.
    pub state: Option<ElementStateBody>,
    /// Wait for a page load that began after the previous navigate or actions call started
    /// (for example one caused by a click).
    pub navigation: Option<bool>,
    /// Wait until no request has been in flight for 500 ms.
    pub network_idle: Option<bool>,
    /// Wait until the page's visible text contains this (1–1000 characters).
    pub text: Option<String>,
    /// Wait until the page's visible text no longer contains this (1–1000 characters).
    pub text_gone: Option<String>,
    /// `completed`: wait until the person the session was handed to is done (`POST
    /// …/handoff`). An expired handoff answers 409 `handoff_expired`; none at all 409
    /// `no_handoff`. Wait again after a 504: a person may take longer than one wait.
    pub handoff: Option<HandoffWait>,
    /// 100–120000 ms.
    pub timeout_ms: u64,
}

impl Validate for WaitRequest {
    fn validate(&self, v: &mut Violations) {
        check_timeout(v, "timeout_ms", Some(self.timeout_ms));
        if let Some(s) = &self.selector {
            check_selector(v, "selector".into(), s);
        }
        for (field, text) in [("text", &self.text), ("text_gone", &self.text_gone)] {
            if let Some(t) = text {
                v.check(
                    !t.is_empty() && t.chars().count() <= 1000,
                    field,
                    "must be 1 to 1000 characters",
                );
            }
        }
        let page = self.selector.is_some()
            || self.navigation == Some(true)
            || self.network_idle == Some(true)
            || self.text.is_some()
            || self.text_gone.is_some();
        v.check(
            page || self.handoff.is_some(),
            "selector",
            "name at least one of selector, navigation, network_idle, text, text_gone or handoff",
        );
        if page && self.handoff.is_some() {
            v.add(
                "handoff",
                "is waited for on its own (not with page conditions)",
            );
        }
        if self.state.is_some() && self.selector.is_none() {
            v.add("state", "needs a selector");
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaitResponse {
    pub waited_ms: u64,
}

/// Waits for an element state, a navigation, text to appear or go, or network idleness (all
/// that are named, in that order). Not reached within
/// `timeout_ms`: 504 `timeout`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/wait", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = WaitRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = WaitResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 504, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn wait(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<WaitRequest>,
) -> Result<Json<WaitResponse>, ApiError> {
    let id = session_id(&id)?;
    let started = std::time::Instant::now();
    if body.handoff.is_some() {
        let timeout = Duration::from_millis(body.timeout_ms);
        wait_for_handoff(&state, &auth.principal.account_id, &id, timeout).await?;
        return Ok(Json(WaitResponse {
            waited_ms: started.elapsed().as_millis() as u64,
        }));
    }
    let spec = WaitSpec {
        selector: body.selector,
        state: match body.state.unwrap_or_default() {
            ElementStateBody::Attached => ElementState::Attached,
            ElementStateBody::Visible => ElementState::Visible,
            ElementStateBody::Hidden => ElementState::Hidden,
        },
        navigation: body.navigation.unwrap_or(false),
        network_idle: body.network_idle.unwrap_or(false),
        text: body.text,
        text_gone: body.text_gone,
        timeout_ms: body.timeout_ms,
    };
    runner(&state)?
        .wait(&auth.principal.account_id, &id, &spec)
        .await
        .map_err(session_error)?;
    Ok(Json(WaitResponse {
        waited_ms: started.elapsed().as_millis() as u64,
    }))
}

/// Until the session's handoff is no longer waiting for a person.
async fn wait_for_handoff(
    state: &AppState,
    account: &common::ids::AccountId,
    id: &common::ids::SessionId,
    timeout: Duration,
) -> Result<(), ApiError> {
    use runner::handoff::HandoffPhase;
    let mut rx = runner(state)?.handoff(account, id).map_err(session_error)?;
    let waited =
        tokio::time::timeout(timeout, rx.wait_for(|h| h.phase != HandoffPhase::Requested)).await;
    let phase = match waited {
        Err(_) => {
            return Err(session_error(runner::RunnerError::Timeout(
                timeout.as_millis() as u64,
            )));
        }
        Ok(Err(_)) => {
            return Err(ApiError::conflict(
                "session_ended",
                "The session has ended.",
            ));
        }
        Ok(Ok(h)) => h.phase,
    };
    match phase {
        HandoffPhase::Completed => Ok(()),
        HandoffPhase::Expired => Err(ApiError::conflict(
            "handoff_expired",
            "The handoff expired before a person completed it; the session is active.",
        )),
        _ => Err(ApiError::conflict(
            "no_handoff",
            "No handoff was requested for this session (POST /v1/sessions/{id}/handoff).",
        )),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormatBody {
    Png,
    Jpeg,
    Webp,
    Pdf,
    Html,
    Text,
    /// The page's main content (`<main>`, a single `<article>`, or the body without navigation,
    /// header and footer) as Markdown, links absolute; at most 200000 bytes.
    Markdown,
    /// The page as an outline of roles and names, one line per element; each element one can
    /// act on is tagged `[e12]` and gets the attribute `data-ds-ref="e12"`, so the selector
    /// `[data-ds-ref="e12"]` finds it in later actions.
    Snapshot,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    pub format: CaptureFormatBody,
    /// The whole page rather than the viewport (images only).
    pub full_page: Option<bool>,
    /// Only this element (images only).
    pub selector: Option<String>,
    /// 0–100, for `jpeg` and `webp`.
    pub quality: Option<u8>,
    /// 100–120000 ms, default 30000.
    pub timeout_ms: Option<u64>,
}

impl Validate for CaptureRequest {
    fn validate(&self, v: &mut Violations) {
        let image = matches!(
            self.format,
            CaptureFormatBody::Png | CaptureFormatBody::Jpeg | CaptureFormatBody::Webp
        );
        if let Some(q) = self.quality {
            v.check(q <= 100, "quality", "must be between 0 and 100");
            v.check(
                matches!(
                    self.format,
                    CaptureFormatBody::Jpeg | CaptureFormatBody::Webp
                ),
                "quality",
                "applies to jpeg and webp only",
            );
        }
        if let Some(s) = &self.selector {
            check_selector(v, "selector".into(), s);
            v.check(image, "selector", "applies to png, jpeg and webp only");
        }
        if self.full_page == Some(true) {
            v.check(image, "full_page", "applies to png, jpeg and webp only");
            v.check(
                self.selector.is_none(),
                "full_page",
                "cannot be combined with selector",
            );
        }
        check_timeout(v, "timeout_ms", self.timeout_ms);
    }
}

/// Captures the page as an image (`png`, `jpeg`, `webp`), a `pdf`, its `html`, its visible
/// `text`, its main content as `markdown`, or a `snapshot` outline with element refs. The answer
/// is the bytes with the matching `Content-Type`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/capture", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = CaptureRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, description = "The capture",
               content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"),
                       (Vec<u8> = "application/pdf"), (String = "text/html"), (String = "text/plain"),
                       (String = "text/markdown"))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn capture(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CaptureRequest>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let format = match body.format {
        CaptureFormatBody::Png => CaptureFormat::Png,
        CaptureFormatBody::Jpeg => CaptureFormat::Jpeg,
        CaptureFormatBody::Webp => CaptureFormat::Webp,
        CaptureFormatBody::Pdf => CaptureFormat::Pdf,
        CaptureFormatBody::Html => CaptureFormat::Html,
        CaptureFormatBody::Text => CaptureFormat::Text,
        CaptureFormatBody::Markdown => CaptureFormat::Markdown,
        CaptureFormatBody::Snapshot => CaptureFormat::Snapshot,
    };
    let spec = CaptureSpec {
        format,
        full_page: body.full_page.unwrap_or(false),
        selector: body.selector,
        quality: body.quality,
    };
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(30_000));
    let bytes = runner(&state)?
        .capture(&auth.principal.account_id, &id, &spec, timeout)
        .await
        .map_err(session_error)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response())
}
