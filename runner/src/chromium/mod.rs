//! Everything that touches Chromium, and the only module that uses chromiumoxide.
//!
//! A [`BrowserProcess`] is one headless Chromium with its own temporary user-data dir, reached
//! over CDP. It hands out [`SessionPage`]s: a fresh browser context with one page, plus a monitor
//! that follows the page's lifecycle and network events (load counts, in-flight requests, bytes,
//! blocked requests). `kill` ends the process and every child it spawned and removes its
//! user-data dir; nothing a browser creates outlives it.

mod actions;
mod agent;
mod capture;
mod downloads;
mod logs;
mod monitor;
mod navigate;
mod page;
mod process;
mod recording;
mod storage;
mod stray;
mod tabs;

pub use actions::ActionContext;
pub use downloads::{DownloadEvent, DownloadEvents};
pub use page::SessionPage;
pub use process::{BrowserProcess, LaunchOptions};
pub use recording::RecordOptions;
pub use stray::{kill_strays, pids_mentioning, remove_dir_retrying, sweep_stale_roots};
pub use tabs::{MAX_ADOPTED, TabInfo};

use crate::spec::RunnerError;

fn map_cdp(err: chromiumoxide::error::CdpError, what: &str) -> RunnerError {
    use chromiumoxide::error::CdpError;
    match err {
        CdpError::Ws(_) | CdpError::ChannelSendError(_) | CdpError::NoResponse => {
            RunnerError::Crashed
        }
        CdpError::Timeout => RunnerError::Timeout(0),
        other => RunnerError::Internal(anyhow::anyhow!("{what}: {other}")),
    }
}

fn internal(what: &'static str) -> impl Fn(chromiumoxide::error::CdpError) -> RunnerError {
    move |e| map_cdp(e, what)
}
