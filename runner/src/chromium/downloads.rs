//! A browser's downloads as plain events: the session's browser context is told to save every
//! download under its GUID in the session's downloads directory and to report progress, and the
//! browser's `Browser.downloadWillBegin` / `downloadProgress` events are passed on as
//! [`DownloadEvent`]s. Which download belongs to whom, and what to keep, is `files`' job.

use std::path::Path;

use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, CancelDownloadParams, DownloadProgressState, EventDownloadProgress,
    EventDownloadWillBegin, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use futures::StreamExt;
use tokio::{sync::mpsc, task::JoinHandle};

use super::BrowserProcess;

/// What the browser says about a download.
#[derive(Clone, Debug, PartialEq)]
pub enum DownloadEvent {
    Began {
        guid: String,
        url: String,
        suggested_filename: String,
    },
    Progress {
        guid: String,
        received_bytes: u64,
    },
    Completed {
        guid: String,
        received_bytes: u64,
    },
    Canceled {
        guid: String,
    },
}

/// The browser's download events for one session, until dropped.
pub struct DownloadEvents {
    pub events: mpsc::Receiver<DownloadEvent>,
    task: JoinHandle<()>,
}

impl Drop for DownloadEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BrowserProcess {
    /// Sends every download of browser context `context` to `dir` (named by GUID) and follows
    /// their progress.
    pub async fn follow_downloads(
        &self,
        context: &str,
        dir: &Path,
    ) -> anyhow::Result<DownloadEvents> {
        anyhow::ensure!(
            std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()),
            "the downloads dir {} is missing",
            dir.display()
        );
        let browser = self.browser.lock().await;
        let mut began = browser.event_listener::<EventDownloadWillBegin>().await?;
        let mut progress = browser.event_listener::<EventDownloadProgress>().await?;
        let behavior = SetDownloadBehaviorParams {
            behavior: SetDownloadBehaviorBehavior::AllowAndName,
            browser_context_id: Some(BrowserContextId::new(context.to_owned())),
            download_path: Some(dir.display().to_string()),
            events_enabled: Some(true),
        };
        browser.execute(behavior).await?;
        drop(browser);
        let (tx, events) = mpsc::channel(256);
        // One task, `begin` first: the browser reports a download's beginning before its
        // progress, and both streams are filled in that order, so a fast download's completion
        // is never seen before its beginning.
        let task = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    biased;
                    Some(ev) = began.next() => DownloadEvent::Began {
                        guid: ev.guid.clone(),
                        url: ev.url.clone(),
                        suggested_filename: ev.suggested_filename.clone(),
                    },
                    Some(ev) = progress.next() => {
                        let guid = ev.guid.clone();
                        let received_bytes = ev.received_bytes.max(0.0) as u64;
                        match ev.state {
                            DownloadProgressState::InProgress => DownloadEvent::Progress {
                                guid,
                                received_bytes,
                            },
                            DownloadProgressState::Completed => DownloadEvent::Completed {
                                guid,
                                received_bytes,
                            },
                            DownloadProgressState::Canceled => DownloadEvent::Canceled { guid },
                        }
                    }
                    else => break,
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(DownloadEvents { events, task })
    }

    /// Cancels a download in progress.
    pub async fn cancel_download(&self, context: &str, guid: &str) -> anyhow::Result<()> {
        let browser = self.browser.lock().await;
        let params = CancelDownloadParams {
            guid: guid.to_owned(),
            browser_context_id: Some(BrowserContextId::new(context.to_owned())),
        };
        browser.execute(params).await?;
        Ok(())
    }
}
