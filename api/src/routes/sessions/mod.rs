//! Sessions: create a headless Chromium session, drive it (navigate, actions, wait, capture),
//! read it, list them, and release it. The handlers parse and map; admission is
//! `service::sessions`, and the commands run on this node's runner (`routing` has already sent
//! them here when the session lives elsewhere).

mod commands;
mod create;
mod files;
mod handoff;
mod logs;
mod read;
mod recording;
mod tabs;
mod uploads;
mod waits;

use std::sync::Arc;

use common::{clock::rfc3339, ids::SessionId};
use runner::{Counters, store::SessionRecord};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use commands::*;
pub use create::*;
pub use files::*;
pub use logs::*;
pub use read::*;
pub use recording::*;
pub use tabs::*;
pub use uploads::*;
pub use waits::*;

use crate::{
    auth::Principal, error::ApiError, extract::parse_path_id, permissions::Scope,
    secrets::connect_token, state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_session, read::list_sessions))
        .routes(routes!(
            read::get_session,
            read::release_session,
            recording::update_session
        ))
        .routes(routes!(commands::navigate))
        .routes(routes!(commands::run_actions))
        .routes(routes!(waits::wait))
        .routes(routes!(waits::capture))
        .routes(routes!(files::list_downloads))
        .routes(routes!(files::get_download))
        .routes(routes!(files::downloads_zip))
        .routes(routes!(uploads::upload))
        .routes(routes!(handoff::request_handoff))
        .routes(routes!(handoff::complete_handoff))
        .routes(routes!(tabs::list_tabs))
        .routes(routes!(tabs::select_tab))
        .routes(routes!(tabs::close_tab))
        .merge(inspector())
}

/// The inspector's reads, gzip-encoded for a client that accepts it (a recording or a HAR
/// shrinks several times over).
fn inspector() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logs::list_logs))
        .routes(routes!(logs::har))
        .routes(routes!(recording::get_recording))
        .routes(routes!(recording::get_last_frame))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

/// How long a `connect_url` token stays valid.
const CONNECT_TOKEN_TTL_SECONDS: i64 = 15 * 60;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUsage {
    pub navigations: u64,
    pub actions: u64,
    pub captures: u64,
    /// Network requests the page made.
    pub requests: u64,
    /// Bytes received from the network.
    pub bytes_received: u64,
    /// Bytes sent to the network.
    pub bytes_sent: u64,
    /// Requests refused by `block`.
    pub blocked_requests: u64,
    /// Connections the egress guard refused (private or reserved destinations).
    pub egress_denied: u64,
}

impl From<Counters> for SessionUsage {
    fn from(c: Counters) -> Self {
        SessionUsage {
            navigations: c.navigations,
            actions: c.actions,
            captures: c.captures,
            requests: c.requests,
            bytes_received: c.bytes_received,
            bytes_sent: c.bytes_sent,
            blocked_requests: c.blocked_requests,
            egress_denied: c.egress_denied,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// `ses_…`
    pub id: String,
    /// `starting`, `active`, `waiting_for_human` (an active session handed to a person: see
    /// `handoff`), `closing`, `closed`, `failed` or `timed_out`.
    pub status: String,
    pub created_at: String,
    pub started_at: Option<String>,
    /// When the session ends by itself (its maximum duration).
    pub expires_at: String,
    pub ended_at: Option<String>,
    /// Why it ended: `released`, `idle_timeout`, `max_duration`, `browser_crashed`, `shutdown`,
    /// `runner_lost` or `start_failed`.
    pub end_reason: Option<String>,
    pub timeout_seconds: i64,
    pub idle_timeout_seconds: i64,
    /// A WebSocket URL for Playwright's `connectOverCDP` or Puppeteer's `connect`; it carries a
    /// signed token valid for 15 minutes. Present while the session is live, and only for
    /// credentials holding `sessions:write` (raw CDP drives the browser read-write; a
    /// `sessions:read` credential gets the read-only live view at most).
    pub connect_url: Option<String>,
    /// The runner that hosts the session.
    pub runner_id: String,
    /// The settings the session was created with.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// Milliseconds from admission to a ready browser.
    pub create_ms: Option<i64>,
    pub usage: SessionUsage,
    pub logs: SessionLogs,
    /// `null` when the session is not recorded.
    pub recording: Option<SessionRecordingState>,
    /// Its latest handoff to a person; `null` when none was requested.
    pub handoff: Option<SessionHandoff>,
    /// Who started it: the API key (`key_…`) or dashboard user (`usr_…`). `null` for sessions
    /// started before this field existed.
    pub created_by: Option<String>,
    /// Where it was started from: `api`, `mcp` (a tool call of the MCP server) or `dashboard`.
    pub source: Option<String>,
    /// Why it failed to start or crashed, as a sentence (with `status` `failed`).
    pub failure: Option<String>,
    /// When it ends by idleness if no command comes before (`idle_timeout_seconds` after the
    /// last one). `null` while a command runs, while it waits for a person, when it is not live,
    /// or when another node of a cluster hosts it.
    pub idle_expires_at: Option<String>,
}

/// A session's latest handoff (`POST /v1/sessions/{id}/handoff`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionHandoff {
    /// `hof_…`
    pub id: String,
    /// `requested` (the session is `waiting_for_human`), `completed` or `expired`.
    pub state: String,
    pub reason: String,
    /// `view` or `interact`.
    pub mode: String,
    /// `lvl_…`: the live link made for the person.
    pub live_link_id: Option<String>,
    pub requested_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
}

/// A recorded session's recording (`GET /v1/sessions/{id}/recording`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionRecordingState {
    /// `recording`, `paused` (`PATCH` with `"record": false`) or `complete` (the session ended).
    pub state: String,
    /// The recording reached the plan's `max_session_recording_bytes` and stopped there.
    pub truncated: bool,
    /// Bytes stored so far (compressed).
    pub bytes: i64,
}

/// The state of a session's logs (`GET /v1/sessions/{id}/logs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionLogs {
    /// The logs reached the plan's `max_session_log_bytes`: later entries were not kept (the
    /// session itself went on).
    pub truncated: bool,
}

impl SessionResponse {
    /// `may_connect`: the caller holds `sessions:write`, so it may have the `connect_url`.
    pub(super) fn new(
        state: &AppState,
        record: SessionRecord,
        live: Option<Counters>,
        may_connect: bool,
    ) -> Self {
        let connect_url = (may_connect && record.status.is_live()).then(|| {
            let expires = state.clock.now_ms() / 1000 + CONNECT_TOKEN_TTL_SECONDS;
            let token = connect_token::sign(&state.connect_key, record.id.as_str(), expires);
            let base = state
                .public_url
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1);
            format!("{base}/v1/sessions/{}/cdp?token={token}", record.id)
        });
        let idle_expires_at = state
            .runner
            .as_ref()
            .filter(|_| record.status.is_live())
            .and_then(|r| r.idle_deadline(&record.account_id, &record.id))
            .map(rfc3339);
        let waiting = record.status == runner::SessionStatus::Active
            && record
                .handoff
                .as_ref()
                .is_some_and(|h| h.state == "requested");
        SessionResponse {
            id: record.id.to_string(),
            status: if waiting {
                "waiting_for_human".to_owned()
            } else {
                record.status.as_str().to_owned()
            },
            created_at: rfc3339(record.created_at),
            started_at: record.started_at.map(rfc3339),
            expires_at: rfc3339(record.expires_at),
            ended_at: record.ended_at.map(rfc3339),
            end_reason: record.end_reason,
            timeout_seconds: (record.expires_at - record.created_at) / 1000,
            idle_timeout_seconds: record.idle_timeout_ms / 1000,
            connect_url,
            runner_id: record.runner_id.to_string(),
            options: record.options,
            create_ms: record.create_ms,
            usage: live.unwrap_or(record.counters).into(),
            logs: SessionLogs {
                truncated: record.logs_truncated,
            },
            handoff: record.handoff.map(|h| SessionHandoff {
                id: h.id,
                state: h.state,
                reason: h.reason,
                mode: h.mode,
                live_link_id: h.live_link_id,
                requested_at: rfc3339(h.requested_at),
                expires_at: rfc3339(h.deadline),
                ended_at: h.ended_at.map(rfc3339),
            }),
            recording: record.recording.map(|r| SessionRecordingState {
                state: r.state,
                truncated: r.truncated,
                bytes: r.bytes,
            }),
            created_by: record.created_by,
            source: record.source,
            failure: record.failure,
            idle_expires_at,
        }
    }
}

pub(super) fn runner(state: &AppState) -> Result<&Arc<runner::Runner>, ApiError> {
    state
        .runner
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("This node runs no browsers.", 5))
}

pub(super) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    parse_path_id(raw)
}

/// The session `raw` names, if it is the account's (another account's reads as unknown).
pub(super) async fn own_session(
    state: &AppState,
    account: &common::ids::AccountId,
    raw: &str,
) -> Result<SessionId, ApiError> {
    let id = session_id(raw)?;
    state
        .sessions
        .get(account, &id)
        .await
        .map_err(|_| ApiError::not_found("session"))?;
    Ok(id)
}

pub(super) async fn load(
    state: &AppState,
    principal: &Principal,
    id: &SessionId,
) -> Result<SessionResponse, ApiError> {
    let account = &principal.account_id;
    let record = state.sessions.get(account, id).await.map_err(|e| match e {
        common::StoreError::NotFound => ApiError::not_found("session"),
        other => other.into(),
    })?;
    let live = match &state.runner {
        Some(r) if record.status.is_live() => r.live_counters(account, id).await,
        _ => None,
    };
    Ok(SessionResponse::new(
        state,
        record,
        live,
        may_connect(principal),
    ))
}

/// Whether `principal` may be handed a `connect_url` (read-write raw CDP).
pub(super) fn may_connect(principal: &Principal) -> bool {
    principal.scopes.contains(Scope::SessionsWrite)
}
