//! The live view: `GET /v1/sessions/{id}/live` upgrades to a WebSocket that streams the session's
//! page as JPEG frames (one binary message each), for the dashboard and for anyone who wants to
//! watch a session. It is read-only: the server attaches its own DevTools connection to the page
//! and sends only `Page.startScreencast`, frame acks and `Page.stopScreencast`, so — unlike raw
//! CDP — watching leaves the browser reusable.
//!
//! Flow control: a frame is acknowledged to Chromium only after it was handed to the client, so
//! a slow viewer gets fewer frames instead of a growing queue. When the session ends the socket
//! is closed with code 1001 and the reason.

use axum::{
    extract::{
        Path, Query, State,
        ws::{
            CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
        },
    },
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use base64::Engine;
use common::ids::SessionId;
use futures::{SinkExt, StreamExt};
use runner::Watch;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as BrowserMessage;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, Problem},
    extract::parse_path_id,
    permissions::Scope,
    routes::socket::{self, SocketRequest},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// The signed token from the session's `connect_url` (browsers cannot send headers on a
    /// WebSocket).
    pub token: Option<String>,
    /// JPEG quality, 1–100 (default 60).
    #[param(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// Largest frame width in pixels, 100–3840 (default 1280).
    #[param(minimum = 100, maximum = 3840)]
    pub max_width: Option<u32>,
    /// Largest frame height in pixels, 100–2160 (default 800).
    #[param(minimum = 100, maximum = 2160)]
    pub max_height: Option<u32>,
}

/// A screencast of the session's page: each binary message is one JPEG frame, sent when the page
/// changes. Messages from the client are ignored (it is a view, not a remote control).
///
/// Requires `sessions:read` (or the `connect_url` token).
#[utoipa::path(get, path = "/v1/sessions/{id}/live", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), LiveParams),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The session has ended (`session_ended`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 426, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<LiveParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id: SessionId = parse_path_id(&id)?;
    let quality = params.quality.unwrap_or(60);
    if !(1..=100).contains(&quality) {
        return Err(ApiError::invalid("quality", "Must be 1–100."));
    }
    let max_width = params.max_width.unwrap_or(1280);
    if !(100..=3840).contains(&max_width) {
        return Err(ApiError::invalid("max_width", "Must be 100–3840."));
    }
    let max_height = params.max_height.unwrap_or(800);
    if !(100..=2160).contains(&max_height) {
        return Err(ApiError::invalid("max_height", "Must be 100–2160."));
    }
    let request = SocketRequest {
        id: &id,
        token: params.token.as_deref(),
        headers: &headers,
        scope: Scope::SessionsRead,
        client_hint: "Connect with a WebSocket client.",
    };
    let (upgrade, runner) = socket::open(&state, request, upgrade).await?;
    let watch = runner.watch(&id).map_err(socket::attach_error)?;
    let settings = json!({
        "format": "jpeg",
        "quality": quality,
        "maxWidth": max_width,
        "maxHeight": max_height,
        "everyNthFrame": 1,
    });
    Ok(upgrade
        .on_upgrade(move |socket| stream(socket, watch, settings))
        .into_response())
}

fn close(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Relays frames until the session ends, the client leaves or the browser goes away.
async fn stream(client: WebSocket, watch: Watch, settings: Value) {
    let (mut to_client, mut from_client) = client.split();
    let browser = match tokio_tungstenite::connect_async(watch.devtools_url()).await {
        Ok((stream, _)) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot reach the session's browser for the live view");
            let _ = to_client
                .send(close(1011, "browser unreachable".into()))
                .await;
            return;
        }
    };
    let (mut to_browser, mut from_browser) = browser.split();
    let attach = json!({
        "id": 1,
        "method": "Target.attachToTarget",
        "params": {"targetId": watch.target_id(), "flatten": true},
    });
    if to_browser
        .send(BrowserMessage::Text(attach.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let ended = watch.ended();
    tokio::pin!(ended);
    let mut page_session: Option<String> = None;
    let mut next_id = 2u64;
    loop {
        tokio::select! {
            reason = &mut ended => {
                let reason = format!("session ended: {}", reason.as_str());
                let _ = to_client.send(close(1001, reason)).await;
                break;
            }
            msg = from_client.next() => match msg {
                Some(Ok(Message::Ping(payload))) => {
                    let _ = to_client.send(Message::Pong(payload)).await;
                }
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            msg = from_browser.next() => {
                let text = match msg {
                    Some(Ok(BrowserMessage::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => {
                        let _ = to_client.send(close(1011, "browser connection lost".into())).await;
                        break;
                    }
                };
                let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if event["id"] == 1 {
                    let Some(sid) = event["result"]["sessionId"].as_str() else {
                        let _ = to_client.send(close(1011, "the page is gone".into())).await;
                        break;
                    };
                    page_session = Some(sid.to_owned());
                    let start = json!({
                        "id": next_id, "sessionId": sid,
                        "method": "Page.startScreencast", "params": settings,
                    });
                    next_id += 1;
                    if to_browser.send(BrowserMessage::Text(start.to_string().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                if event["method"] != "Page.screencastFrame" {
                    continue;
                }
                let Some(frame) = event["params"]["data"]
                    .as_str()
                    .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                else {
                    continue;
                };
                if to_client.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
                let ack = json!({
                    "id": next_id, "sessionId": page_session,
                    "method": "Page.screencastFrameAck",
                    "params": {"sessionId": event["params"]["sessionId"]},
                });
                next_id += 1;
                if to_browser.send(BrowserMessage::Text(ack.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(sid) = page_session {
        let stop = json!({"id": next_id, "sessionId": sid, "method": "Page.stopScreencast"});
        let _ = to_browser
            .send(BrowserMessage::Text(stop.to_string().into()))
            .await;
        let detach = json!({"id": next_id + 1, "method": "Target.detachFromTarget", "params": {"sessionId": sid}});
        let _ = to_browser
            .send(BrowserMessage::Text(detach.to_string().into()))
            .await;
    }
    let _ = to_browser.close().await;
}
