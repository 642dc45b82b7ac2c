//! The audit log of the calling account, newest first, with filters and cursor pages. Entries
//! are append-only and hash-chained (`driftstack audit verify` checks the chains).

use axum::{Json, extract::State};
use common::clock::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    audit::{Filter, Row},
    error::{ApiError, Problem},
    extract::{ListParams, Validate, ValidatedQuery, Violations},
    permissions::AuditRead,
    routes::Page,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// An action (`team.invite.created`), or a prefix ending in `.` (`team.`).
    pub action: Option<String>,
    /// Who acted: `usr_…`, `key_…` or `anonymous`.
    pub actor: Option<String>,
    /// What was acted on, e.g. a key, session, profile or user id.
    pub target: Option<String>,
    /// RFC 3339; entries at or after.
    pub since: Option<String>,
    /// RFC 3339; entries before.
    pub until: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// The last id of the previous page (`aud_…`).
    pub starting_after: Option<String>,
}

impl Validate for AuditParams {
    fn validate(&self, v: &mut Violations) {
        ListParams {
            limit: self.limit,
            starting_after: None,
        }
        .validate(v);
        for (field, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(value) = value {
                v.check(
                    parse_rfc3339(value).is_some(),
                    field,
                    "must be an RFC 3339 time such as 2026-11-23T10:00:00Z",
                );
            }
        }
        for (field, value) in [
            ("action", &self.action),
            ("actor", &self.actor),
            ("target", &self.target),
        ] {
            if let Some(value) = value {
                v.check(
                    !value.is_empty() && value.len() <= 200,
                    field,
                    "must be 1 to 200 characters",
                );
            }
        }
        if let Some(cursor) = &self.starting_after {
            v.check(
                cursor.parse::<common::ids::AuditId>().is_ok(),
                "starting_after",
                "is not an id of this list",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `api_key`, `stripe` (billing webhooks) or `anonymous`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `aud_…`
    pub id: String,
    /// Dotted, e.g. `api_key.created`.
    pub action: String,
    pub actor: AuditActor,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request that did it (`x-request-id`).
    pub request_id: Option<String>,
    /// Redacted details (ids, names, counts, outcomes — never secrets).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
    /// SHA-256 over the previous entry's hash and this entry's fields.
    pub hash: String,
    pub prev_hash: String,
}

impl From<Row> for AuditEntry {
    fn from(r: Row) -> Self {
        let kind = if r.actor.starts_with("usr_") {
            "user"
        } else if r.actor.starts_with("key_") {
            "api_key"
        } else if r.actor == "stripe" {
            "stripe"
        } else {
            "anonymous"
        };
        AuditEntry {
            id: r.id,
            action: r.action,
            actor: AuditActor { kind, id: r.actor },
            target: r.target,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
            created_at: rfc3339(r.created_at),
            hash: r.hash,
            prev_hash: r.prev_hash,
        }
    }
}

/// The account's audit log, newest first: every sign-in event, key, session, profile, team,
/// webhook and settings change, with who, from where, and when.
///
/// Requires `audit:read`.
#[utoipa::path(get, path = "/v1/audit-log", tag = "audit",
    params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_audit_log(
    State(state): State<AppState>,
    auth: Require<AuditRead>,
    ValidatedQuery(params): ValidatedQuery<AuditParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let (action, action_prefix) = match params.action {
        Some(a) if a.ends_with('.') => (None, Some(a)),
        other => (other, None),
    };
    let filter = Filter {
        action,
        action_prefix,
        actor: params.actor,
        target: params.target,
        since: params.since.as_deref().and_then(parse_rfc3339),
        until: params.until.as_deref().and_then(parse_rfc3339),
    };
    let limit = params.limit.unwrap_or(ListParams::DEFAULT_LIMIT);
    let (rows, has_more) = state
        .audit
        .list(
            &auth.principal.account_id,
            &filter,
            params.starting_after.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(Page {
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    }))
}
