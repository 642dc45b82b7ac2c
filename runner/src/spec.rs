//! The runner's domain types: what a session is asked to be, the commands it takes, what they
//! answer, and how they fail. No HTTP types here; the API crate converts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport {
            width: 1280,
            height: 720,
        }
    }
}

/// Resource types a session may refuse to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedResource {
    Image,
    Font,
    Media,
    Stylesheet,
}

/// An upstream proxy the session's traffic is sent through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamProxy {
    /// `http://host:port`.
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// How a new session's browser is set up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub viewport: Viewport,
    pub user_agent: Option<String>,
    /// BCP 47, e.g. `en-US`.
    pub locale: Option<String>,
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: Option<String>,
    pub extra_headers: BTreeMap<String, String>,
    pub block: Vec<BlockedResource>,
    pub proxy: Option<UpstreamProxy>,
    /// The position pages see (with permission granted), from the session's profile.
    pub geolocation: Option<profiles::Geolocation>,
}

/// A session's claim on a profile: its state is loaded before the session is handed out and,
/// with `persist`, saved back when the session ends.
#[derive(Clone, Debug)]
pub struct ProfileRequest {
    pub id: common::ids::ProfileId,
    pub persist: bool,
    /// The largest state blob the account's plan allows (after compression).
    pub max_state_bytes: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitUntil {
    #[default]
    Load,
    DomContentLoaded,
    NetworkIdle,
}

/// The result of a navigation.
#[derive(Clone, Debug, Serialize)]
pub struct NavigateOutcome {
    /// The URL after redirects.
    pub url: String,
    /// The HTTP status of the main document, when there was a response.
    pub status: Option<u16>,
    pub title: String,
    pub elapsed_ms: u64,
}

/// One step of an action list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Action {
    Click {
        selector: String,
    },
    Type {
        selector: String,
        text: String,
    },
    Press {
        key: String,
    },
    Scroll {
        x: Option<f64>,
        y: Option<f64>,
        selector: Option<String>,
    },
    Select {
        selector: String,
        value: String,
    },
    Hover {
        selector: String,
    },
    Evaluate {
        expression: String,
    },
    /// Sets the files of an `<input type=file>` to uploads of this session (by id).
    SetFiles {
        selector: String,
        uploads: Vec<String>,
    },
    /// Waits for the session's next download to finish; its value describes the download.
    WaitForDownload,
    /// Goes one entry back in the tab's history and waits for the page to be shown.
    Back,
    /// Goes one entry forward in the tab's history and waits for the page to be shown.
    Forward,
    /// Loads the page again and waits for its `load`.
    Reload,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Click { .. } => "click",
            Action::Type { .. } => "type",
            Action::Press { .. } => "press",
            Action::Scroll { .. } => "scroll",
            Action::Select { .. } => "select",
            Action::Hover { .. } => "hover",
            Action::Evaluate { .. } => "evaluate",
            Action::SetFiles { .. } => "set_files",
            Action::WaitForDownload => "wait_for_download",
            Action::Back => "back",
            Action::Forward => "forward",
            Action::Reload => "reload",
        }
    }
}

/// The result of one action.
#[derive(Clone, Debug, Serialize)]
pub struct ActionOutcome {
    pub index: usize,
    pub kind: &'static str,
    pub elapsed_ms: u64,
    /// The value of an `evaluate`, as JSON.
    pub value: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    Png,
    Jpeg,
    Webp,
    Pdf,
    Html,
    Text,
    /// The page's main content as Markdown.
    Markdown,
    /// The page as an outline of roles and names, each element one can act on tagged with a ref.
    Snapshot,
}

impl CaptureFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            CaptureFormat::Png => "image/png",
            CaptureFormat::Jpeg => "image/jpeg",
            CaptureFormat::Webp => "image/webp",
            CaptureFormat::Pdf => "application/pdf",
            CaptureFormat::Html => "text/html; charset=utf-8",
            CaptureFormat::Text | CaptureFormat::Snapshot => "text/plain; charset=utf-8",
            CaptureFormat::Markdown => "text/markdown; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSpec {
    pub format: CaptureFormat,
    pub full_page: bool,
    pub selector: Option<String>,
    /// 0–100, for jpeg and webp.
    pub quality: Option<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementState {
    #[default]
    Attached,
    Visible,
    Hidden,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitSpec {
    pub selector: Option<String>,
    pub state: ElementState,
    /// Wait for a page load that started after the previous command began.
    pub navigation: bool,
    /// Wait until no request has been in flight for 500 ms.
    pub network_idle: bool,
    /// Wait until the page's visible text contains this.
    pub text: Option<String>,
    /// Wait until the page's visible text no longer contains this.
    pub text_gone: Option<String>,
    pub timeout_ms: u64,
}

/// Why a session is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Ended by the client (DELETE).
    Released,
    /// No command for longer than the idle timeout.
    IdleTimeout,
    /// Reached its maximum duration.
    MaxDuration,
    /// Its browser crashed or stopped answering.
    BrowserCrashed,
    /// The server shut down.
    Shutdown,
    /// The server stopped without closing it (found at the next start).
    RunnerLost,
    /// It could not be started.
    StartFailed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Released => "released",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::BrowserCrashed => "browser_crashed",
            EndReason::Shutdown => "shutdown",
            EndReason::RunnerLost => "runner_lost",
            EndReason::StartFailed => "start_failed",
        }
    }

    /// The terminal status a session ending this way gets.
    pub fn status(self) -> SessionStatus {
        match self {
            EndReason::Released | EndReason::Shutdown => SessionStatus::Closed,
            EndReason::IdleTimeout | EndReason::MaxDuration => SessionStatus::TimedOut,
            EndReason::BrowserCrashed | EndReason::RunnerLost | EndReason::StartFailed => {
                SessionStatus::Failed
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Starting,
    Active,
    Closing,
    Closed,
    Failed,
    TimedOut,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Starting => "starting",
            SessionStatus::Active => "active",
            SessionStatus::Closing => "closing",
            SessionStatus::Closed => "closed",
            SessionStatus::Failed => "failed",
            SessionStatus::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => SessionStatus::Starting,
            "active" => SessionStatus::Active,
            "closing" => SessionStatus::Closing,
            "closed" => SessionStatus::Closed,
            "failed" => SessionStatus::Failed,
            "timed_out" => SessionStatus::TimedOut,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(
            self,
            SessionStatus::Starting | SessionStatus::Active | SessionStatus::Closing
        )
    }
}

/// Live counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub navigations: u64,
    pub actions: u64,
    pub captures: u64,
    /// Network requests the page made.
    pub requests: u64,
    /// Bytes received from the network (through the egress proxy).
    pub bytes_received: u64,
    /// Bytes sent to the network.
    pub bytes_sent: u64,
    /// Requests refused by resource blocking.
    pub blocked_requests: u64,
    /// Connections the egress guard refused.
    pub egress_denied: u64,
}

/// How a session command fails, from the caller's side.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("no such session")]
    NotFound,
    /// The session exists but has ended (or is ending).
    #[error("the session has ended")]
    Ended,
    /// Another command of this session is still running.
    #[error("another command is running on this session")]
    Busy,
    /// The input cannot work (bad selector syntax, bad timezone…), naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// An action of a list failed; earlier ones ran.
    #[error("action {index} ({kind}) failed: {reason}")]
    ActionFailed {
        index: usize,
        kind: &'static str,
        reason: String,
        completed: Vec<ActionOutcome>,
    },
    /// The egress guard refused the destination (a private or reserved address).
    #[error("the egress guard refused {host}")]
    EgressDenied { host: String },
    /// The page could not be loaded (DNS, connection refused, TLS…).
    #[error("navigation failed: {0}")]
    NavigationFailed(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// No browser slot became free in time.
    #[error("no browser capacity")]
    Capacity { retry_after_seconds: u64 },
    #[error("the browser crashed")]
    Crashed,
    /// No tab of this session has that id.
    #[error("no such tab")]
    TabNotFound,
    /// The tab is the one the session drives (select another first).
    #[error("the session drives this tab")]
    CurrentTab,
    /// The session already drives as many tabs as it may.
    #[error("too many tabs")]
    TooManyTabs,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
