//! What a session's WebSocket routes (raw CDP, the live view) check before they open: the caller
//! may attach (`service::connect`), the client speaks WebSocket, and this node runs browsers.

use std::sync::Arc;

use axum::{
    extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    http::{HeaderMap, StatusCode},
};
use common::ids::SessionId;
use runner::{Runner, RunnerError};

use crate::{error::ApiError, permissions::Scope, service::connect, state::AppState};

/// The request to open a socket on session `id`.
pub struct SocketRequest<'a> {
    pub id: &'a SessionId,
    /// The `connect_url` token, if given.
    pub token: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// What a credential needs without a token.
    pub scope: Scope,
    /// Said to a client that did not ask for a WebSocket.
    pub client_hint: &'static str,
}

/// The upgrade, this node's runner and what the caller may do, once it may attach.
pub async fn open(
    state: &AppState,
    request: SocketRequest<'_>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<(WebSocketUpgrade, Arc<Runner>, connect::Access), ApiError> {
    let access = connect::authorize(
        state,
        request.id,
        request.token,
        request.headers,
        request.scope,
    )
    .await?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            request.client_hint,
        )
    })?;
    let runner = state
        .runner
        .clone()
        .ok_or_else(|| ApiError::unavailable("This node runs no browsers.", 5))?;
    Ok((upgrade, runner, access))
}

/// A session that is not live here any more: it has ended.
pub fn attach_error(e: RunnerError) -> ApiError {
    match e {
        RunnerError::NotFound => ApiError::conflict("session_ended", "The session has ended."),
        other => ApiError::internal(anyhow::anyhow!("{other}")),
    }
}
