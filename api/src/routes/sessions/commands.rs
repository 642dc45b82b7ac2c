//! Driving a session: `navigate` and batches of `actions`.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
};
use runner::{Action, WaitUntil};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::domain::ActionResult;
use crate::extract::Require;
use crate::{
    error::{ApiError, Problem, domain::session_error},
    extract::{Validate, ValidatedJson, Violations},
    permissions::SessionsWrite,
    state::AppState,
};

use super::{runner, session_id};

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitUntilBody {
    #[default]
    Load,
    Domcontentloaded,
    Networkidle,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NavigateRequest {
    /// An `http` or `https` URL (at most 8192 characters).
    pub url: String,
    /// When the navigation counts as done; default `load`.
    pub wait_until: Option<WaitUntilBody>,
    /// 100–120000 ms, default 30000.
    pub timeout_ms: Option<u64>,
}

pub(super) fn check_timeout(v: &mut Violations, field: &str, value: Option<u64>) {
    if let Some(ms) = value {
        v.check(
            (100..=120_000).contains(&ms),
            field,
            "must be between 100 and 120000",
        );
    }
}

/// Parses a navigation target: http(s) only, with a host.
fn parse_target_url(raw: &str) -> Result<url::Url, &'static str> {
    if raw.len() > 8192 {
        return Err("must be at most 8192 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "is not a valid absolute URL")?;
    match url.scheme() {
        "http" | "https" => {}
        _ => return Err("only http and https URLs can be opened"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host");
    }
    Ok(url)
}

impl Validate for NavigateRequest {
    fn validate(&self, v: &mut Violations) {
        if let Err(message) = parse_target_url(&self.url) {
            v.add("url", message);
        }
        check_timeout(v, "timeout_ms", self.timeout_ms);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NavigateResponse {
    /// The URL after redirects.
    pub url: String,
    /// HTTP status of the main document, when there was a response.
    pub status: Option<u16>,
    pub title: String,
    pub elapsed_ms: u64,
}

/// Opens a URL in the session's page and waits for it to load.
///
/// A page that cannot be loaded (refused connection, unknown host) answers 502
/// `navigation_failed`; one that does not finish in time answers 504 `timeout`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/navigate", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = NavigateRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = NavigateResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 504, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn navigate(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<NavigateRequest>,
) -> Result<Json<NavigateResponse>, ApiError> {
    let id = session_id(&id)?;
    let url = parse_target_url(&body.url).map_err(|m| ApiError::invalid("url", m))?;
    let wait_until = match body.wait_until.unwrap_or_default() {
        WaitUntilBody::Load => WaitUntil::Load,
        WaitUntilBody::Domcontentloaded => WaitUntil::DomContentLoaded,
        WaitUntilBody::Networkidle => WaitUntil::NetworkIdle,
    };
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(30_000));
    let outcome = runner(&state)?
        .navigate(
            &auth.principal.account_id,
            &id,
            url.as_str(),
            wait_until,
            timeout,
        )
        .await
        .map_err(session_error)?;
    Ok(Json(NavigateResponse {
        url: outcome.url,
        status: outcome.status,
        title: outcome.title,
        elapsed_ms: outcome.elapsed_ms,
    }))
}

/// One browser action.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ActionBody {
    /// Clicks the centre of the first element matching `selector`, once it is visible.
    Click { selector: String },
    /// Clicks the element, then types `text` key by key.
    Type { selector: String, text: String },
    /// Presses a key such as `Enter`, `Tab`, `ArrowDown` or `a`.
    Press { key: String },
    /// Scrolls the element into view, or the window by `x`/`y` pixels.
    Scroll {
        x: Option<f64>,
        y: Option<f64>,
        selector: Option<String>,
    },
    /// Chooses the option with `value` in a `<select>`.
    Select { selector: String, value: String },
    /// Moves the mouse over the element.
    Hover { selector: String },
    /// Evaluates a JavaScript expression (promises are awaited) and returns its JSON value.
    Evaluate { expression: String },
    /// Sets the files of the `<input type=file>` matching `selector` to uploads of this session
    /// (`upl_…` ids from `POST /v1/sessions/{id}/uploads`), as if the user had chosen them.
    #[serde(rename = "set_files")]
    SetFiles {
        selector: String,
        uploads: Vec<String>,
    },
    /// Waits for the session's next download to finish (put it after the click that starts
    /// one); its value is `{download_id, filename, size, sha256}`. A download over the plan's
    /// limit fails it.
    #[serde(rename = "wait_for_download")]
    WaitForDownload,
    /// Goes back one page in the tab's history and waits until it is shown (fails when there
    /// is no previous page).
    Back,
    /// Goes forward one page in the tab's history and waits until it is shown.
    Forward,
    /// Loads the page again and waits for its `load`.
    Reload,
}

impl From<ActionBody> for Action {
    fn from(a: ActionBody) -> Self {
        match a {
            ActionBody::Click { selector } => Action::Click { selector },
            ActionBody::Type { selector, text } => Action::Type { selector, text },
            ActionBody::Press { key } => Action::Press { key },
            ActionBody::Scroll { x, y, selector } => Action::Scroll { x, y, selector },
            ActionBody::Select { selector, value } => Action::Select { selector, value },
            ActionBody::Hover { selector } => Action::Hover { selector },
            ActionBody::Evaluate { expression } => Action::Evaluate { expression },
            ActionBody::SetFiles { selector, uploads } => Action::SetFiles { selector, uploads },
            ActionBody::WaitForDownload => Action::WaitForDownload,
            ActionBody::Back => Action::Back,
            ActionBody::Forward => Action::Forward,
            ActionBody::Reload => Action::Reload,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsRequest {
    /// 1–100 actions, run in order; the first failure stops the list.
    pub actions: Vec<ActionBody>,
    /// Time each action may take (waiting for its element included), 100–120000 ms, default 10000.
    pub timeout_ms: Option<u64>,
}

pub(super) fn check_selector(v: &mut Violations, field: String, selector: &str) {
    v.check(
        !selector.trim().is_empty() && selector.len() <= 1000,
        &field,
        "must be a CSS selector of 1 to 1000 characters",
    );
}

impl Validate for ActionsRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            (1..=100).contains(&self.actions.len()),
            "actions",
            "must hold 1 to 100 actions",
        );
        check_timeout(v, "timeout_ms", self.timeout_ms);
        for (i, action) in self.actions.iter().enumerate() {
            let f = |name: &str| format!("actions[{i}].{name}");
            match action {
                ActionBody::Click { selector } | ActionBody::Hover { selector } => {
                    check_selector(v, f("selector"), selector);
                }
                ActionBody::Type { selector, text } => {
                    check_selector(v, f("selector"), selector);
                    v.check(
                        text.chars().count() <= 10_000,
                        &f("text"),
                        "must be at most 10000 characters",
                    );
                }
                ActionBody::Press { key } => {
                    v.check(
                        !key.is_empty() && key.len() <= 32,
                        &f("key"),
                        "must be a key name such as Enter",
                    );
                }
                ActionBody::Scroll { x, y, selector } => {
                    if let Some(s) = selector {
                        check_selector(v, f("selector"), s);
                    }
                    for (name, value) in [("x", x), ("y", y)] {
                        if let Some(n) = value {
                            v.check(
                                n.is_finite() && n.abs() <= 1e7,
                                &f(name),
                                "must be a finite number of pixels",
                            );
                        }
                    }
                }
                ActionBody::Select { selector, value } => {
                    check_selector(v, f("selector"), selector);
                    v.check(
                        value.len() <= 10_000,
                        &f("value"),
                        "must be at most 10000 characters",
                    );
                }
                ActionBody::Evaluate { expression } => {
                    v.check(
                        !expression.trim().is_empty() && expression.len() <= 100_000,
                        &f("expression"),
                        "must be 1 to 100000 characters",
                    );
                }
                ActionBody::SetFiles { selector, uploads } => {
                    check_selector(v, f("selector"), selector);
                    v.check(
                        (1..=20).contains(&uploads.len()),
                        &f("uploads"),
                        "must name 1 to 20 uploads",
                    );
                    for (n, u) in uploads.iter().enumerate() {
                        v.check(
                            u.parse::<common::ids::UploadId>().is_ok(),
                            &format!("{}[{n}]", f("uploads")),
                            "is not an upload id (upl_…)",
                        );
                    }
                }
                ActionBody::WaitForDownload
                | ActionBody::Back
                | ActionBody::Forward
                | ActionBody::Reload => {}
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionsResponse {
    pub results: Vec<ActionResult>,
}

/// Runs a list of actions in order. The first failing action stops the list: the answer is 422
/// `action_failed` with `failed_action` (`index`, `type`, `reason`) and the `results` of the
/// actions that ran before it.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/actions", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = ActionsRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = ActionsResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn run_actions(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<ActionsRequest>,
) -> Result<Json<ActionsResponse>, ApiError> {
    let id = session_id(&id)?;
    let actions: Vec<Action> = body.actions.into_iter().map(Into::into).collect();
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(10_000));
    let done = runner(&state)?
        .actions(&auth.principal.account_id, &id, &actions, timeout)
        .await
        .map_err(session_error)?;
    Ok(Json(ActionsResponse {
        results: done.iter().map(ActionResult::from).collect(),
    }))
}
