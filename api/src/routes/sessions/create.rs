//! `POST /v1/sessions`: the request body, its validation, and the handler that hands it to
//! admission (`service::sessions::admit`).

use std::collections::BTreeMap;

use axum::{Extension, Json, extract::State, http::StatusCode};
use common::ids::ProfileId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use runner::{BlockedResource, UpstreamProxy, Viewport};

use crate::extract::Require;
use crate::middleware::InProcess;
use crate::{
    error::{ApiError, Problem},
    extract::{Validate, ValidatedJson, Violations},
    permissions::SessionsWrite,
    state::AppState,
};
use crate::{
    routes::fingerprint::{Identity, ViewportBody, validate_identity},
    service::{self, sessions::Admission},
};

use super::SessionResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockBody {
    Image,
    Font,
    Media,
    Stylesheet,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// Run on this profile (`prof_…`): its fingerprint and saved state (cookies, localStorage)
    /// are loaded before the session is handed out. One live session per profile.
    pub profile_id: Option<String>,
    /// With `profile_id`: save the session's final state back into the profile when it ends
    /// (release, timeout or server shutdown). Default false.
    pub persist: Option<bool>,
    /// Default 1280×720, or the profile's.
    pub viewport: Option<ViewportBody>,
    /// Overrides the browser's user agent (1–512 characters).
    #[schema(min_length = 1, max_length = 512)]
    pub user_agent: Option<String>,
    /// A BCP 47 locale such as `en-US`; also sets `Accept-Language`.
    pub locale: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`.
    pub timezone: Option<String>,
    /// Maximum lifetime in seconds; at most your plan's maximum (the default).
    #[schema(minimum = 1)]
    pub timeout_seconds: Option<u32>,
    /// Seconds without a command before the session ends; at most your plan's default.
    #[schema(minimum = 1)]
    pub idle_timeout_seconds: Option<u32>,
    /// Resource types the page must not load.
    pub block: Option<Vec<BlockBody>>,
    /// Headers added to every request the page makes (at most 50).
    pub extra_headers: Option<BTreeMap<String, String>>,
    /// Send the session's traffic through your own HTTP proxy (it must be reachable under the
    /// egress rules). The password is never stored or shown back.
    pub proxy: Option<ProxyBody>,
    /// Record the session for replay (rrweb DOM events; `GET /v1/sessions/{id}/recording`).
    /// Default: your plan's `record_by_default` (off unless the plan says otherwise).
    pub record: Option<bool>,
    pub record_options: Option<RecordOptionsBody>,
}

/// How a recorded session is recorded. Password inputs and elements marked `data-ds-mask` are
/// always masked.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordOptionsBody {
    /// Mask the value of every input, not only passwords. Default false.
    pub mask_all_inputs: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyBody {
    /// `http://host:port`.
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Validate for CreateSessionRequest {
    fn validate(&self, v: &mut Violations) {
        validate_identity(
            v,
            "",
            Identity {
                viewport: self.viewport,
                user_agent: self.user_agent.as_ref(),
                locale: self.locale.as_ref(),
                timezone: self.timezone.as_ref(),
                extra_headers: self.extra_headers.as_ref(),
            },
        );
        if let Some(id) = &self.profile_id {
            v.check(
                id.parse::<ProfileId>().is_ok(),
                "profile_id",
                "is not a profile id (prof_…)",
            );
        }
        if self.record_options.is_some() && self.record == Some(false) {
            v.add("record_options", "requires recording (`record` is false)");
        }
        if self.persist == Some(true) && self.profile_id.is_none() {
            v.add("persist", "requires profile_id");
        }
        if self.timeout_seconds == Some(0) {
            v.add("timeout_seconds", "must be at least 1");
        }
        if self.idle_timeout_seconds == Some(0) {
            v.add("idle_timeout_seconds", "must be at least 1");
        }
        if let Some(proxy) = &self.proxy {
            let ok = url::Url::parse(&proxy.server).is_ok_and(|u| {
                u.scheme() == "http"
                    && u.host_str().is_some()
                    && u.path() == "/"
                    && u.username().is_empty()
            });
            v.check(
                ok,
                "proxy.server",
                "must be an http://host:port URL without credentials",
            );
            for (field, value) in [
                ("proxy.username", &proxy.username),
                ("proxy.password", &proxy.password),
            ] {
                if let Some(value) = value {
                    v.check(
                        value.len() <= 256 && !value.chars().any(char::is_control),
                        field,
                        "must be at most 256 characters without control characters",
                    );
                }
            }
            if proxy.password.is_some() && proxy.username.is_none() {
                v.add("proxy.username", "is required with a password");
            }
        }
    }
}

/// Creates a session: a fresh browser context in a warm Chromium process, ready in milliseconds.
///
/// Over the account's concurrency limit: 429 `concurrency_limit_exceeded` with `retry-after`.
/// No free browser on the node within the queue timeout: 503 `capacity_exhausted` with
/// `retry-after`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body(content = Option<CreateSessionRequest>),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 hours")),
    responses((status = 201, body = SessionResponse),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_session(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    in_process: Option<Extension<InProcess>>,
    ValidatedJson(body): ValidatedJson<CreateSessionRequest>,
) -> Result<(StatusCode, Json<SessionResponse>), ApiError> {
    // MCP tool calls reach this handler in process; dashboard sign-ins carry their session.
    let source = if in_process.is_some() {
        "mcp"
    } else if auth.principal.dashboard.is_some() {
        "dashboard"
    } else {
        "api"
    };
    let record = service::sessions::admit(&state, &auth.principal, body.into(), source).await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse::new(&state, record, None, true)),
    ))
}

impl From<CreateSessionRequest> for Admission {
    fn from(body: CreateSessionRequest) -> Self {
        Admission {
            // Validation has checked the id's form.
            profile_id: body.profile_id.as_deref().and_then(|s| s.parse().ok()),
            persist: body.persist.unwrap_or(false),
            viewport: body.viewport.map(|vp| Viewport {
                width: vp.width,
                height: vp.height,
            }),
            user_agent: body.user_agent,
            locale: body.locale,
            timezone: body.timezone,
            timeout_seconds: body.timeout_seconds,
            idle_timeout_seconds: body.idle_timeout_seconds,
            block: body
                .block
                .iter()
                .flatten()
                .map(|b| match b {
                    BlockBody::Image => BlockedResource::Image,
                    BlockBody::Font => BlockedResource::Font,
                    BlockBody::Media => BlockedResource::Media,
                    BlockBody::Stylesheet => BlockedResource::Stylesheet,
                })
                .collect(),
            extra_headers: body.extra_headers.unwrap_or_default(),
            proxy: body.proxy.map(|p| UpstreamProxy {
                server: p.server,
                username: p.username,
                password: p.password,
            }),
            record: body.record,
            mask_all_inputs: body
                .record_options
                .and_then(|o| o.mask_all_inputs)
                .unwrap_or(false),
        }
    }
}
