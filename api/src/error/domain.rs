//! How the domain crates' errors read to a client: a runner's (`RunnerError`) and a profile
//! store's (`ProfileError`) errors as problems with a stable `code`, and the action results a
//! failed action batch carries.

use axum::http::StatusCode;
use profiles::ProfileError;
use runner::RunnerError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::ApiError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResult {
    pub index: usize,
    /// The action's type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub elapsed_ms: u64,
    /// The value of an `evaluate` (or the scroll position after `scroll`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<serde_json::Value>,
}

impl From<&runner::ActionOutcome> for ActionResult {
    fn from(o: &runner::ActionOutcome) -> Self {
        ActionResult {
            index: o.index,
            kind: o.kind,
            elapsed_ms: o.elapsed_ms,
            value: o.value.clone(),
        }
    }
}

pub fn session_error(err: RunnerError) -> ApiError {
    match err {
        RunnerError::NotFound => ApiError::not_found("session"),
        RunnerError::Ended => ApiError::conflict("session_ended", "The session has ended."),
        RunnerError::Busy => ApiError::conflict(
            "session_busy",
            "Another command is running on this session.",
        ),
        RunnerError::Invalid { field, message } => ApiError::invalid(field, message),
        RunnerError::ActionFailed {
            index,
            kind,
            reason,
            completed,
        } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "action_failed",
            format!("Action {index} ({kind}) failed: {reason}"),
        )
        .with(
            "failed_action",
            json!({"index": index, "type": kind, "reason": reason}),
        )
        .with(
            "results",
            json!(completed.iter().map(ActionResult::from).collect::<Vec<_>>()),
        ),
        RunnerError::EgressDenied { host } => ApiError::new(
            StatusCode::FORBIDDEN,
            "egress_denied",
            format!(
                "The egress guard refused {host}: it resolves to a private, loopback, link-local \
                 or otherwise reserved address."
            ),
        )
        .with("host", json!(host)),
        RunnerError::NavigationFailed(text) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "navigation_failed",
            format!("The page could not be loaded: {text}"),
        ),
        RunnerError::Timeout(ms) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("The command did not finish within {ms} ms."),
        ),
        RunnerError::Capacity {
            retry_after_seconds,
        } => ApiError::unavailable(
            "No browser is free on this node; retry shortly.",
            retry_after_seconds,
        )
        .with_code("capacity_exhausted"),
        RunnerError::Crashed => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "browser_crashed",
            "The session's browser crashed; the session has ended as failed.",
        ),
        RunnerError::TabNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "tab_not_found",
            "The session has no tab with this id (GET /v1/sessions/{id}/tabs lists them).",
        ),
        RunnerError::CurrentTab => ApiError::conflict(
            "current_tab",
            "This is the tab the session drives: select another tab first.",
        ),
        RunnerError::TooManyTabs => ApiError::conflict(
            "too_many_tabs",
            "The session already drives 20 tabs: close some first.",
        ),
        RunnerError::Internal(e) => ApiError::internal(e),
    }
}

/// How a profile failure reads to the caller (`what` names the missing object).
pub fn profile_error(what: &'static str) -> impl Fn(ProfileError) -> ApiError {
    move |e| match e {
        ProfileError::NotFound => ApiError::not_found(what),
        ProfileError::InUse(session) => ApiError::conflict(
            "profile_in_use",
            format!("The profile is in use by live session {session}; end it first."),
        )
        .with("session_id", json!(session)),
        ProfileError::LimitReached(max) => ApiError::forbidden(
            "profile_limit_reached",
            format!("Your plan allows {max} profiles; delete one or upgrade."),
        )
        .with("limit", json!(max)),
        ProfileError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "profile_state_too_large",
            format!(
                "The profile state is larger than your plan's {limit} bytes after compression."
            ),
        )
        .with("limit_bytes", json!(limit)),
        ProfileError::Unreadable(reason) => ApiError {
            source: Some(anyhow::anyhow!("profile state unreadable: {reason}")),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "profile_state_unreadable",
                "The profile's saved state cannot be read (damaged, or encrypted under a key that \
                 is not configured). Restore one of its snapshots to continue; the profile \
                 itself is unchanged.",
            )
        },
        ProfileError::Unverified(reason) => ApiError {
            source: Some(anyhow::anyhow!("profile save unverified: {reason}")),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "profile_save_unverified",
                "The state did not read back as written, so it was not kept; the profile keeps \
                 its previous state.",
            )
        },
        ProfileError::Storage(reason) => {
            ApiError::internal(anyhow::anyhow!("profile storage: {reason}"))
        }
        ProfileError::Store(e) => e.into(),
    }
}

/// 413 `upload_too_large`: an upload carries more than `limit` bytes.
pub fn upload_too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!(
            "This upload may carry at most {limit} bytes (your plan's limit per file, and per \
             session)."
        ),
    )
    .with("limit_bytes", json!(limit))
}
