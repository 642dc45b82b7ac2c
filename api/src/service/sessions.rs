//! Admitting a new session: the plan's limits on its timeouts, the monthly caps, the profile's
//! fingerprint filling in what the request leaves out, the settings stored with the session
//! (never a header value or proxy password), the browser spec, the start on this node's runner,
//! and the audit entry. Handlers parse a request into an [`Admission`] and call [`admit`].

use std::{collections::BTreeMap, time::Duration};

use axum::http::StatusCode;
use common::{
    clock::rfc3339,
    ids::{ProfileId, SessionId},
};
use runner::{
    BlockedResource, ProfileRequest, SessionSpec, StartError, StartRequest, UpstreamProxy,
    Viewport, store::SessionRecord,
};
use serde_json::json;
use tracing::Instrument;

use crate::{
    audit::Entry,
    auth::Principal,
    error::{
        ApiError,
        domain::{profile_error, session_error},
    },
    extract::Violations,
    state::AppState,
    tiers::Tier,
};

/// What a client asked for; `None` takes the plan's default or the profile's fingerprint.
#[derive(Debug, Default)]
pub struct Admission {
    pub profile_id: Option<ProfileId>,
    pub persist: bool,
    pub viewport: Option<Viewport>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub timeout_seconds: Option<u32>,
    pub idle_timeout_seconds: Option<u32>,
    pub block: Vec<BlockedResource>,
    pub extra_headers: BTreeMap<String, String>,
    pub proxy: Option<UpstreamProxy>,
    /// Record the session; `None`: as the plan defaults.
    pub record: Option<bool>,
    pub mask_all_inputs: bool,
}

/// Starts a session for `principal` on this node's runner, or says why not: 422 for timeouts
/// beyond the plan, 402 for a used-up monthly cap, 429 over the concurrency limit, 503 when no
/// browser is free.
///
/// `source` says where the call came from (`api`, `mcp` or `dashboard`); it is stored with the
/// session, and so is who made it.
pub async fn admit(
    state: &AppState,
    principal: &Principal,
    request: Admission,
    source: &str,
) -> Result<SessionRecord, ApiError> {
    let runner = state
        .runner
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("This node runs no browsers.", 5))?;
    let tier = state
        .tiers
        .get(&principal.tier)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", principal.tier)))?;
    let (timeout, idle) = timeouts_within_plan(tier, &request)?;
    check_monthly_caps(state, principal, tier).await?;
    state.usage.touch(&principal.account_id);

    let profile_id = request.profile_id.clone();
    let persist = request.persist;
    let record = request.record.unwrap_or(tier.record_by_default);
    let mask_all_inputs = request.mask_all_inputs;
    let (spec, options) = browser_spec(state, principal, request)
        .instrument(common::phase!("create.spec"))
        .await?;
    let record = runner
        .create(StartRequest {
            id: SessionId::generate(),
            account_id: principal.account_id.clone(),
            spec,
            options,
            max_duration: Duration::from_secs(u64::from(timeout)),
            idle_timeout: Duration::from_secs(u64::from(idle)),
            cap: tier.max_concurrent_sessions,
            profile: profile_id.clone().map(|id| ProfileRequest {
                id,
                persist,
                max_state_bytes: tier.profile_state_limit(),
            }),
            download_limits: runner::files::DownloadLimits {
                per_file: tier.max_download_bytes,
                per_session: tier.max_session_download_bytes,
            },
            log_limit_bytes: tier.max_session_log_bytes,
            record: record.then_some(runner::RecordRequest {
                options: runner::chromium::RecordOptions { mask_all_inputs },
                limit_bytes: tier.max_session_recording_bytes,
            }),
            created_by: Some(principal.actor.id().to_owned()),
            source: Some(source.to_owned()),
        })
        .await
        .map_err(|e| start_error(e, tier))?;
    state
        .record(Entry::by(
            principal,
            "session.created",
            Some(record.id.to_string()),
            json!({"profile_id": profile_id, "persist": persist}),
        ))
        .instrument(common::phase!("create.audit"))
        .await;
    Ok(record)
}

/// The session's lifetime and idle timeout in seconds: the request's, at most the plan's.
fn timeouts_within_plan(tier: &Tier, request: &Admission) -> Result<(u32, u32), ApiError> {
    let mut v = Violations::default();
    let timeout = request.timeout_seconds.unwrap_or(tier.max_session_seconds);
    v.check(
        timeout <= tier.max_session_seconds,
        "timeout_seconds",
        &format!("must be at most {} on your plan", tier.max_session_seconds),
    );
    let idle = request
        .idle_timeout_seconds
        .unwrap_or(tier.idle_timeout_seconds);
    v.check(
        idle <= tier.idle_timeout_seconds,
        "idle_timeout_seconds",
        &format!("must be at most {} on your plan", tier.idle_timeout_seconds),
    );
    v.into_result()?;
    Ok((timeout, idle))
}

/// Monthly caps bite here: a session may not start once a capped meter is used up. Without caps
/// (self-hosted) there is nothing to read.
async fn check_monthly_caps(
    state: &AppState,
    principal: &Principal,
    tier: &Tier,
) -> Result<(), ApiError> {
    if !tier.has_monthly_caps() {
        return Ok(());
    }
    let usage = crate::service::usage::report_with(state, &principal.account_id, tier).await?;
    for (meter, reading) in [
        ("sessions", &usage.sessions),
        ("session_minutes", &usage.session_minutes),
    ] {
        if reading.exhausted() {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "usage_cap_exceeded",
                format!(
                    "Your plan's monthly {meter} ({}) are used up until {}; upgrade to continue.",
                    reading.limit.unwrap_or(0.0),
                    rfc3339(usage.period_end)
                ),
            )
            .with("meter", json!(meter))
            .with("limit", json!(reading.limit))
            .with("period_end", json!(rfc3339(usage.period_end))));
        }
    }
    Ok(())
}

/// The browser spec, with the profile's fingerprint filling in what the request leaves out, and
/// the options stored and shown back: settings, but header names only (values may be
/// credentials) and never the proxy password.
async fn browser_spec(
    state: &AppState,
    principal: &Principal,
    request: Admission,
) -> Result<(SessionSpec, serde_json::Value), ApiError> {
    let fingerprint = match &request.profile_id {
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
    let viewport = request
        .viewport
        .or(fingerprint.viewport.map(|s| Viewport {
            width: s.width,
            height: s.height,
        }))
        .unwrap_or_default();
    let user_agent = request.user_agent.or(fingerprint.user_agent);
    let locale = request.locale.or(fingerprint.locale);
    let timezone = request.timezone.or(fingerprint.timezone);
    let mut extra_headers = fingerprint.extra_headers;
    extra_headers.extend(request.extra_headers);
    let options = json!({
        "profile_id": request.profile_id,
        "persist": request.persist,
        "viewport": {"width": viewport.width, "height": viewport.height},
        "user_agent": user_agent,
        "locale": locale,
        "timezone": timezone,
        "block": request.block,
        "extra_header_names": extra_headers.keys().collect::<Vec<_>>(),
        "proxy": request.proxy.as_ref().map(|p| json!({"server": p.server, "username": p.username})),
    });
    let spec = SessionSpec {
        viewport,
        user_agent,
        locale,
        timezone,
        geolocation: fingerprint.geolocation,
        extra_headers,
        block: request.block,
        proxy: request.proxy,
    };
    Ok((spec, options))
}

fn start_error(e: StartError, tier: &Tier) -> ApiError {
    match e {
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
    }
}
