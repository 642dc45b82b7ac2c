//! A session's tabs: `GET /v1/sessions/{id}/tabs` lists the pages of its browser (the first one,
//! and those its sites opened), `POST …/tabs/{tab_id}/select` makes one the page every command
//! acts on, `DELETE …/tabs/{tab_id}` closes one. Answered on the session's node.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, Problem, domain::session_error},
    extract::Require,
    permissions::{SessionsRead, SessionsWrite},
    state::AppState,
};

use super::{runner, session_id};

/// One tab of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TabResponse {
    /// The tab's id (Chromium's target id: 32 hexadecimal characters).
    pub id: String,
    pub url: String,
    pub title: String,
    /// The tab the session's commands act on.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TabList {
    pub data: Vec<TabResponse>,
}

fn listed(tabs: Vec<runner::Tab>) -> Json<TabList> {
    Json(TabList {
        data: tabs
            .into_iter()
            .map(|t| TabResponse {
                id: t.id,
                url: t.url,
                title: t.title.chars().take(500).collect(),
                current: t.current,
            })
            .collect(),
    })
}

/// Whether `raw` is written like a tab id (Chromium's target ids): checked before it goes
/// anywhere, by these routes and by the MCP `tabs` tool that builds their paths.
pub fn is_tab_id(raw: &str) -> bool {
    raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit())
}

fn tab_id(raw: &str) -> Result<&str, ApiError> {
    if is_tab_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::invalid(
            "tab_id",
            "is not a tab id (32 hexadecimal characters from GET /v1/sessions/{id}/tabs)",
        ))
    }
}

/// Lists the session's tabs in the browser's order; `current` marks the one commands act on.
/// A page the site opens (a link with `target=_blank`, `window.open`) is a new tab.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/tabs", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = TabList),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_tabs(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Json<TabList>, ApiError> {
    let id = session_id(&id)?;
    let tabs = runner(&state)?
        .tabs(&auth.principal.account_id, &id)
        .await
        .map_err(session_error)?;
    Ok(listed(tabs))
}

/// Makes the tab the one every later command (navigate, actions, wait, capture) acts on, with
/// the session's viewport, user agent, locale, time zone and blocking, and brings it to the
/// front. Answers the tabs. A tab the session drove before is taken back as it was; at most 20
/// tabs are driven at once (409 `too_many_tabs`).
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/tabs/{tab_id}/select", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"),
           ("tab_id" = String, Path, description = "From `GET /v1/sessions/{id}/tabs`")),
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = TabList),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn select_tab(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path((id, tab)): Path<(String, String)>,
) -> Result<Json<TabList>, ApiError> {
    let id = session_id(&id)?;
    let tab = tab_id(&tab)?;
    let tabs = runner(&state)?
        .select_tab(&auth.principal.account_id, &id, tab)
        .await
        .map_err(session_error)?;
    Ok(listed(tabs))
}

/// Closes a tab. The current tab cannot be closed: 409 `current_tab` (select another first).
///
/// Requires `sessions:write`.
#[utoipa::path(delete, path = "/v1/sessions/{id}/tabs/{tab_id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"),
           ("tab_id" = String, Path, description = "From `GET /v1/sessions/{id}/tabs`")),
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 204, description = "Closed"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn close_tab(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path((id, tab)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = session_id(&id)?;
    let tab = tab_id(&tab)?;
    runner(&state)?
        .close_tab(&auth.principal.account_id, &id, tab)
        .await
        .map_err(session_error)?;
    Ok(StatusCode::NO_CONTENT)
}
