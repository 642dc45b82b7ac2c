//! A session's logs, read from the database by any node, during the session and after it for the
//! plan's retention: entries by kind with a cursor, and the network log as HAR 1.2.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use common::{clock::rfc3339, ids::LogId};
use runner::logs::{LogKind, LogRecord, har};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    error::{ApiError, Problem},
    extract::{ListParams, Require, Validate, ValidatedQuery, Violations},
    permissions::SessionsRead,
    routes::Page,
    state::AppState,
};

use super::own_session;

/// The most requests one HAR holds (the first ones of the session).
const MAX_HAR_ENTRIES: i64 = 10_000;

/// A kind of log entry (the schema of `?type=`; the parameter is checked as text).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    Console,
    Page,
    Network,
    Cdp,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// `console`, `page` (uncaught errors), `network` or `cdp` (a raw-CDP client's commands);
    /// every kind when absent.
    #[serde(rename = "type")]
    #[param(rename = "type", inline, value_type = Option<LogType>)]
    pub kind: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// The last id of the previous page (`log_…`).
    pub starting_after: Option<String>,
}

impl Validate for LogParams {
    fn validate(&self, v: &mut Violations) {
        self.list().validate(v);
        if let Some(kind) = &self.kind {
            v.check(
                LogKind::parse(kind).is_some(),
                "type",
                "must be one of console, page, network, cdp",
            );
        }
        if let Some(cursor) = &self.starting_after {
            v.check(
                cursor.parse::<LogId>().is_ok(),
                "starting_after",
                "is not an id of this list",
            );
        }
    }
}

impl LogParams {
    fn list(&self) -> ListParams {
        ListParams {
            limit: self.limit,
            starting_after: self.starting_after.clone(),
        }
    }
}

/// One log entry. `data` by `type`: `console` and `page` — `level`, `text`, `url`, `line`,
/// `column`; `network` — `method`, `url`, `status`, `mime_type`, headers, sizes, `timing`,
/// `failure`, `from_cache`; `cdp` — `method`, `direction`, sizes, `latency_ms`, `error`.
/// Credential headers and secret-looking query values read `[redacted]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntryResponse {
    /// `log_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened.
    pub at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<LogRecord> for LogEntryResponse {
    fn from(r: LogRecord) -> Self {
        LogEntryResponse {
            id: r.id.to_string(),
            kind: r.kind.as_str(),
            at: rfc3339(r.at),
            data: serde_json::from_str(&r.entry).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The session's log entries, oldest first: console messages, uncaught page errors, one entry
/// per network request (once it finished or failed) and a raw-CDP client's commands. Entries
/// are written every quarter second while the session runs.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/logs", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), LogParams),
    responses((status = 200, body = Page<LogEntryResponse>),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_logs(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
    ValidatedQuery(params): ValidatedQuery<LogParams>,
) -> Result<Json<Page<LogEntryResponse>>, ApiError> {
    let account = &auth.principal.account_id;
    let id = own_session(&state, account, &id).await?;
    let list = params.list();
    let cursor: Option<LogId> = list.cursor()?;
    let kind = params.kind.as_deref().and_then(LogKind::parse);
    let (rows, has_more) = state
        .logs
        .list(account, &id, kind, cursor.as_ref(), list.limit())
        .await?;
    Ok(Json(Page {
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    }))
}

/// The session's network log as a HAR 1.2 document (one entry per request, with timings; no
/// bodies), for any HAR viewer. At most the first 10 000 requests.
///
/// Requires `sessions:read`.
#[utoipa::path(get, path = "/v1/sessions/{id}/har", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    responses((status = 200, description = "HAR 1.2", content_type = "application/json",
               body = Object),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn har(
    State(state): State<AppState>,
    auth: Require<SessionsRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account = &auth.principal.account_id;
    let id = own_session(&state, account, &id).await?;
    let mut entries = Vec::new();
    let mut after: Option<LogId> = None;
    loop {
        let (rows, more) = state
            .logs
            .list(account, &id, Some(LogKind::Network), after.as_ref(), 500)
            .await?;
        after = rows.last().map(|r| r.id.clone());
        entries.extend(
            rows.iter()
                .filter_map(|r| serde_json::from_str::<har::NetworkEntry>(&r.entry).ok()),
        );
        if !more || entries.len() as i64 >= MAX_HAR_ENTRIES {
            break;
        }
    }
    entries.truncate(usize::try_from(MAX_HAR_ENTRIES).unwrap_or(usize::MAX));
    entries.sort_by_key(|e| e.started_at);
    let doc = har::document(&entries, env!("CARGO_PKG_VERSION"));
    let mut response = Json(doc).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.har\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
