//! Sessions: create a headless Chromium session, drive it (navigate, actions, wait, capture),
//! read it, list them, and release it. Commands go to the runner that hosts the session.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use common::{
    clock::rfc3339,
    ids::{ProfileId, SessionId},
};
use runner::{
    Action, BlockedResource, CaptureFormat, CaptureSpec, Counters, ElementState, ProfileRequest,
    RunnerError, SessionSpec, StartError, StartRequest, Viewport, WaitSpec, WaitUntil,
    store::SessionRecord,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::Entry,
    auth::Principal,
    error::{ApiError, Problem},
    extract::{ListParams, Validate, ValidatedJson, ValidatedQuery, Violations, parse_path_id},
    permissions::{Require, Scope, SessionsRead, SessionsWrite},
    routes::{
        Page,
        profiles::{profile_error, state_limit},
    },
    secrets::connect_token,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(get_session, release_session))
        .routes(routes!(navigate))
        .routes(routes!(run_actions))
        .routes(routes!(wait))
        .routes(routes!(capture))
}

/// How long a `connect_url` token stays valid.
const CONNECT_TOKEN_TTL_SECONDS: i64 = 15 * 60;

// ---------------------------------------------------------------------------------------------
// Request and response bodies

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewportBody {
    /// 100–3840 CSS pixels.
    #[schema(minimum = 100, maximum = 3840)]
    pub width: u32,
    /// 100–2160 CSS pixels.
    #[schema(minimum = 100, maximum = 2160)]
    pub height: u32,
}

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
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyBody {
    /// `http://host:port`.
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

fn valid_locale(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn valid_timezone(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && !s.starts_with('/')
        && !s.contains("..")
}

fn valid_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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

/// The settings a session and a profile's fingerprint share.
pub(crate) struct Identity<'a> {
    pub viewport: Option<ViewportBody>,
    pub user_agent: Option<&'a String>,
    pub locale: Option<&'a String>,
    pub timezone: Option<&'a String>,
    pub extra_headers: Option<&'a BTreeMap<String, String>>,
}

/// Checks identity settings; `prefix` is put before each field name (`fingerprint.`).
pub(crate) fn validate_identity(v: &mut Violations, prefix: &str, identity: Identity<'_>) {
    if let Some(vp) = identity.viewport {
        v.check(
            (100..=3840).contains(&vp.width),
            &format!("{prefix}viewport.width"),
            "must be between 100 and 3840",
        );
        v.check(
            (100..=2160).contains(&vp.height),
            &format!("{prefix}viewport.height"),
            "must be between 100 and 2160",
        );
    }
    if let Some(ua) = identity.user_agent {
        let len = ua.chars().count();
        v.check(
            (1..=512).contains(&len),
            &format!("{prefix}user_agent"),
            "must be 1 to 512 characters",
        );
        v.check(
            !ua.chars().any(char::is_control),
            &format!("{prefix}user_agent"),
            "must not contain control characters",
        );
    }
    if let Some(locale) = identity.locale {
        v.check(
            valid_locale(locale),
            &format!("{prefix}locale"),
            "must be a BCP 47 tag such as en-US",
        );
    }
    if let Some(tz) = identity.timezone {
        v.check(
            valid_timezone(tz),
            &format!("{prefix}timezone"),
            "must be an IANA time zone such as Europe/Berlin",
        );
    }
    if let Some(headers) = identity.extra_headers {
        v.check(
            headers.len() <= 50,
            &format!("{prefix}extra_headers"),
            "at most 50 headers",
        );
        for (name, value) in headers {
            v.check(
                valid_header_name(name),
                &format!("{prefix}extra_headers.{name}"),
                "is not a valid header name",
            );
            v.check(
                value.len() <= 8192 && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
                &format!("{prefix}extra_headers.{name}"),
                "must be at most 8192 bytes without line breaks",
            );
        }
    }
}

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
    /// `starting`, `active`, `closing`, `closed`, `failed` or `timed_out`.
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
}

impl SessionResponse {
    /// `may_connect`: the caller holds `sessions:write`, so it may have the `connect_url`.
    fn new(
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
        SessionResponse {
            id: record.id.to_string(),
            status: record.status.as_str().to_owned(),
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
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error mapping

pub(crate) fn session_error(err: RunnerError) -> ApiError {
    match err {
        RunnerError::NotFound => ApiError::not_found("session"),
        RunnerError::Ended => ApiError::conflict("session_ended", "The session has ended."),
        RunnerError::OnAnotherRunner(runner) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "session_on_another_node",
            format!(
                "This session runs on runner {runner}, which this node does not reach: send its \
                 commands to the node that created it, or set DRIFTSTACK_CLUSTER_TOKEN on every \
                 node so that they forward them."
            ),
        )
        .with("runner_id", json!(runner)),
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
        RunnerError::Internal(e) => ApiError::internal(e),
    }
}

fn runner(state: &AppState) -> Result<&Arc<runner::Runner>, ApiError> {
    state
        .runner
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("This node runs no browsers.", 5))
}

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    parse_path_id(raw)
}

async fn load(
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
fn may_connect(principal: &Principal) -> bool {
    principal.scopes.contains(Scope::SessionsWrite)
}

// ---------------------------------------------------------------------------------------------
// Routes

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
    ValidatedJson(body): ValidatedJson<CreateSessionRequest>,
) -> Result<(StatusCode, Json<SessionResponse>), ApiError> {
    let principal = auth.principal;
    let runner = runner(&state)?;
    let tier = state
        .tiers
        .get(&principal.tier)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", principal.tier)))?;
    let mut v = Violations::default();
    let timeout = body.timeout_seconds.unwrap_or(tier.max_session_seconds);
    v.check(
        timeout <= tier.max_session_seconds,
        "timeout_seconds",
        &format!("must be at most {} on your plan", tier.max_session_seconds),
    );
    let idle = body
        .idle_timeout_seconds
        .unwrap_or(tier.idle_timeout_seconds);
    v.check(
        idle <= tier.idle_timeout_seconds,
        "idle_timeout_seconds",
        &format!("must be at most {} on your plan", tier.idle_timeout_seconds),
    );
    v.into_result()?;

    // Monthly caps bite here: a session may not start once a capped meter is used up. Without
    // caps (self-hosted) there is nothing to read.
    if tier.has_monthly_caps() {
        let usage = crate::routes::usage::report(&state, &principal.account_id).await?;
        for (meter, reading) in [
            ("sessions", &usage.sessions),
            ("session_minutes", &usage.session_minutes),
        ] {
            if reading.exhausted() {
                return Err(ApiError::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "usage_cap_exceeded",
                    format!(
                        "Your plan's monthly {meter} ({}) are used up until {}; upgrade to \
                         continue.",
                        reading.limit.unwrap_or(0.0),
                        rfc3339(usage.period_end)
                    ),
                )
                .with("meter", json!(meter))
                .with("limit", json!(reading.limit))
                .with("period_end", json!(rfc3339(usage.period_end))));
            }
        }
    }
    state.usage.touch(&principal.account_id);

    // The profile's fingerprint fills in what the request leaves out.
    let profile_id: Option<ProfileId> = body.profile_id.as_deref().and_then(|s| s.parse().ok());
    let fingerprint = match &profile_id {
        Some(id) => {
            state
                .profiles
                .get(&principal.account_id, id)
                .await
                .map_err(profile_error("profile"))?
                .fingerprint
        }
        None => profiles::Fingerprint::default(),
    };
    let viewport = body
        .viewport
        .map(|vp| Viewport {
            width: vp.width,
            height: vp.height,
        })
        .or(fingerprint.viewport.map(|s| Viewport {
            width: s.width,
            height: s.height,
        }))
        .unwrap_or_default();
    let user_agent = body.user_agent.clone().or(fingerprint.user_agent);
    let locale = body.locale.clone().or(fingerprint.locale);
    let timezone = body.timezone.clone().or(fingerprint.timezone);
    let block: Vec<BlockedResource> = body
        .block
        .iter()
        .flatten()
        .map(|b| match b {
            BlockBody::Image => BlockedResource::Image,
            BlockBody::Font => BlockedResource::Font,
            BlockBody::Media => BlockedResource::Media,
            BlockBody::Stylesheet => BlockedResource::Stylesheet,
        })
        .collect();
    let mut extra_headers = fingerprint.extra_headers;
    extra_headers.extend(body.extra_headers.clone().unwrap_or_default());
    let persist = body.persist.unwrap_or(false);
    // Stored and shown back: settings, but header names only (values may be credentials).
    let options = json!({
        "profile_id": profile_id,
        "persist": persist,
        "viewport": {"width": viewport.width, "height": viewport.height},
        "user_agent": user_agent,
        "locale": locale,
        "timezone": timezone,
        "block": body.block.clone().unwrap_or_default(),
        "extra_header_names": extra_headers.keys().collect::<Vec<_>>(),
        "proxy": body.proxy.as_ref().map(|p| json!({"server": p.server, "username": p.username})),
    });
    let spec = SessionSpec {
        viewport,
        user_agent,
        locale,
        timezone,
        geolocation: fingerprint.geolocation,
        extra_headers,
        block,
        proxy: body.proxy.clone().map(|p| runner::UpstreamProxy {
            server: p.server,
            username: p.username,
            password: p.password,
        }),
    };
    let id = SessionId::generate();
    let record = runner
        .create(StartRequest {
            id,
            account_id: principal.account_id.clone(),
            spec,
            options,
            max_duration: Duration::from_secs(u64::from(timeout)),
            idle_timeout: Duration::from_secs(u64::from(idle)),
            cap: tier.max_concurrent_sessions,
            profile: profile_id.clone().map(|id| ProfileRequest {
                id,
                persist,
                max_state_bytes: state_limit(tier),
            }),
        })
        .await
        .map_err(|e| match e {
            StartError::CapReached => ApiError::too_many(
                "concurrency_limit_exceeded",
                format!(
                    "Your plan allows {} concurrent sessions; release one or retry later.",
                    tier.max_concurrent_sessions.unwrap_or(0)
                ),
                5,
            ),
            StartError::Runner(e) => session_error(e),
            StartError::ProfileInUse(session) => {
                profile_error("profile")(profiles::ProfileError::InUse(session))
            }
            StartError::Profile(e) => profile_error("profile")(e),
            StartError::Store(e) => e.into(),
        })?;
    state
        .record(Entry::by(
            &principal,
            "session.created",
            Some(record.id.to_string()),
            json!({"profile_id": profile_id, "persist": persist}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse::new(&state, record, None, true)),
    ))
}

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
        .await;
    Ok(Json(load(&state, &auth.principal, &id).await?))
}

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

fn check_timeout(v: &mut Violations, field: &str, value: Option<u64>) {
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

fn check_selector(v: &mut Violations, field: String, selector: &str) {
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
            }
        }
    }
}

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

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElementStateBody {
    #[default]
    Attached,
    Visible,
    Hidden,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// Wait for an element matching this CSS selector to reach `state`.
    pub selector: Option<String>,
    /// `attached` (default), `visible` or `hidden`.
    pub state: Option<ElementStateBody>,
    /// Wait for a page load that began after the previous navigate or actions call started
    /// (for example one caused by a click).
    pub navigation: Option<bool>,
    /// Wait until no request has been in flight for 500 ms.
    pub network_idle: Option<bool>,
    /// 100–120000 ms.
    pub timeout_ms: u64,
}

impl Validate for WaitRequest {
    fn validate(&self, v: &mut Violations) {
        check_timeout(v, "timeout_ms", Some(self.timeout_ms));
        if let Some(s) = &self.selector {
            check_selector(v, "selector".into(), s);
        }
        let any = self.selector.is_some()
            || self.navigation == Some(true)
            || self.network_idle == Some(true);
        v.check(
            any,
            "selector",
            "name at least one of selector, navigation or network_idle",
        );
        if self.state.is_some() && self.selector.is_none() {
            v.add("state", "needs a selector");
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaitResponse {
    pub waited_ms: u64,
}

/// Waits for an element state, a navigation or network idleness. Not reached within
/// `timeout_ms`: 504 `timeout`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/wait", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = WaitRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, body = WaitResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 504, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn wait(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<WaitRequest>,
) -> Result<Json<WaitResponse>, ApiError> {
    let id = session_id(&id)?;
    let started = std::time::Instant::now();
    let spec = WaitSpec {
        selector: body.selector,
        state: match body.state.unwrap_or_default() {
            ElementStateBody::Attached => ElementState::Attached,
            ElementStateBody::Visible => ElementState::Visible,
            ElementStateBody::Hidden => ElementState::Hidden,
        },
        navigation: body.navigation.unwrap_or(false),
        network_idle: body.network_idle.unwrap_or(false),
        timeout_ms: body.timeout_ms,
    };
    runner(&state)?
        .wait(&auth.principal.account_id, &id, &spec)
        .await
        .map_err(session_error)?;
    Ok(Json(WaitResponse {
        waited_ms: started.elapsed().as_millis() as u64,
    }))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormatBody {
    Png,
    Jpeg,
    Webp,
    Pdf,
    Html,
    Text,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    pub format: CaptureFormatBody,
    /// The whole page rather than the viewport (images only).
    pub full_page: Option<bool>,
    /// Only this element (images only).
    pub selector: Option<String>,
    /// 0–100, for `jpeg` and `webp`.
    pub quality: Option<u8>,
    /// 100–120000 ms, default 30000.
    pub timeout_ms: Option<u64>,
}

impl Validate for CaptureRequest {
    fn validate(&self, v: &mut Violations) {
        let image = matches!(
            self.format,
            CaptureFormatBody::Png | CaptureFormatBody::Jpeg | CaptureFormatBody::Webp
        );
        if let Some(q) = self.quality {
            v.check(q <= 100, "quality", "must be between 0 and 100");
            v.check(
                matches!(
                    self.format,
                    CaptureFormatBody::Jpeg | CaptureFormatBody::Webp
                ),
                "quality",
                "applies to jpeg and webp only",
            );
        }
        if let Some(s) = &self.selector {
            check_selector(v, "selector".into(), s);
            v.check(image, "selector", "applies to png, jpeg and webp only");
        }
        if self.full_page == Some(true) {
            v.check(image, "full_page", "applies to png, jpeg and webp only");
            v.check(
                self.selector.is_none(),
                "full_page",
                "cannot be combined with selector",
            );
        }
        check_timeout(v, "timeout_ms", self.timeout_ms);
    }
}

/// Captures the page as an image (`png`, `jpeg`, `webp`), a `pdf`, its `html` or its visible
/// `text`. The answer is the bytes with the matching `Content-Type`.
///
/// Requires `sessions:write`.
#[utoipa::path(post, path = "/v1/sessions/{id}/capture", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`")),
    request_body = CaptureRequest,
    responses((status = 421, description = "The session runs on another node (`session_on_another_node`)", body = Problem, content_type = "application/problem+json"),
              (status = 200, description = "The capture",
               content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/webp"),
                       (Vec<u8> = "application/pdf"), (String = "text/html"), (String = "text/plain"))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn capture(
    State(state): State<AppState>,
    auth: Require<SessionsWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CaptureRequest>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let format = match body.format {
        CaptureFormatBody::Png => CaptureFormat::Png,
        CaptureFormatBody::Jpeg => CaptureFormat::Jpeg,
        CaptureFormatBody::Webp => CaptureFormat::Webp,
        CaptureFormatBody::Pdf => CaptureFormat::Pdf,
        CaptureFormatBody::Html => CaptureFormat::Html,
        CaptureFormatBody::Text => CaptureFormat::Text,
    };
    let spec = CaptureSpec {
        format,
        full_page: body.full_page.unwrap_or(false),
        selector: body.selector,
        quality: body.quality,
    };
    let timeout = Duration::from_millis(body.timeout_ms.unwrap_or(30_000));
    let bytes = runner(&state)?
        .capture(&auth.principal.account_id, &id, &spec, timeout)
        .await
        .map_err(session_error)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response())
}
