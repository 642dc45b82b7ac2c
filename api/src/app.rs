//! The router: every resource's routes with their OpenAPI description, `/openapi.json`, the
//! Scalar reference at `/docs/`, the dashboard, and the layers every request passes, outermost
//! first (the MCP server at `/mcp`, in front, drives the rest in process): request context, problem fallback, the runner-node gate, timeout, body limit,
//! `Referrer-Policy`, rate limits, idempotency, and the routing of session commands to their node.

use axum::{Router, extract::DefaultBodyLimit, http::StatusCode, middleware::from_fn};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{dashboard, error::problem_for_status, middleware, openapi, routes, state::AppState};

/// The routes with their OpenAPI description, before state and layers are applied.
pub fn router_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::system::router())
        .merge(routes::auth::router())
        .merge(routes::account::router())
        .merge(routes::keys::router())
        .merge(routes::sessions::router())
        .merge(routes::profiles::router())
        .merge(routes::cdp::router())
        .merge(routes::live::router())
        .merge(routes::live_links::router())
        .merge(routes::webhooks::router())
        .merge(routes::team::router())
        .merge(routes::audit::router())
        .merge(routes::usage::router())
        .merge(routes::billing::router())
        .split_for_parts();
    let mut api = api;
    openapi::add_common_problems(&mut api);
    api.info.version = crate::openapi::API_VERSION.to_owned();
    crate::deprecation::mark(&mut api, crate::deprecation::DEPRECATED);
    crate::deprecation::mark_fields(&mut api, crate::deprecation::DEPRECATED_FIELDS);
    (routes, api)
}

/// The OpenAPI document as pretty JSON, exactly as committed in `openapi.json`.
pub fn openapi_json() -> String {
    let (_, api) = router_parts();
    let mut json = api.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

/// The complete application: routes, `/openapi.json`, `/docs/`, and every layer.
pub fn app(state: AppState) -> Router {
    let (routes, _) = router_parts();
    let spec = openapi_json();
    let timeout = state.config.request_timeout;
    let body_limit = state.config.max_body_bytes;
    let app = routes
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    spec,
                )
            }),
        )
        .merge(routes::docs::router())
        .merge(dashboard::router())
        .merge(routes::live_page::router())
        .fallback(|| async { problem_for_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async {
            problem_for_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::routing::route_to_owner,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::deprecation,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limits,
        ))
        // Links carry tokens in their query: never leak them through `Referer`.
        .layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.headers_mut().insert(
                    axum::http::header::REFERRER_POLICY,
                    axum::http::HeaderValue::from_static("no-referrer"),
                );
                r
            },
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::routing::runner_only_gate,
        ))
        .layer(from_fn(middleware::problem_fallback))
        .layer(from_fn(middleware::request_context))
        .with_state(state.clone());
    crate::mcp::mount(state, app)
}
