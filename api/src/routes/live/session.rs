//! One viewer's live socket: relays frames of the tab it watches, applies its messages (control,
//! input, tab switches, *Done*), and tells it what changed (controller, tabs, viewport, handoff).

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use common::ids::{AccountId, SessionId};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use runner::{
    Runner, Watch,
    control::Controller,
    handoff::{HandoffError, HandoffPhase, HandoffStatus},
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as BrowserMessage;

use super::{
    browser::{Browser, Outgoing, on_browser},
    input::{self, ClientMessage, ControlAction},
    tabs::Tabs,
};
use crate::{audit::Entry, service::connect::Access, state::AppState, store::live_links::Gone};

/// How often a viewer that came through a live link checks that the link still stands.
const LINK_CHECK: Duration = Duration::from_secs(2);
/// A viewer that does not take a message within this is dropped (it would stall its loop).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Control changes a viewer may make per [`CONTROL_WINDOW`] (each is audited).
const CONTROL_CHANGES: u32 = 10;
const CONTROL_WINDOW: Duration = Duration::from_secs(10);

/// Who is watching, and what it may do.
pub struct Viewer {
    /// Counts this viewer against the session's limit while it is connected.
    pub _slot: runner::ViewerSlot,
    pub id: u64,
    pub access: Access,
    pub account: AccountId,
    pub session: SessionId,
    pub watch: Watch,
    pub runner: Arc<Runner>,
    pub state: AppState,
    /// Control changes in the current window: (window start, count).
    pub control_budget: std::sync::Mutex<(std::time::Instant, u32)>,
}

fn close(code: u16, reason: impl Into<String>) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into().into(),
    }))
}

fn text(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

fn error(code: &str, detail: impl Into<String>) -> Message {
    text(&json!({"type": "error", "code": code, "detail": detail.into()}))
}

impl Viewer {
    fn me(&self) -> Controller {
        Controller {
            viewer: self.id,
            label: self.access.label(),
        }
    }

    async fn audit(&self, action: &'static str, data: Value) {
        let entry = match &self.access {
            Access::Credential(p) => Entry::by(p, action, Some(self.session.to_string()), data),
            other => Entry {
                account_id: Some(self.account.clone()),
                actor: other.label(),
                action,
                target: Some(self.session.to_string()),
                ip: None,
                user_agent: None,
                data,
            },
        };
        self.state.record(entry).await;
    }

    fn control_message(&self, holder: &Option<Controller>) -> Value {
        let controller = holder
            .as_ref()
            .map(|c| json!({"label": c.label, "you": c.viewer == self.id}));
        json!({"type": "control", "controller": controller})
    }

    /// Whether another control change fits this viewer's budget.
    fn spend_control(&self) -> bool {
        let Ok(mut b) = self.control_budget.lock() else {
            return false;
        };
        if b.0.elapsed() >= CONTROL_WINDOW {
            *b = (std::time::Instant::now(), 0);
        }
        b.1 += 1;
        b.1 <= CONTROL_CHANGES
    }

    /// Applies a control action; answers an error for the client, if any.
    async fn control(&self, action: ControlAction) -> Option<Message> {
        if !self.spend_control() {
            return Some(error(
                "too_many_changes",
                format!("At most {CONTROL_CHANGES} control changes per 10 seconds."),
            ));
        }
        let control = self.watch.control();
        match action {
            ControlAction::Request => {
                if !self.access.may_interact() {
                    return Some(error(
                        "view_only",
                        "This view is read-only: it cannot take control.",
                    ));
                }
                match control.request(&self.me()) {
                    Ok(()) => {
                        self.audit("session.live.control_acquired", json!({})).await;
                        None
                    }
                    Err(holder) => Some(error(
                        "control_held",
                        format!(
                            "{} controls the session; it must release control first (a credential \
                             with sessions:write can take over).",
                            holder.label
                        ),
                    )),
                }
            }
            ControlAction::TakeOver => {
                if !self.access.may_take_over() {
                    return Some(error(
                        "take_over_forbidden",
                        "Taking control over needs a credential with sessions:write.",
                    ));
                }
                let previous = control.take_over(&self.me());
                let from = previous.map(|p| p.label);
                self.audit("session.live.control_taken_over", json!({"from": from}))
                    .await;
                None
            }
            ControlAction::Release => {
                if control.release(self.id) {
                    self.audit("session.live.control_released", json!({})).await;
                }
                None
            }
        }
    }

    /// Completes the session's handoff for the person.
    async fn done(&self, handoff: &HandoffStatus) -> Option<Message> {
        let allowed = match &self.access {
            Access::Viewer { link, interact } => {
                *interact && handoff.link.as_ref().is_some_and(|l| l.as_str() == link)
            }
            other => other.may_take_over(),
        };
        if !allowed {
            return Some(error(
                "done_forbidden",
                "Only the person the session was handed to (or a credential with sessions:write) \
                 can complete the handoff.",
            ));
        }
        match self
            .runner
            .complete_handoff(&self.account, &self.session, &self.access.label())
            .await
        {
            Ok(id) => {
                self.audit("session.handoff.completed", json!({"handoff_id": id}))
                    .await;
                None
            }
            Err(HandoffError::NotPending) => {
                Some(error("no_handoff", "No handoff is waiting for a person."))
            }
            Err(err) => {
                tracing::warn!(error = %err, "a handoff could not be completed");
                Some(error(
                    "internal",
                    "The handoff could not be completed; try again.",
                ))
            }
        }
    }
}

type ClientSink = SplitSink<WebSocket, Message>;

/// Hands `message` to the client within [`SEND_TIMEOUT`]; `false` when it is gone or stalled.
async fn deliver(to_client: &mut ClientSink, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, to_client.send(message)).await,
        Ok(Ok(()))
    )
}

fn handoff_message(h: &HandoffStatus) -> Value {
    json!({
        "type": "handoff",
        "state": h.phase.as_str(),
        "id": h.id,
        "expires_at": (h.phase == HandoffPhase::Requested).then(|| common::clock::rfc3339(h.deadline)),
    })
}

/// Relays frames and messages until the session ends, the client leaves, the link closes or the
/// browser goes away.
pub async fn run(client: WebSocket, viewer: Viewer, settings: Value) {
    let (mut to_client, mut from_client) = client.split();
    let connection = match tokio_tungstenite::connect_async(viewer.watch.devtools_url()).await {
        Ok((stream, _)) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot reach the session's browser for the live view");
            let _ = deliver(&mut to_client, close(1011, "browser unreachable")).await;
            return;
        }
    };
    let (sink, mut from_browser) = connection.split();
    let mut browser = Browser {
        sink,
        next_id: 1,
        attaching: HashMap::new(),
        first_frame: None,
        first_metrics: None,
        screencast: None,
        retry_at: None,
        retries: 0,
        target: viewer.watch.target_id().to_owned(),
        page_session: None,
        viewport: (0.0, 0.0),
    };
    browser
        .send("Target.setDiscoverTargets", json!({"discover": true}), None)
        .await;
    let first = browser.target.clone();
    browser.switch(&first).await;

    let mut control_rx = viewer.watch.control().subscribe();
    let mut handoff_rx = viewer.watch.handoff();
    let mut tabs = Tabs::default();
    let hello = json!({
        "type": "hello",
        "viewer": viewer.id,
        "mode": if viewer.access.may_interact() { "interact" } else { "view" },
        "can_take_over": viewer.access.may_take_over(),
        "tab": browser.target,
    });
    let greeting = [
        text(&hello),
        text(&viewer.control_message(&control_rx.borrow_and_update())),
        text(&handoff_message(&handoff_rx.borrow_and_update())),
    ];
    for message in greeting {
        if !deliver(&mut to_client, message).await {
            return;
        }
    }
    let link = match &viewer.access {
        Access::Viewer { link, .. } => Some(link.clone()),
        _ => None,
    };
    let mut link_check = tokio::time::interval(LINK_CHECK);
    let ended = viewer.watch.ended();
    tokio::pin!(ended);
    loop {
        tokio::select! {
            // The end of the session comes first: the browser may be handed to another session.
            biased;
            reason = &mut ended => {
                let reason = format!("session ended: {}", reason.as_str());
                let _ = deliver(&mut to_client, close(1001, reason)).await;
                break;
            }
            _ = tokio::time::sleep_until(browser.retry_at.unwrap_or_else(tokio::time::Instant::now)), if browser.retry_at.is_some() => {
                browser.start_screencast(&settings).await;
            }
            Ok(()) = control_rx.changed() => {
                let message = viewer.control_message(&control_rx.borrow_and_update());
                if !deliver(&mut to_client, text(&message)).await {
                    break;
                }
            }
            Ok(()) = handoff_rx.changed() => {
                let message = handoff_message(&handoff_rx.borrow_and_update());
                if !deliver(&mut to_client, text(&message)).await {
                    break;
                }
            }
            _ = link_check.tick(), if link.is_some() => {
                let now = viewer.state.clock.now_ms();
                // A link that cannot be checked is treated as closed.
                let closed = match &link {
                    Some(l) => match viewer.state.live_links.closed(l, now).await {
                        Ok(gone) => gone,
                        Err(err) => {
                            tracing::warn!(error = %err, "a live link could not be checked: its viewer is cut off");
                            Some(Gone::Revoked)
                        }
                    },
                    None => None,
                };
                // A handoff's link expires with the handoff: the runner's end of it (within a
                // lifecycle tick) is told to the person first; a revocation cuts off at once.
                let handoff_due = {
                    let h = handoff_rx.borrow();
                    h.phase == HandoffPhase::Requested
                        && h.link.as_ref().map(|l| l.as_str()) == link.as_deref()
                };
                match closed {
                    Some(Gone::Expired) if handoff_due => {}
                    Some(_) => {
                        let _ = deliver(&mut to_client, close(4001, "the live link was revoked or has expired")).await;
                        break;
                    }
                    None => {}
                }
            }
            msg = from_client.next() => match msg {
                Some(Ok(Message::Ping(payload))) => {
                    let _ = deliver(&mut to_client, Message::Pong(payload)).await;
                }
                Some(Ok(Message::Text(t))) => {
                    let reply = on_client(&viewer, &mut browser, &tabs, &handoff_rx, t.as_str()).await;
                    if let Some(reply) = reply
                        && !deliver(&mut to_client, reply).await
                    {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            msg = from_browser.next() => {
                let text_msg = match msg {
                    Some(Ok(BrowserMessage::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => {
                        let _ = deliver(&mut to_client, close(1011, "browser connection lost")).await;
                        break;
                    }
                };
                let Ok(event) = serde_json::from_str::<Value>(text_msg.as_str()) else { continue };
                let following = !viewer.watch.control().is_held_by(viewer.id);
                let owned = |context: &str| viewer.watch.owns_context(context);
                match on_browser(&mut browser, &mut tabs, &event, &settings, following, owned).await {
                    Some(Outgoing::Frame(frame, viewport)) => {
                        if let Some(v) = viewport {
                            let _ = deliver(&mut to_client, text(&v)).await;
                        }
                        if !deliver(&mut to_client, Message::Binary(frame.into())).await {
                            break;
                        }
                        let ack = json!({"sessionId": event["params"]["sessionId"]});
                        let sid = browser.page_session.clone();
                        browser.send("Page.screencastFrameAck", ack, sid.as_deref()).await;
                    }
                    Some(Outgoing::Still(frame)) => {
                        let sent = deliver(&mut to_client, Message::Binary(frame.into())).await;
                        if !sent {
                            break;
                        }
                    }
                    Some(Outgoing::Viewport(v)) => {
                        let sent = deliver(&mut to_client, text(&v)).await;
                        if !sent {
                            break;
                        }
                    }
                    Some(Outgoing::Tabs) => {
                        let sent = deliver(&mut to_client, text(&tabs.message(&browser.target))).await;
                        if !sent {
                            break;
                        }
                    }
                    Some(Outgoing::Gone) => {
                        let _ = deliver(&mut to_client, close(1011, "the page is gone")).await;
                        break;
                    }
                    None => {}
                }
            }
        }
    }
    if viewer.watch.control().release(viewer.id) {
        viewer
            .audit("session.live.control_released", json!({"left": true}))
            .await;
    }
    if let Some(sid) = browser.page_session.take() {
        browser
            .send("Page.stopScreencast", json!({}), Some(&sid))
            .await;
        browser
            .send("Target.detachFromTarget", json!({"sessionId": sid}), None)
            .await;
    }
    let _ = browser.sink.close().await;
}

async fn on_client(
    viewer: &Viewer,
    browser: &mut Browser,
    tabs: &Tabs,
    handoff: &tokio::sync::watch::Receiver<HandoffStatus>,
    raw: &str,
) -> Option<Message> {
    let message = match input::parse(raw) {
        Ok(m) => m,
        Err(detail) => return Some(error("invalid_message", detail)),
    };
    match &message {
        ClientMessage::Control { action } => viewer.control(*action).await,
        ClientMessage::Tab { id } => {
            if !tabs.contains(id) {
                return Some(error("unknown_tab", "No tab of this session has that id."));
            }
            browser.switch(id).await;
            Some(text(&tabs.message(id)))
        }
        ClientMessage::Done => {
            let status = handoff.borrow().clone();
            viewer.done(&status).await
        }
        ClientMessage::Mouse(_)
        | ClientMessage::Key(_)
        | ClientMessage::Text { .. }
        | ClientMessage::Paste { .. } => {
            if !viewer.access.may_interact() {
                return Some(error(
                    "view_only",
                    "This view is read-only: input is not sent.",
                ));
            }
            if !viewer.watch.control().is_held_by(viewer.id) {
                return Some(error(
                    "not_controller",
                    "Ask for control first ({\"type\": \"control\", \"action\": \"request\"}).",
                ));
            }
            let Some(sid) = browser.page_session.clone() else {
                return Some(error("no_page", "The tab is not ready yet; try again."));
            };
            for (method, params) in input::commands(&message) {
                browser.send(method, params, Some(&sid)).await;
            }
            viewer.watch.touch(viewer.state.clock.now_ms());
            None
        }
    }
}
