//! The DevTools side of one live viewer: its own connection to the session's browser, the tab
//! it watches (attach, screencast — retried while a tab is mid-navigation — a first still and the
//! page's size), and what the browser's messages mean for the viewer (frames, tab changes).

use std::{collections::HashMap, time::Duration};

use base64::Engine;
use futures::{SinkExt, stream::SplitSink};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as BrowserMessage;

use super::tabs::{Change, Tabs};

/// How long to wait before asking a tab in mid-navigation for its screencast again, and how often.
const SCREENCAST_RETRY: Duration = Duration::from_millis(100);
const MAX_SCREENCAST_RETRIES: u32 = 50;

pub(super) type BrowserSink = SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    BrowserMessage,
>;

/// The browser side of one viewer: its DevTools connection and the tab it watches.
pub(super) struct Browser {
    pub(super) sink: BrowserSink,
    pub(super) next_id: u64,
    /// Ids of `Target.attachToTarget` calls awaiting their answer, by target.
    pub(super) attaching: HashMap<u64, String>,
    /// Ids of the `Page.captureScreenshot` / `Page.getLayoutMetrics` calls that give a viewer
    /// the tab as it is when the view starts (the screencast sends frames only on change: a
    /// static page would show nothing).
    pub(super) first_frame: Option<u64>,
    pub(super) first_metrics: Option<u64>,
    /// The `Page.startScreencast` call awaiting its answer, and when to ask again: a tab in
    /// the middle of a navigation answers "Not attached to an active page".
    pub(super) screencast: Option<u64>,
    pub(super) retry_at: Option<tokio::time::Instant>,
    pub(super) retries: u32,
    /// The tab watched, and the CDP session on it once attached.
    pub(super) target: String,
    pub(super) page_session: Option<String>,
    pub(super) viewport: (f64, f64),
}

impl Browser {
    pub(super) async fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let _ = self
            .sink
            .send(BrowserMessage::Text(msg.to_string().into()))
            .await;
        id
    }

    /// Starts the screencast of the attached tab, and asks for the tab as it is now and its size.
    pub(super) async fn start_screencast(&mut self, settings: &Value) {
        let Some(sid) = self.page_session.clone() else {
            return;
        };
        self.retry_at = None;
        self.screencast = Some(
            self.send("Page.startScreencast", settings.clone(), Some(&sid))
                .await,
        );
        let shot = json!({"format": "jpeg", "quality": settings["quality"]});
        self.first_frame = Some(self.send("Page.captureScreenshot", shot, Some(&sid)).await);
        self.first_metrics = Some(
            self.send("Page.getLayoutMetrics", json!({}), Some(&sid))
                .await,
        );
    }

    /// Stops watching the current tab and attaches to `target`.
    pub(super) async fn switch(&mut self, target: &str) {
        self.retry_at = None;
        self.screencast = None;
        if let Some(sid) = self.page_session.take() {
            self.send("Page.stopScreencast", json!({}), Some(&sid))
                .await;
            self.send("Target.detachFromTarget", json!({"sessionId": sid}), None)
                .await;
        }
        self.target = target.to_owned();
        let id = self
            .send(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                None,
            )
            .await;
        self.attaching.insert(id, target.to_owned());
    }
}

/// What a browser message means for the client.
pub(super) enum Outgoing {
    /// A JPEG frame, with a `viewport` message first when the page's size changed.
    Frame(Vec<u8>, Option<Value>),
    /// The tab as it was when the view started (a JPEG, not acknowledged).
    Still(Vec<u8>),
    /// The page's size, before its first screencast frame.
    Viewport(Value),
    Tabs,
    Gone,
}

/// `follow`: a newly opened tab is watched at once (not while this viewer holds control: its
/// input must not move to a tab it did not choose — a popup the page opened, say).
pub(super) async fn on_browser(
    browser: &mut Browser,
    tabs: &mut Tabs,
    event: &Value,
    settings: &Value,
    follow: bool,
    owned: impl Fn(&str) -> bool,
) -> Option<Outgoing> {
    if let Some(id) = event["id"].as_u64()
        && let Some(target) = browser.attaching.remove(&id)
    {
        let Some(sid) = event["result"]["sessionId"].as_str() else {
            // The tab went away before we attached: watch the newest one left.
            return match tabs.newest().map(str::to_owned) {
                Some(next) if next != target => {
                    browser.switch(&next).await;
                    Some(Outgoing::Tabs)
                }
                _ => Some(Outgoing::Gone),
            };
        };
        if target == browser.target {
            browser.page_session = Some(sid.to_owned());
            browser.retries = 0;
            browser.start_screencast(settings).await;
        }
        return None;
    }
    if let Some(id) = event["id"].as_u64()
        && browser.screencast == Some(id)
    {
        browser.screencast = None;
        if event.get("error").is_some() && browser.retries < MAX_SCREENCAST_RETRIES {
            browser.retries += 1;
            browser.retry_at = Some(tokio::time::Instant::now() + SCREENCAST_RETRY);
        }
        return None;
    }
    if let Some(id) = event["id"].as_u64()
        && browser.first_metrics == Some(id)
    {
        browser.first_metrics = None;
        let v = &event["result"]["cssVisualViewport"];
        let size = (
            v["clientWidth"].as_f64().unwrap_or(0.0),
            v["clientHeight"].as_f64().unwrap_or(0.0),
        );
        if size.0 > 0.0 && browser.viewport == (0.0, 0.0) {
            browser.viewport = size;
            return Some(Outgoing::Viewport(
                json!({"type": "viewport", "width": size.0, "height": size.1}),
            ));
        }
        return None;
    }
    if let Some(id) = event["id"].as_u64()
        && browser.first_frame == Some(id)
    {
        browser.first_frame = None;
        return event["result"]["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(Outgoing::Still);
    }
    let method = event["method"].as_str().unwrap_or("");
    if method.starts_with("Target.") {
        return match tabs.apply(method, &event["params"], owned) {
            Change::Opened(id)
                if follow && id != browser.target && method == "Target.targetCreated" =>
            {
                // The view follows a tab the page (or a client) opened.
                browser.switch(&id).await;
                Some(Outgoing::Tabs)
            }
            Change::Closed(id) if id == browser.target => {
                browser.page_session = None;
                match tabs.newest().map(str::to_owned) {
                    Some(next) => {
                        browser.switch(&next).await;
                        Some(Outgoing::Tabs)
                    }
                    None => Some(Outgoing::Gone),
                }
            }
            Change::None => None,
            _ => Some(Outgoing::Tabs),
        };
    }
    if method != "Page.screencastFrame"
        || event["sessionId"].as_str() != browser.page_session.as_deref()
    {
        return None;
    }
    let frame = event["params"]["data"]
        .as_str()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())?;
    let meta = &event["params"]["metadata"];
    let size = (
        meta["deviceWidth"].as_f64().unwrap_or(0.0),
        meta["deviceHeight"].as_f64().unwrap_or(0.0),
    );
    let viewport = (size != browser.viewport).then(|| {
        browser.viewport = size;
        json!({"type": "viewport", "width": size.0, "height": size.1})
    });
    Some(Outgoing::Frame(frame, viewport))
}
