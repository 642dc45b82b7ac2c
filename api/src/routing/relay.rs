//! Relaying a request to the node that runs its session: REST commands (bounded answers, the
//! headers that matter passed both ways), WebSockets (CDP, live view) frame by frame, and new
//! sessions from a node without browsers to the least-loaded runner. An owner node that cannot be
//! reached answers 503 with `retry-after`: it is restarting, or it is dead and its sessions are
//! about to be failed.

use axum::{
    body::to_bytes,
    extract::{Request, ws::WebSocketUpgrade},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use super::FORWARDED;
use crate::{
    error::{ApiError, problem_for_status},
    state::AppState,
};

/// Headers of the client's request that travel with it.
const PASSED_ON: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::CONTENT_DISPOSITION,
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

/// A request's head taken apart for sending on: method, path with query, passed headers.
#[derive(Clone)]
struct Outgoing {
    method: Method,
    path: String,
    headers: HeaderMap,
}

impl Outgoing {
    fn of(parts: &Parts) -> Self {
        Outgoing {
            method: parts.method.clone(),
            path: path_and_query(parts),
            headers: passed_on(&parts.headers),
        }
    }
}

fn path_and_query(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let mut passed = HeaderMap::new();
    for name in PASSED_ON {
        if let Some(v) = headers.get(&name) {
            passed.insert(name, v.clone());
        }
    }
    passed
}

/// Sends a session command to the node at `address` and relays its answer.
/// The body is streamed as it arrives (an upload is never held whole); the owner applies its
/// own limits to it.
pub(crate) async fn forward(state: &AppState, address: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    send_to(state, address, Outgoing::of(&parts), body)
        .await
        .unwrap_or_else(unreachable_owner)
}

/// On a node without browsers (`DRIFTSTACK_EMBEDDED_RUNNER=false`): places a new session on the
/// least-loaded runner with room, trying the next when one is full.
pub(crate) async fn place_new_session(state: &AppState, req: Request) -> Response {
    // The client must be who it says before anything is sent anywhere.
    if let Err(e) = state.auth.authenticate(req.headers()).await {
        return e.into_response();
    }
    // Read whole (it is a small JSON body): it may be sent to more than one runner.
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, state.config.max_body_bytes).await else {
        return problem_for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    };
    let out = Outgoing::of(&parts);
    let mut last = None;
    for address in placement(state).await {
        match send_to(state, &address, out.clone(), body.clone().into()).await {
            // A full runner (or one that just started draining): try the next.
            Some(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => last = Some(r),
            Some(r) => return r,
            None => {}
        }
    }
    last.unwrap_or_else(|| {
        ApiError::unavailable("No runner has room for a new session right now.", 5).into_response()
    })
}

/// Answers a WebSocket upgrade by relaying the socket to the same route on the node at
/// `address`. The owner's handshake comes first: when it refuses (a bad token, a bad parameter,
/// an ended session), its answer is the client's answer, before any upgrade.
pub(crate) async fn relay_socket(
    state: &AppState,
    address: &str,
    parts: &Parts,
    upgrade: WebSocketUpgrade,
) -> Response {
    let owner = match connect_owner(state, address, &path_and_query(parts), &parts.headers).await {
        Ok(owner) => owner,
        Err(answer) => return answer,
    };
    upgrade
        .max_message_size(MAX_FORWARDED_BODY)
        .on_upgrade(move |socket| pump(socket, owner))
        .into_response()
}

/// Runners that can take a new session, least loaded first (ties in random order).
async fn placement(state: &AppState) -> Vec<String> {
    use rand::seq::SliceRandom;
    let Ok(mut all) = state.registry.placeable().await else {
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
    out: Outgoing,
    body: reqwest::Body,
) -> Option<Response> {
    let token = HeaderValue::from_str(state.config.cluster_token.as_ref()?.expose()).ok()?;
    let mut passed = out.headers;
    passed.insert(FORWARDED, token);
    let reply = match state
        .http
        .request(out.method, format!("{address}{}", out.path))
        .headers(passed)
        .body(body)
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

pub(crate) fn unreachable_owner() -> Response {
    ApiError::unavailable(
        "The node running this session cannot be reached right now; retry shortly (if it is \
         gone, the session will be marked failed).",
        2,
    )
    .into_response()
}

type OwnerSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the same WebSocket route on the owner node with the client's credential and the
/// cluster token. A refused handshake becomes the owner's status and problem; an unreachable
/// owner a 503.
async fn connect_owner(
    state: &AppState,
    address: &str,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<OwnerSocket, Response> {
    use tokio_tungstenite::tungstenite::{Error, client::IntoClientRequest};

    let url = format!("{}{path_and_query}", address.replacen("http", "ws", 1));
    let mut request = url.into_client_request().map_err(|_| unreachable_owner())?;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    if let Some(token) = state
        .config
        .cluster_token
        .as_ref()
        .and_then(|t| HeaderValue::from_str(t.expose()).ok())
    {
        request.headers_mut().insert(FORWARDED, token);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(stream),
        Err(Error::Http(refused)) => {
            let (head, body) = refused.into_parts();
            let mut answer = (head.status, body.unwrap_or_default()).into_response();
            if let Some(kind) = head.headers.get(header::CONTENT_TYPE) {
                answer
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, kind.clone());
            }
            Err(answer)
        }
        Err(err) => {
            tracing::warn!(%address, error = %err, "cannot reach the session's node for a WebSocket");
            Err(unreachable_owner())
        }
    }
}

/// Copies frames both ways between the client and the owner node until either side closes.
async fn pump(client: axum::extract::ws::WebSocket, owner: OwnerSocket) {
    use axum::extract::ws::{CloseFrame, Message};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{
        Message as Upstream,
        protocol::{CloseFrame as UpstreamClose, frame::coding::CloseCode},
    };

    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        }))
    };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_owner, mut from_owner) = owner.split();
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
