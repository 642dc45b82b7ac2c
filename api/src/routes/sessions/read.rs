//! Reading sessions (one, or a page of them) and releasing one.

use axum::{
    Json,
    extract::{Path, State},
};
use common::ids::SessionId;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;
use utoipa::IntoParams;

use crate::extract::Require;
use crate::{
    audit::Entry,
    error::{ApiError, Problem, domain::session_error},
    extract::{ListParams, Validate, ValidatedQuery, Violations},
    permissions::{SessionsRead, SessionsWrite},
    routes::Page,
    state::AppState,
};

use super::{SessionResponse, load, may_connect, runner, session_id};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSessionsParams {
    /// `live` for starting, active and closing sessions only; default all.
    pub status: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// The last id of the previous page.
    pub starting_after: Option<String>,
}

impl Validate for ListSessionsParams {
    fn validate(&self, v: &mut Violations) {
        if let Some(status) = &self.status {
            v.check(
                status == "live" || status == "all",
                "status",
                "must be `live` or `all`",
            );
        }
        ListParams {
            limit: self.limit,
            starting_after: None,
        }
        .validate(v);
    }
}

/// Lists the account's sessions, newest first.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    params(ListSessionsParams),
    responses((status = 200, body = Page<SessionResponse>),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    ValidatedQuery(params): ValidatedQuery<ListSessionsParams>,
) -> Result<Json<Page<SessionResponse>>, ApiError> {
    let list = ListParams {
        limit: params.limit,
        starting_after: params.starting_after.clone(),
    };
    let cursor: Option<SessionId> = list.cursor()?;
    let account = &auth.principal.account_id;
    let live_only = params.status.as_deref() == Some("live");
    let (records, has_more) = state
        .sessions
        .list(account, live_only, cursor.as_ref(), list.limit())
        .await?;
    let mut data = Vec::with_capacity(records.len());
    for record in records {
        let live = match &state.runner {
            Some(r) if record.status.is_live() => r.live_counters(account, &record.id).await,
            _ => None,
        };
        data.push(SessionResponse::new(
            &state,
            record,
            live,
            may_connect(&auth.principal),
        ));
    }
    Ok(Json(Page { data, has_more }))
}

/// One session, with its live usage counters.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, body = SessionResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_session(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Json<SessionResponse>, ApiError> {
    let id = session_id(&id)?;
    Ok(Json(load(&state, &auth.principal, &id).await?))
}

/// Releases a session: its browser context is destroyed and its slot freed. Releasing a session
/// that has already ended answers 409 `session_ended`.
///
/// Requires `sessions:write`.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = SessionResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn release_session(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
) -> Result<Json<SessionResponse>, ApiError> {
    let id = session_id(&id)?;
    let account = &auth.principal.account_id;
    runner(&state)?
        .release(account, &id)
        .await
        .map_err(session_error)?;
    state
        .record(Entry::by(
            &auth.principal,
            "session.released",
            Some(id.to_string()),
            json!({}),
        ))
        .instrument(common::phase!("release.audit"))
        .await;
    Ok(Json(
        load(&state, &auth.principal, &id)
            .instrument(common::phase!("release.read"))
            .await?,
    ))
}
