//! Where a session request is answered. Every node answers every session's commands: the
//! [`route_to_owner`] layer asks [`locate`] once, before any session handler runs, and either lets
//! the request through (the session is here, has ended, or does not exist — the handler answers),
//! sends it on to the node that runs the session ([`relay`]), or says why it cannot: 421 when
//! forwarding is off, 503 with `retry-after` when the owner is down.
//!
//! Which routes need the session's own node is declared once, in [`AT_THE_BROWSER`], by the
//! router's matched path: nothing here parses URLs the router already knows, and no handler runs
//! only to find out that the request should have gone elsewhere.
//!
//! Forwarding needs `DRIFTSTACK_CLUSTER_TOKEN` (the same on every node): the forwarded request
//! carries it in `x-driftstack-forwarded`, which the receiving node checks in constant time, so it
//! neither forwards again (no loops) nor counts or rate-limits the call a second time. The
//! client's own credential goes along and is checked again by the receiving node; its
//! `Idempotency-Key` does not (the first node already holds it).

pub mod relay;

use axum::{
    extract::{FromRequestParts, MatchedPath, Request, State, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderName, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use common::ids::{RunnerId, SessionId};
use subtle::ConstantTimeEq;

use crate::{error::ApiError, state::AppState};

pub const FORWARDED: HeaderName = HeaderName::from_static("x-driftstack-forwarded");

/// The routes answered by the node whose runner holds the session (method, matched path). A
/// session's other routes (reading it, listing) are answered by any node from the database.
pub const AT_THE_BROWSER: [(Method, &str); 7] = [
    (Method::DELETE, "/v1/sessions/{id}"),
    (Method::POST, "/v1/sessions/{id}/navigate"),
    (Method::POST, "/v1/sessions/{id}/actions"),
    (Method::POST, "/v1/sessions/{id}/wait"),
    (Method::POST, "/v1/sessions/{id}/capture"),
    (Method::GET, "/v1/sessions/{id}/cdp"),
    (Method::GET, "/v1/sessions/{id}/live"),
];

/// Creating a session: placed on a runner with room when this node runs no browsers.
const CREATE: (Method, &str) = (Method::POST, "/v1/sessions");

/// Where a session's commands are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Here: the session runs on this node's runner, has ended, or is unknown (the handler
    /// answers 404 or 409 like on any node).
    Here,
    /// On the node at this address (its runner is active and forwarding is on).
    Owner(String),
    /// On another runner, and forwarding is off (no cluster token): the client is told which.
    NotForwarded(RunnerId),
    /// On a runner that is draining, restarting or dead (its sessions are about to be failed).
    OwnerDown,
}

/// The one answer to "where does session `id` live?". Reads the session's runner from the
/// database, and that runner's address when it is not this node's.
pub async fn locate(state: &AppState, id: &SessionId) -> Placement {
    let Ok(session) = state.sessions.locate(id).await else {
        return Placement::Here;
    };
    if !session.status.is_live() {
        return Placement::Here;
    }
    if let Some(runner) = &state.runner
        && runner.id() == &session.runner_id
    {
        return Placement::Here;
    }
    if state.config.cluster_token.is_none() {
        return Placement::NotForwarded(session.runner_id);
    }
    match address_of(state, &session.runner_id).await {
        Some(address) => Placement::Owner(address),
        None => Placement::OwnerDown,
    }
}

/// Where an active runner is reached; `None` for unknown, dead, draining or embedded-only ones.
pub(crate) async fn address_of(state: &AppState, runner: &RunnerId) -> Option<String> {
    state
        .registry
        .get(runner)
        .await
        .ok()
        .filter(|r| r.state == runner::registry::RunnerState::Active)
        .and_then(|r| r.address)
}

/// Whether the request was forwarded by another node of this cluster (a valid token).
pub fn is_forwarded(state: &AppState, headers: &HeaderMap) -> bool {
    match (state.config.cluster_token.as_ref(), headers.get(&FORWARDED)) {
        (Some(token), Some(given)) => bool::from(token.expose().as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

/// The layer in front of the session routes: answers here, relays to the session's node, or
/// answers 421/503. A forwarded request is always answered here (no loops).
pub async fn route_to_owner(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(matched) = req.extensions().get::<MatchedPath>().map(|m| m.as_str()) else {
        return next.run(req).await;
    };
    let route = (req.method(), matched);
    let at_browser = AT_THE_BROWSER.iter().any(|(m, p)| (m, *p) == route);
    let creating = state.runner.is_none() && (&CREATE.0, CREATE.1) == route;
    if !(at_browser || creating) || is_forwarded(&state, req.headers()) {
        return next.run(req).await;
    }
    if creating {
        return match state.config.cluster_token {
            Some(_) => relay::place_new_session(&state, req).await,
            None => next.run(req).await,
        };
    }
    let Some(id) = session_in_path(req.uri().path()) else {
        return next.run(req).await;
    };
    match locate(&state, &id).await {
        Placement::Here => next.run(req).await,
        Placement::Owner(address) => {
            // The caller must be who it says before anything is sent anywhere; a connect token
            // (CDP, live view) is checked by the owner itself.
            let is_socket = req.headers().contains_key(axum::http::header::UPGRADE);
            if !is_socket && let Err(e) = state.auth.authenticate(req.headers()).await {
                return e.into_response();
            }
            if is_socket {
                let (mut parts, _) = req.into_parts();
                return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
                    Ok(upgrade) => relay::relay_socket(&state, &address, &parts, upgrade).await,
                    Err(rejection) => rejection.into_response(),
                };
            }
            relay::forward(&state, &address, req).await
        }
        Placement::NotForwarded(runner) => misdirected(&runner),
        Placement::OwnerDown => relay::unreachable_owner(),
    }
}

/// The session id of a matched `/v1/sessions/{id}/…` route; `None` when it is not an id (the
/// handler answers 422).
fn session_in_path(path: &str) -> Option<SessionId> {
    path.strip_prefix("/v1/sessions/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// 421: the session runs on a runner whose node this one cannot reach.
fn misdirected(runner: &RunnerId) -> Response {
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "session_on_another_node",
        format!(
            "This session runs on runner {runner}, which this node does not reach: send its \
             commands to the node that created it, or set DRIFTSTACK_CLUSTER_TOKEN on every \
             node so that they forward them."
        ),
    )
    .with("runner_id", serde_json::json!(runner))
    .into_response()
}

/// On a runner node (`driftstack runner`): its API is only for the cluster's API nodes. Anything
/// under `/v1` without the cluster token is refused; health checks stay open.
pub async fn runner_only_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.config.runner_only || is_forwarded(&state, req.headers()) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    ApiError::forbidden(
        "runner_node",
        "This is a runner node: its API is for the cluster's API nodes only.",
    )
    .into_response()
}
