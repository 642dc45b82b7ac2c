//! Forwarding between nodes. Every node can answer every session's REST commands: when the
//! session is live on another node's runner (the handler answers 421 with the `runner_id`), the
//! request is sent on to that runner's node (its registered address) and its answer returned.
//!
//! Forwarding needs `DRIFTSTACK_CLUSTER_TOKEN` (the same on every node): the forwarded request
//! carries it in `x-driftstack-forwarded`, which the receiving node checks in constant time, so it
//! neither forwards again (no loops) nor counts or rate-limits the call a second time. The
//! client's own credential goes along and is checked again by the receiving node; its
//! `Idempotency-Key` does not (the first node already holds it). An owner node that cannot be
//! reached answers 503 with `retry-after`: it is restarting, or it is dead and its sessions are
//! about to be failed.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use common::ids::SessionId;
use subtle::ConstantTimeEq;

use crate::{
    error::{ApiError, problem_for_status},
    state::AppState,
};

pub const FORWARDED: HeaderName = HeaderName::from_static("x-driftstack-forwarded");

/// Headers of the client's request that travel with it.
const PASSED_ON: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("x-account-id"),
];

/// Headers of the owner's answer that travel back.
const PASSED_BACK: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
];

/// Whether the request was forwarded by another node of this cluster (a valid token).
pub fn is_forwarded(state: &AppState, headers: &HeaderMap) -> bool {
    match (state.config.cluster_token.as_ref(), headers.get(&FORWARDED)) {
        (Some(token), Some(given)) => bool::from(token.expose().as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

/// The runner-bound routes: creating a session, and its REST commands.
fn runner_bound(method: &Method, path: &str) -> Option<Option<SessionId>> {
    let rest = path.strip_prefix("/v1/sessions")?;
    if rest.is_empty() || rest == "/" {
        return (method == Method::POST).then_some(None);
    }
    let mut parts = rest.trim_start_matches('/').split('/');
    let id = parts.next()?.parse::<SessionId>().ok()?;
    match (method, parts.next(), parts.next()) {
        (&Method::DELETE, None, _) => Some(Some(id)),
        (&Method::POST, Some("navigate" | "actions" | "wait" | "capture"), None) => Some(Some(id)),
        _ => None,
    }
}

/// Runners that can take a new session, least loaded first (ties in random order).
async fn placement(state: &AppState) -> Vec<String> {
    use rand::seq::SliceRandom;
    let Ok(mut all) = runner::registry::RunnerRegistry::new(state.db.clone())
        .placeable()
        .await
    else {
        return Vec::new();
    };
    all.retain(|(r, live)| *live < r.capacity);
    all.shuffle(&mut rand::rng());
    all.sort_by(|(a, la), (b, lb)| {
        let load =
            |r: &runner::registry::RunnerRecord, live: i64| live as f64 / r.capacity.max(1) as f64;
        load(a, *la).total_cmp(&load(b, *lb))
    });
    all.into_iter().filter_map(|(r, _)| r.address).collect()
}

/// Sends a request to another node with the cluster token; `None` when it cannot be reached.
async fn send_to(
    state: &AppState,
    address: &str,
    method: Method,
    path: &str,
    mut passed: HeaderMap,
    bytes: axum::body::Bytes,
) -> Option<Response> {
    let token = HeaderValue::from_str(state.config.cluster_token.as_ref()?.expose()).ok()?;
    passed.insert(FORWARDED, token);
    let reply = match state
        .http
        .request(method, format!("{address}{path}"))
        .headers(passed)
        .body(bytes)
        .send()
        .await
    {
        Ok(reply) => reply,
        Err(err) => {
            tracing::warn!(%address, error = %err, "another node cannot be reached");
            return None;
        }
    };
    let status = reply.status();
    let mut headers = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(v) = reply.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    // Read up to a bound: a node that answers without end cannot grow this one.
    let mut reply = reply;
    let mut body = Vec::new();
    loop {
        match reply.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_FORWARDED_BODY => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => {
                tracing::warn!(%address, "another node's answer exceeded the forwarding bound");
                return None;
            }
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(%address, error = %err, "another node's answer broke off");
                return None;
            }
        }
    }
    let mut out = (status, body).into_response();
    out.headers_mut().extend(headers);
    Some(out)
}

/// The largest answer relayed from another node (a full-page capture fits).
const MAX_FORWARDED_BODY: usize = 256 << 20;

fn unreachable_owner() -> Response {
    ApiError::unavailable(
        "The node running this session cannot be reached right now; retry shortly (if it is \
         gone, the session will be marked failed).",
        2,
    )
    .into_response()
}

/// On a node without browsers (`DRIFTSTACK_EMBEDDED_RUNNER=false`): places new sessions on
/// the least-loaded runner and sends every session command to the runner that holds it.
async fn without_runner(
    state: &AppState,
    method: Method,
    path: String,
    passed: HeaderMap,
    bytes: axum::body::Bytes,
    target: Option<SessionId>,
) -> Response {
    match target {
        None => {
            let mut last = None;
            for address in placement(state).await {
                match send_to(
                    state,
                    &address,
                    method.clone(),
                    &path,
                    passed.clone(),
                    bytes.clone(),
                )
                .await
                {
                    // A full runner (or one that just started draining): try the next.
                    Some(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => last = Some(r),
                    Some(r) => return r,
                    None => {}
                }
            }
            last.unwrap_or_else(|| {
                ApiError::unavailable("No runner has room for a new session right now.", 5)
                    .into_response()
            })
        }
        Some(id) => {
            let session = match state.sessions.locate(&id).await {
                Ok(s) => s,
                // Unknown ids are answered by the handler (404), like on any node.
                Err(_) => return ApiError::not_found("session").into_response(),
            };
            let address = address_of(state, &session.runner_id).await;
            match address {
                Some(address) if session.status.is_live() => {
                    send_to(state, &address, method, &path, passed, bytes)
                        .await
                        .unwrap_or_else(unreachable_owner)
                }
                _ => ApiError::conflict("session_ended", "The session has ended.").into_response(),
            }
        }
    }
}

pub async fn forward_misdirected(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let eligible = state.config.cluster_token.is_some()
        && req.uri().path().starts_with("/v1/sessions")
        && !req.headers().contains_key(&FORWARDED);
    if !eligible {
        return next.run(req).await;
    }
    let bound = if state.runner.is_none() {
        runner_bound(req.method(), req.uri().path())
    } else {
        None
    };
    if bound.is_none() && !req.uri().path().starts_with("/v1/sessions/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut passed = HeaderMap::new();
    for name in PASSED_ON {
        if let Some(v) = req.headers().get(&name) {
            passed.insert(name, v.clone());
        }
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return problem_for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    };
    if let Some(target) = bound {
        // The client must be who it says before anything is sent anywhere.
        if let Err(e) = state.auth.authenticate(&parts.headers).await {
            return e.into_response();
        }
        return without_runner(&state, method, path, passed, bytes, target).await;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.status() != StatusCode::MISDIRECTED_REQUEST {
        return response;
    }
    // The handler names the runner in the problem.
    let (head, answer) = response.into_parts();
    let Ok(answer) = to_bytes(answer, 64 * 1024).await else {
        return problem_for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    let runner = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|p| p["runner_id"].as_str().and_then(|r| r.parse().ok()));
    let address = match runner {
        Some(id) => address_of(&state, &id).await,
        None => None,
    };
    let Some(address) = address else {
        return Response::from_parts(head, Body::from(answer));
    };
    send_to(&state, &address, method, &path, passed, bytes)
        .await
        .unwrap_or_else(unreachable_owner)
}

/// Where a session that this node does not run lives: the address of the active runner holding
/// it, when forwarding is on (a cluster token) and the request was not forwarded already.
pub async fn owner_of(
    state: &AppState,
    headers: &HeaderMap,
    id: &common::ids::SessionId,
) -> Option<String> {
    state.config.cluster_token.as_ref()?;
    if headers.contains_key(&FORWARDED) {
        return None;
    }
    let session = state.sessions.locate(id).await.ok()?;
    if !session.status.is_live() {
        return None;
    }
    if let Some(runner) = &state.runner
        && runner.id() == &session.runner_id
    {
        return None;
    }
    address_of(state, &session.runner_id).await
}

/// Where an active runner is reached; `None` for unknown, dead, draining or embedded-only ones.
async fn address_of(state: &AppState, runner: &common::ids::RunnerId) -> Option<String> {
    runner::registry::RunnerRegistry::new(state.db.clone())
        .get(runner)
        .await
        .ok()
        .filter(|r| r.state == runner::registry::RunnerState::Active)
        .and_then(|r| r.address)
}

/// For the WebSocket routes (CDP, live view): when another node runs session `id`, answers the
/// upgrade by relaying the socket to the same route there; otherwise gives the upgrade back.
pub async fn relay_if_elsewhere(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    id: &SessionId,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, axum::extract::ws::WebSocketUpgrade> {
    let Some(address) = owner_of(state, headers, id).await else {
        return Err(upgrade);
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (state, headers) = (state.clone(), headers.clone());
    Ok(upgrade
        .max_message_size(256 << 20)
        .on_upgrade(move |socket| async move {
            relay_websocket(&state, &address, &path, &headers, socket).await;
        })
        .into_response())
}

/// Relays a client's WebSocket to the same route on the node at `address` (CDP and the live
/// view of a session that node runs), passing the client's credential and the cluster token.
async fn relay_websocket(
    state: &AppState,
    address: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    client: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::{CloseFrame, Message};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{
        Message as Upstream,
        client::IntoClientRequest,
        protocol::{CloseFrame as UpstreamClose, frame::coding::CloseCode},
    };

    let url = format!("{}{path_and_query}", address.replacen("http", "ws", 1));
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        }))
    };
    let (mut to_client, mut from_client) = client.split();
    let request = url.into_client_request().map(|mut r| {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            r.headers_mut().insert(header::AUTHORIZATION, auth.clone());
        }
        if let Some(token) = state
            .config
            .cluster_token
            .as_ref()
            .and_then(|t| HeaderValue::from_str(t.expose()).ok())
        {
            r.headers_mut().insert(FORWARDED, token);
        }
        r
    });
    let upstream = match request {
        Ok(request) => tokio_tungstenite::connect_async(request).await,
        Err(err) => Err(err),
    };
    let (mut to_owner, mut from_owner) = match upstream {
        Ok((stream, _)) => stream.split(),
        Err(err) => {
            tracing::warn!(%address, error = %err, "cannot reach the session's node for a WebSocket");
            let _ = to_client
                .send(close(1011, "the session's node is unreachable"))
                .await;
            return;
        }
    };
    loop {
        tokio::select! {
            msg = from_client.next() => {
                let out = match msg {
                    Some(Ok(Message::Text(t))) => Upstream::Text(t.as_str().into()),
                    Some(Ok(Message::Binary(b))) => Upstream::Binary(b),
                    Some(Ok(Message::Ping(p))) => Upstream::Ping(p),
                    Some(Ok(Message::Pong(p))) => Upstream::Pong(p),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        let _ = to_owner.close().await;
                        break;
                    }
                };
                if to_owner.send(out).await.is_err() {
                    let _ = to_client.send(close(1011, "the session's node went away")).await;
                    break;
                }
            }
            msg = from_owner.next() => {
                let out = match msg {
                    Some(Ok(Upstream::Text(t))) => Message::Text(t.as_str().into()),
                    Some(Ok(Upstream::Binary(b))) => Message::Binary(b),
                    Some(Ok(Upstream::Ping(p))) => Message::Ping(p),
                    Some(Ok(Upstream::Pong(p))) => Message::Pong(p),
                    Some(Ok(Upstream::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f: UpstreamClose| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((u16::from(CloseCode::Normal), String::new()));
                        let _ = to_client.send(close(code, &reason)).await;
                        break;
                    }
                    Some(Ok(Upstream::Frame(_))) => continue,
                    Some(Err(_)) | None => {
                        let _ = to_client.send(close(1011, "the session's node went away")).await;
                        break;
                    }
                };
                if to_client.send(out).await.is_err() {
                    let _ = to_owner.close().await;
                    break;
                }
            }
        }
    }
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
