//! Where a session request is answered. Every node answers every session's commands: the
//! [`route_to_owner`] layer asks [`locate`] once, before any session handler runs, and either lets
//! the request through (the session is live here), answers it (unknown: 404; ended: 409), sends it
//! on to the node that runs the session ([`relay`]), or says why it cannot: 421 when
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
    body::Body,
    extract::{FromRequestParts, MatchedPath, Request, State, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderName, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use common::ids::{AccountId, RunnerId, SessionId};
use subtle::ConstantTimeEq;

use crate::{auth::Principal, error::ApiError, permissions::Scope, state::AppState};

pub const FORWARDED: HeaderName = HeaderName::from_static("x-driftstack-forwarded");

/// A route answered by the node whose runner holds the session.
pub struct BrowserRoute {
    pub method: Method,
    /// The router's path pattern.
    pub path: &'static str,
    /// For WebSocket routes: the scope a credential needs when no `connect_url` token is given
    /// (the token or the credential is checked before the session is located).
    pub socket_scope: Option<Scope>,
}

const fn rest(method: Method, path: &'static str) -> BrowserRoute {
    BrowserRoute {
        method,
        path,
        socket_scope: None,
    }
}

/// The routes answered by the node whose runner holds the session. A session's other routes
/// (reading it, listing) are answered by any node from the database.
pub static AT_THE_BROWSER: [BrowserRoute; 14] = [
    rest(Method::DELETE, "/v1/sessions/{id}"),
    rest(Method::PATCH, "/v1/sessions/{id}"),
    rest(Method::POST, "/v1/sessions/{id}/navigate"),
    rest(Method::POST, "/v1/sessions/{id}/actions"),
    rest(Method::POST, "/v1/sessions/{id}/wait"),
    rest(Method::POST, "/v1/sessions/{id}/capture"),
    rest(Method::POST, "/v1/sessions/{id}/uploads"),
    rest(Method::POST, "/v1/sessions/{id}/handoff"),
    rest(Method::POST, "/v1/sessions/{id}/handoff/complete"),
    rest(Method::GET, "/v1/sessions/{id}/tabs"),
    rest(Method::POST, "/v1/sessions/{id}/tabs/{tab_id}/select"),
    rest(Method::DELETE, "/v1/sessions/{id}/tabs/{tab_id}"),
    BrowserRoute {
        method: Method::GET,
        path: "/v1/sessions/{id}/cdp",
        socket_scope: Some(Scope::SessionsWrite),
    },
    BrowserRoute {
        method: Method::GET,
        path: "/v1/sessions/{id}/live",
        socket_scope: Some(Scope::SessionsRead),
    },
];

/// Creating a session (`POST`): placed on a runner with room when this node runs no browsers.
const CREATE: &str = "/v1/sessions";

/// Where a session's commands are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Here: the session runs on this node's runner.
    Here,
    /// No such session of this account (another account's reads the same): 404.
    Unknown,
    /// The session has ended: 409 `session_ended`, on whichever node is asked.
    Ended,
    /// On the node at this address (its runner is active and forwarding is on).
    Owner(String),
    /// On another runner, and forwarding is off (no cluster token): the client is told which.
    NotForwarded(RunnerId),
    /// On a runner that is draining, restarting or dead (its sessions are about to be failed).
    OwnerDown,
}

/// The one answer to "where does session `id` of `account` live?". Reads the session's runner
/// from the database, and that runner's address when it is not this node's. Another account's
/// session is [`Placement::Unknown`], exactly as an id that does not exist.
pub async fn locate(state: &AppState, account: &AccountId, id: &SessionId) -> Placement {
    // The common case, a session of this node, is answered from memory.
    if state.runner.as_ref().is_some_and(|r| r.hosts(account, id)) {
        return Placement::Here;
    }
    let Ok(session) = state.sessions.get(account, id).await else {
        return Placement::Unknown;
    };
    if !session.status.is_live() {
        return Placement::Ended;
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
/// answers 421/503. The caller is authenticated first (and handed on to the handler), so that
/// nothing is sent anywhere for a stranger and another account's session reads as unknown. A
/// forwarded request is always answered here (no loops).
pub async fn route_to_owner(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(matched) = req.extensions().get::<MatchedPath>().map(|m| m.as_str()) else {
        return next.run(req).await;
    };
    let route = AT_THE_BROWSER
        .iter()
        .find(|r| r.method == req.method() && r.path == matched);
    let creating = state.runner.is_none() && req.method() == Method::POST && matched == CREATE;
    if (route.is_none() && !creating) || is_forwarded(&state, req.headers()) {
        return next.run(req).await;
    }
    if creating {
        return match state.config.cluster_token {
            Some(_) => relay::place_new_session(&state, req).await,
            None => next.run(req).await,
        };
    }
    let (Some(route), Some(id)) = (route, session_in_path(req.uri().path())) else {
        return next.run(req).await;
    };
    let account = match caller(&state, &mut req, route, &id).await {
        Ok(account) => account,
        Err(refused) => return refused.into_response(),
    };
    match locate(&state, &account, &id).await {
        Placement::Here => next.run(req).await,
        Placement::Unknown => ApiError::not_found("session").into_response(),
        Placement::Ended => {
            ApiError::conflict("session_ended", "The session has ended.").into_response()
        }
        Placement::Owner(address) if route.socket_scope.is_some() => {
            let (mut parts, _) = req.into_parts();
            match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
                Ok(upgrade) => relay::relay_socket(&state, &address, &parts, upgrade).await,
                // Not a WebSocket: the handler's answer (426) is the same on every node.
                Err(_) => next.run(Request::from_parts(parts, Body::empty())).await,
            }
        }
        Placement::Owner(address) => relay::forward(&state, &address, req).await,
        Placement::NotForwarded(runner) => misdirected(&runner),
        Placement::OwnerDown => relay::unreachable_owner(),
    }
}

/// The account acting on session `id`: a REST route's credential (kept for the handler), or
/// for a WebSocket route the `connect_url` token or a credential with the route's scope.
async fn caller(
    state: &AppState,
    req: &mut Request,
    route: &BrowserRoute,
    id: &SessionId,
) -> Result<AccountId, ApiError> {
    if let Some(scope) = route.socket_scope {
        let token = token_in_query(req.uri().query());
        if token.is_some() {
            crate::service::connect::authorize(state, id, token.as_deref(), req.headers(), scope)
                .await?;
            // A valid token names this session: its own account is the one to look in.
            return state
                .sessions
                .locate(id)
                .await
                .map(|s| s.account_id)
                .map_err(|_| ApiError::not_found("session"));
        }
    }
    let principal = match req.extensions().get::<Principal>() {
        Some(p) => p.clone(),
        None => state.auth.authenticate(req.headers()).await?,
    };
    if let Some(scope) = route.socket_scope
        && !principal.scopes.contains(scope)
    {
        return Err(crate::extract::credentials::missing(scope));
    }
    let account = principal.account_id.clone();
    req.extensions_mut().insert(principal);
    Ok(account)
}

/// The `token` parameter of a query string, decoded.
fn token_in_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
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
