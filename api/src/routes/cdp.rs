//! Raw CDP for Playwright and Puppeteer: `GET /v1/sessions/{id}/cdp` upgrades to a WebSocket that
//! is relayed to the session's own browser, through the filter in `runner::cdp` (a session another
//! node runs is relayed there first, by `routing`).
//!
//! The credential is checked before the upgrade: the signed `token` of the session's
//! `connect_url`, or an API key with `sessions:write` of the session's account. Closing the socket
//! does not end the session; when the session ends (DELETE, a timeout, `Browser.close`), the
//! socket is closed with code 1001 and the reason.

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
use common::ids::SessionId;
use futures::{SinkExt, StreamExt};
use runner::{
    CdpAttachment, EndReason,
    cdp::{Verdict, empty_reply, error_reply},
};
use serde::Deserialize;
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
    OpenApiRouter::new().routes(routes!(cdp))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CdpParams {
    /// The signed token from the session's `connect_url`.
    pub token: Option<String>,
}

/// Raw Chrome DevTools Protocol over a WebSocket, for `chromium.connectOverCDP(connect_url)` and
/// `puppeteer.connect({browserWSEndpoint: connect_url})`. The session's browser is never reused
/// after a CDP connection. Commands that would reach beyond the session are refused (see
/// docs/SECURITY.md); `Browser.close` ends the session.
///
/// Requires `sessions:write` (or the `connect_url` token).
#[utoipa::path(get, path = "/v1/sessions/{id}/cdp", tag = "sessions",
    params(("id" = String, Path, description = "`ses_…`"), CdpParams),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 426, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn cdp(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<CdpParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let id: SessionId = parse_path_id(&id)?;
    let request = SocketRequest {
        id: &id,
        token: params.token.as_deref(),
        headers: &headers,
        scope: Scope::SessionsWrite,
        client_hint: "Connect with a WebSocket client (Playwright, Puppeteer or any CDP client).",
    };
    let (upgrade, runner, _) = socket::open(&state, request, upgrade).await?;
    let attachment = runner.attach_cdp(&id).map_err(socket::attach_error)?;
    Ok(upgrade
        .max_message_size(runner::cdp::MAX_MESSAGE_BYTES)
        .max_frame_size(runner::cdp::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| relay(socket, attachment, runner))
        .into_response())
}

async fn relay(
    client: WebSocket,
    attachment: CdpAttachment,
    runner: std::sync::Arc<runner::Runner>,
) {
    let (mut to_client, mut from_client) = client.split();
    let browser = match tokio_tungstenite::connect_async(attachment.devtools_url()).await {
        Ok((stream, _)) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot reach the session's browser for CDP");
            let _ = to_client
                .send(Message::Close(Some(CloseFrame {
                    code: 1011,
                    reason: "browser unreachable".into(),
                })))
                .await;
            return;
        }
    };
    let (mut to_browser, mut from_browser) = browser.split();
    let mut filter = attachment.filter();
    let mut log = attachment.command_log();
    let ended = attachment.ended();
    tokio::pin!(ended);
    loop {
        tokio::select! {
            reason = &mut ended => {
                let reason = format!("session ended: {}", reason.as_str());
                let _ = to_client
                    .send(Message::Close(Some(CloseFrame { code: 1001, reason: reason.into() })))
                    .await;
                break;
            }
            msg = from_client.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    attachment.touch();
                    let verdict = filter.judge(text.as_str());
                    let (id, method) = filter.last_command();
                    if !matches!(verdict, Verdict::Refuse(_)) {
                        log.sent(id, method, text.len());
                    }
                    match verdict {
                        Verdict::Forward => {
                            if to_browser.send(BrowserMessage::Text(text.as_str().into())).await.is_err() {
                                break;
                            }
                        }
                        Verdict::Rewrite(rewritten) => {
                            if to_browser.send(BrowserMessage::Text(rewritten.into())).await.is_err() {
                                break;
                            }
                        }
                        Verdict::Refuse(reason) => {
                            metrics::counter!("driftstack_cdp_refused_total").increment(1);
                            tracing::info!(session.id = %attachment.session_id(), %reason, "CDP command refused");
                            let reply = error_reply(text.as_str(), &reason);
                            log.refused(method, text.len(), reply.len(), &reason);
                            if to_client.send(Message::Text(reply.into())).await.is_err() {
                                break;
                            }
                        }
                        Verdict::EndSession => {
                            let _ = to_client.send(Message::Text(empty_reply(text.as_str()).into())).await;
                            runner.end(attachment.session_id(), EndReason::Released).await;
                        }
                    }
                }
                Some(Ok(Message::Ping(payload))) => {
                    let _ = to_client.send(Message::Pong(payload)).await;
                }
                Some(Ok(Message::Binary(_) | Message::Pong(_))) => {}
                // The client went away; the session lives on until DELETE or a timeout.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            msg = from_browser.next() => match msg {
                Some(Ok(BrowserMessage::Text(text))) => {
                    filter.observe_reply(text.as_str());
                    log.received(text.as_str());
                    if to_client.send(Message::Text(text.as_str().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = to_client
                        .send(Message::Close(Some(CloseFrame { code: 1011, reason: "browser connection lost".into() })))
                        .await;
                    break;
                }
            },
        }
    }
    let _ = to_browser.close().await;
}
