//! The live view: `GET /v1/sessions/{id}/live` upgrades to a WebSocket that streams the session's
//! page as JPEG frames (one binary message each) and, for a viewer that may interact and holds
//! control, carries mouse, keyboard, text and paste input to the page (`input`). One controller
//! at a time (`runner::control`): a viewer asks for control, keeps it until it releases it or
//! leaves, or until a takeover by a credential with `sessions:write`; every change is audited.
//! The view follows the session's newest tab and the viewer can switch (`tabs`). The protocol is
//! in docs/HANDOFF.md.
//!
//! The server attaches its own DevTools connection to the page and sends only screencast,
//! target-discovery and `Input.*` commands — unlike raw CDP, watching and typing leave the
//! browser reusable. Flow control: a frame is acknowledged to Chromium only after it was handed
//! to the client, so a slow viewer gets fewer frames instead of a growing queue. When the session
//! ends the socket is closed with code 1001 and the reason; a viewer that came through a live
//! link is closed with 4001 once the link is revoked or expires.

mod browser;
mod input;
mod session;
mod tabs;

use axum::{
    extract::{
        Path, Query, State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use common::ids::SessionId;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Problem},
    extract::parse_path_id,
    permissions::Scope,
    routes::socket::{self, SocketRequest},
    service::connect::Access,
    state::AppState,
};

/// Live viewers one session may have at once (each costs a screencast in its browser).
const MAX_VIEWERS: usize = 10;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// The signed token from the session's `connect_url`, or a live link's viewer credential
    /// (browsers cannot send headers on a WebSocket).
    pub token: Option<String>,
    /// JPEG quality, 1–100 (default 60).
    #[param(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// Largest frame width in pixels, 100–3840 (default 1280).
    #[param(minimum = 100, maximum = 3840)]
    pub max_width: Option<u32>,
    /// Largest frame height in pixels, 100–2160 (default 800).
    #[param(minimum = 100, maximum = 2160)]
    pub max_height: Option<u32>,
}

/// A screencast of the session's page — each binary message is one JPEG frame, sent when the
/// page changes — and, for a viewer allowed to interact that holds control, a remote control:
/// JSON text messages carry mouse, key, text and paste input, control requests and tab
/// switches; the server answers with `hello`, `control`, `viewport`, `tabs`, `handoff` and
/// `error` messages (docs/HANDOFF.md). Interacting and taking control over needs
/// `sessions:write` (or the `connect_url` token, or an `interact` live link, which may not take
/// over).
///
/// Requires `sessions:read` (or the `connect_url` token, or a live link's viewer credential).
#[utoipa::path(get, path = "/v1/sessions/{id}/live", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), LiveParams),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The session has ended (`session_ended`)", body = Problem, content_type = "application/problem+json"),
              (status = 410, description = "The live link was revoked or expired (`live_link_gone`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 426, body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "The session has its maximum of live viewers (`too_many_viewers`)", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<LiveParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id: SessionId = parse_path_id(&id)?;
    let quality = params.quality.unwrap_or(60);
    if !(1..=100).contains(&quality) {
        return Err(ApiError::invalid("quality", "Must be 1–100."));
    }
    let max_width = params.max_width.unwrap_or(1280);
    if !(100..=3840).contains(&max_width) {
        return Err(ApiError::invalid("max_width", "Must be 100–3840."));
    }
    let max_height = params.max_height.unwrap_or(800);
    if !(100..=2160).contains(&max_height) {
        return Err(ApiError::invalid("max_height", "Must be 100–2160."));
    }
    let request = SocketRequest {
        id: &id,
        token: params.token.as_deref(),
        headers: &headers,
        scope: Scope::SessionsRead,
        client_hint: "Connect with a WebSocket client.",
    };
    let (upgrade, runner, access) = socket::open(&state, request, upgrade).await?;
    let account = match &access {
        Access::Credential(p) => p.account_id.clone(),
        _ => {
            state
                .sessions
                .locate(&id)
                .await
                .map_err(|_| ApiError::not_found("session"))?
                .account_id
        }
    };
    let watch = runner.watch(&id).map_err(socket::attach_error)?;
    let slot = watch.viewer_slot(MAX_VIEWERS).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_viewers",
            format!("A session has at most {MAX_VIEWERS} live viewers at once."),
        )
    })?;
    let settings = json!({
        "format": "jpeg",
        "quality": quality,
        "maxWidth": max_width,
        "maxHeight": max_height,
        "everyNthFrame": 1,
    });
    let viewer = session::Viewer {
        _slot: slot,
        control_budget: std::sync::Mutex::new((std::time::Instant::now(), 0)),
        id: runner::control::next_viewer(),
        access,
        account,
        session: id,
        watch,
        runner,
        state,
    };
    Ok(upgrade
        .max_message_size(input::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session::run(socket, viewer, settings))
        .into_response())
}
