//! Unversioned system routes: liveness, readiness, version, and Prometheus metrics.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::bearer_token,
    error::{ApiError, Problem},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(version))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` when the process answers.
    pub status: &'static str,
}

/// Liveness: answers while the process serves HTTP. No authentication.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` when every check passed.
    pub status: &'static str,
    /// `ok` when the database answered.
    pub database: &'static str,
    /// `ok` when this node holds the master key the database records (it can open the
    /// cluster's secrets); `unreadable` otherwise, with a 503.
    pub secrets: &'static str,
    /// The in-process runner, when this node hosts browsers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerReadiness>,
}

#[derive(Serialize, ToSchema)]
pub struct RunnerReadiness {
    /// Warm browsers ready for new sessions right now.
    pub ready_browsers: usize,
    /// Sessions live on this node.
    pub live_sessions: usize,
    /// `on` when every browser runs in the sandbox; `off` when the operator turned it off
    /// (`DRIFTSTACK_BROWSER_SANDBOX=off`, single-tenant development only).
    pub browser_sandbox: &'static str,
}

/// Readiness: the database answers and this node holds the master key it records (503
/// otherwise); reports the browser pool of this node. No authentication.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = ReadyResponse),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<ReadyResponse>, ApiError> {
    state.db.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "readiness check failed");
        ApiError::unavailable("The database is not answering.", 2)
    })?;
    let readable = crate::cluster_keys::secrets_readable(&state.db, &state.master_keys)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "readiness check failed");
            ApiError::unavailable("The database is not answering.", 2)
        })?;
    if !readable {
        return Err(ApiError::unavailable(
            "This node cannot open the cluster's secrets: the database records another master \
             key (see DRIFTSTACK_MASTER_KEY in docs/DEPLOYMENT.md).",
            30,
        ));
    }
    Ok(axum::Json(ReadyResponse {
        status: "ready",
        database: "ok",
        secrets: "ok",
        runner: state.runner.as_ref().map(|r| RunnerReadiness {
            ready_browsers: r.ready_browsers(),
            live_sessions: r.live_sessions(),
            browser_sandbox: if r.sandboxed() { "on" } else { "off" },
        }),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct VersionResponse {
    /// The release version.
    pub version: &'static str,
    /// The build (git commit) or `dev`.
    pub build: &'static str,
    /// The API major version.
    pub api: &'static str,
    /// The API's semantic version (`info.version` of the OpenAPI document; docs/VERSIONING.md).
    pub api_version: &'static str,
}

/// The version of this server. No authentication.
#[utoipa::path(get, path = "/v1/version", tag = "system",
    responses((status = 200, body = VersionResponse)))]
pub async fn version() -> axum::Json<VersionResponse> {
    axum::Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION"),
        build: option_env!("DRIFTSTACK_BUILD").unwrap_or("dev"),
        api: "v1",
        api_version: crate::openapi::API_VERSION,
    })
}

/// Prometheus metrics. Answers 404 unless `METRICS_TOKEN` is configured; then it needs
/// `Authorization: Bearer <METRICS_TOKEN>` (403 otherwise).
#[utoipa::path(get, path = "/metrics", tag = "system",
    security((), ("metrics_token" = [])),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (Some(expected), Some(handle)) = (&state.config.metrics_token, &state.metrics) else {
        return Err(ApiError::not_found("route"));
    };
    let given = bearer_token(&headers).unwrap_or("");
    let matches: bool = given.as_bytes().ct_eq(expected.expose().as_bytes()).into();
    if !matches {
        return Err(ApiError::forbidden(
            "forbidden",
            "The metrics token is missing or wrong.",
        ));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}
