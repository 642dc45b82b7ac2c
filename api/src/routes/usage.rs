//! Usage of the calling account in the current calendar month (UTC), against its tier's caps,
//! and a per-feature check a client can ask before starting work.

use axum::{
    Json,
    extract::{Path, State},
};
use common::clock::rfc3339;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    error::{ApiError, Problem},
    permissions::UsageRead,
    state::AppState,
    usage::Reading,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_usage))
        .routes(routes!(daily_usage))
        .routes(routes!(check_feature))
        .routes(routes!(deprecated_calls))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meter {
    pub used: f64,
    /// `null`: no cap on your plan.
    pub limit: Option<f64>,
    pub percent_used: Option<f64>,
}

impl From<&Reading> for Meter {
    fn from(r: &Reading) -> Self {
        Meter {
            used: r.used,
            limit: r.limit,
            percent_used: r.percent(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meters {
    /// Sessions started this period.
    pub sessions: Meter,
    /// Wall time of sessions (live ones included), in minutes to the second.
    pub session_minutes: Meter,
    /// Authenticated API requests (counted in memory, written every few seconds).
    pub api_calls: Meter,
    /// Bytes browsers sent and received.
    pub data_transfer_bytes: Meter,
    /// Bytes of sessions' completed downloads (kept in the blob store).
    pub download_bytes: Meter,
    /// Bytes of session recordings stored this period (compressed).
    pub recording_bytes: Meter,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Concurrency {
    pub active: u64,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub tier: String,
    pub period_start: String,
    pub period_end: String,
    pub meters: Meters,
    pub concurrency: Concurrency,
}

/// The account's usage this month against its plan.
///
/// Requires `usage:read`.
#[utoipa::path(get, path = "/v1/usage", tag = "usage",
    responses((status = 200, body = UsageResponse)),
    security(("bearer" = [])))]
pub async fn get_usage(
    State(state): State<AppState>,
    auth: Require<UsageRead>,
) -> Result<Json<UsageResponse>, ApiError> {
    let p = auth.principal;
    let r = crate::service::usage::report(&state, &p.account_id).await?;
    Ok(Json(UsageResponse {
        tier: p.tier,
        period_start: rfc3339(r.period_start),
        period_end: rfc3339(r.period_end),
        meters: Meters {
            sessions: (&r.sessions).into(),
            session_minutes: (&r.session_minutes).into(),
            api_calls: (&r.api_calls).into(),
            data_transfer_bytes: (&r.data_transfer_bytes).into(),
            download_bytes: (&r.download_bytes).into(),
            recording_bytes: (&r.recording_bytes).into(),
        },
        concurrency: Concurrency {
            active: r.active_sessions,
            limit: r.concurrency_limit,
        },
    }))
}

/// One UTC day of the current period.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Sessions started that day.
    pub sessions: u64,
    /// Session wall time within that day (a session over midnight counts on both days).
    pub session_minutes: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsageResponse {
    pub period_start: String,
    pub period_end: String,
    /// From the period's first day to today; the days add up to the month's meters.
    pub days: Vec<UsageDay>,
}

/// The current period day by day: sessions and session minutes (for a chart). API calls are
/// metered per month only.
///
/// Requires `usage:read`.
#[utoipa::path(get, path = "/v1/usage/daily", tag = "usage",
    responses((status = 200, body = DailyUsageResponse)),
    security(("bearer" = [])))]
pub async fn daily_usage(
    State(state): State<AppState>,
    auth: Require<UsageRead>,
) -> Result<Json<DailyUsageResponse>, ApiError> {
    let (start, end, days) = state.usage.daily(&auth.principal.account_id).await?;
    Ok(Json(DailyUsageResponse {
        period_start: rfc3339(start),
        period_end: rfc3339(end),
        days: days
            .into_iter()
            .map(|d| UsageDay {
                date: rfc3339(d.start).chars().take(10).collect(),
                sessions: d.sessions,
                session_minutes: (d.ms as f64 / 60_000.0 * 10_000.0).round() / 10_000.0,
            })
            .collect(),
    }))
}

/// Whether a feature can be used now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureCheck {
    pub is_valid: bool,
    pub used: f64,
    pub limit: Option<f64>,
    pub percent_used: Option<f64>,
    /// Why not, when `isValid` is false.
    pub failure_reason: Option<String>,
}

/// Checks one feature against the plan: `sessions` (monthly sessions), `session_minutes`,
/// `concurrent_sessions`, `profiles` or `live_keys`.
///
/// Requires `usage:read`.
#[utoipa::path(get, path = "/v1/usage/features/{feature}/check", tag = "usage",
    params(("feature" = String, Path, description = "`sessions`, `session_minutes`, `concurrent_sessions`, `profiles` or `live_keys`")),
    responses((status = 200, body = FeatureCheck),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn check_feature(
    State(state): State<AppState>,
    auth: Require<UsageRead>,
    Path(feature): Path<String>,
) -> Result<Json<FeatureCheck>, ApiError> {
    let p = auth.principal;
    let tier = state
        .tiers
        .get(&p.tier)
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", p.tier)))?;
    let r = crate::service::usage::report(&state, &p.account_id).await?;
    let reading = match feature.as_str() {
        "sessions" => r.sessions.clone(),
        "session_minutes" => r.session_minutes.clone(),
        "concurrent_sessions" => Reading {
            used: r.active_sessions as f64,
            limit: r.concurrency_limit.map(f64::from),
        },
        "profiles" => {
            let (profiles, _) = state
                .profiles
                .store
                .list(&p.account_id, None, 100_000)
                .await?;
            Reading {
                used: profiles.len() as f64,
                limit: tier.max_profiles.map(f64::from),
            }
        }
        "live_keys" => {
            return Ok(Json(FeatureCheck {
                is_valid: tier.live_keys,
                used: 0.0,
                limit: None,
                percent_used: None,
                failure_reason: (!tier.live_keys)
                    .then(|| "Your plan allows only ds_test_ keys.".to_owned()),
            }));
        }
        _ => return Err(ApiError::not_found("feature")),
    };
    let exhausted = reading.exhausted();
    Ok(Json(FeatureCheck {
        is_valid: !exhausted,
        used: reading.used,
        limit: reading.limit,
        percent_used: reading.percent(),
        failure_reason: exhausted.then(|| {
            format!(
                "The {feature} limit of your plan ({}) is reached for this period.",
                reading.limit.unwrap_or(0.0)
            )
        }),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DeprecatedCallsResponse {
    /// Calls of the last 90 days, one entry per credential, route and UTC day, newest first.
    pub data: Vec<crate::store::deprecated_calls::DeprecatedCalls>,
}

/// Which of the account's keys and users still call deprecated routes (docs/VERSIONING.md): one
/// entry per credential, route and day, for the last 90 days. Empty while nothing deprecated is
/// called.
///
/// Requires `usage:read`.
#[utoipa::path(get, path = "/v1/usage/deprecated", tag = "usage",
    responses((status = 200, body = DeprecatedCallsResponse)),
    security(("bearer" = [])))]
pub async fn deprecated_calls(
    State(state): State<AppState>,
    auth: Require<UsageRead>,
) -> Result<Json<DeprecatedCallsResponse>, ApiError> {
    let since = state.clock.now_ms() - 90 * 86_400_000;
    let data = state
        .deprecated_calls
        .of_account(auth.principal.account_id.as_str(), since)
        .await?;
    Ok(Json(DeprecatedCallsResponse { data }))
}
