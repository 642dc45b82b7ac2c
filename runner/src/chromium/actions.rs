//! Running a session's actions (click, hover, type, press, scroll, select, evaluate, history) on a
//! [`SessionPage`], each within its own deadline; the first failure stops the list.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chromiumoxide::cdp::browser_protocol::{
    dom::SetFileInputFilesParams,
    input::{DispatchKeyEventParams, DispatchKeyEventType},
};

use super::SessionPage;
use crate::{
    files::{DownloadState, SessionDownloads},
    spec::{Action, ActionOutcome, ElementState, RunnerError},
};

/// What actions need from their session beyond the page.
pub struct ActionContext<'a> {
    /// Upload id → its path inside the session's sandbox (for `set_files`).
    pub upload_paths: HashMap<String, String>,
    /// The session's downloads (for `wait_for_download`).
    pub downloads: Option<&'a SessionDownloads>,
}

impl SessionPage {
    /// Runs actions in order; the first failure stops the list.
    pub async fn run_actions(
        &self,
        actions: &[Action],
        timeout_per_action: Duration,
        ctx: &ActionContext<'_>,
    ) -> Result<Vec<ActionOutcome>, RunnerError> {
        let mut done = Vec::with_capacity(actions.len());
        // Downloads finished before this list are not waited for again.
        let mut seen = ctx.downloads.map(|d| d.finished_count()).unwrap_or(0);
        for (index, action) in actions.iter().enumerate() {
            let started = Instant::now();
            let deadline = started + timeout_per_action;
            let outcome = match action {
                Action::WaitForDownload => wait_for_download(ctx, &mut seen, deadline).await,
                Action::SetFiles { selector, uploads } => {
                    self.set_files(selector, uploads, ctx, deadline).await
                }
                other => self.run_action(other, deadline).await,
            };
            match outcome {
                Ok(value) => done.push(ActionOutcome {
                    index,
                    kind: action.kind(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    value,
                }),
                Err(reason) => {
                    return Err(RunnerError::ActionFailed {
                        index,
                        kind: action.kind(),
                        reason,
                        completed: done,
                    });
                }
            }
        }
        Ok(done)
    }

    async fn run_action(
        &self,
        action: &Action,
        deadline: Instant,
    ) -> Result<Option<serde_json::Value>, String> {
        match action {
            // Run by `run_actions`, which has the session's files.
            Action::SetFiles { .. } | Action::WaitForDownload => {
                Err("this action needs the session's files".to_owned())
            }
            Action::Click { selector } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.click().await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Hover { selector } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.hover().await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Type { selector, text } => {
                self.wait_for_element(selector, ElementState::Visible, deadline)
                    .await?;
                within(deadline, async {
                    let el = self.page.find_element(selector.as_str()).await?;
                    el.click().await?;
                    el.type_str(text).await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Press { key } => {
                let def = chromiumoxide::keys::get_key_definition(key)
                    .ok_or_else(|| format!("unknown key `{key}`"))?;
                within(deadline, async {
                    let mut down = DispatchKeyEventParams::builder()
                        .r#type(DispatchKeyEventType::KeyDown)
                        .key(def.key)
                        .code(def.code)
                        .windows_virtual_key_code(def.key_code)
                        .native_virtual_key_code(def.key_code);
                    if let Some(text) = def.text {
                        down = down.text(text);
                    } else if def.key.chars().count() == 1 {
                        down = down.text(def.key);
                    }
                    let down = down
                        .build()
                        .map_err(chromiumoxide::error::CdpError::ChromeMessage)?;
                    self.page.execute(down).await?;
                    let up = DispatchKeyEventParams::builder()
                        .r#type(DispatchKeyEventType::KeyUp)
                        .key(def.key)
                        .code(def.code)
                        .windows_virtual_key_code(def.key_code)
                        .native_virtual_key_code(def.key_code)
                        .build()
                        .map_err(chromiumoxide::error::CdpError::ChromeMessage)?;
                    self.page.execute(up).await?;
                    Ok(())
                })
                .await?;
                Ok(None)
            }
            Action::Scroll { x, y, selector } => {
                let script = match selector {
                    Some(sel) => {
                        self.wait_for_element(sel, ElementState::Attached, deadline)
                            .await?;
                        let sel = serde_json::to_string(sel).map_err(|e| e.to_string())?;
                        format!(
                            "document.querySelector({sel}).scrollIntoView({{block: 'center'}}); \
                             [window.scrollX, window.scrollY]"
                        )
                    }
                    None => format!(
                        "window.scrollBy({}, {}); [window.scrollX, window.scrollY]",
                        x.unwrap_or(0.0),
                        y.unwrap_or(0.0)
                    ),
                };
                let value = self.evaluate_value(&script, deadline).await?;
                Ok(Some(value))
            }
            Action::Select { selector, value } => {
                self.wait_for_element(selector, ElementState::Attached, deadline)
                    .await?;
                let sel = serde_json::to_string(selector).map_err(|e| e.to_string())?;
                let val = serde_json::to_string(value).map_err(|e| e.to_string())?;
                let script = format!(
                    "(() => {{ const el = document.querySelector({sel}); \
                     if (!(el instanceof HTMLSelectElement)) return 'not a <select> element'; \
                     if (![...el.options].some(o => o.value === {val})) return 'no option has this value'; \
                     el.value = {val}; \
                     el.dispatchEvent(new Event('input', {{bubbles: true}})); \
                     el.dispatchEvent(new Event('change', {{bubbles: true}})); return null; }})()"
                );
                match self.evaluate_value(&script, deadline).await? {
                    serde_json::Value::String(problem) => Err(problem),
                    _ => Ok(None),
                }
            }
            Action::Evaluate { expression } => {
                let value = self.evaluate_value(expression, deadline).await?;
                Ok(Some(value))
            }
            Action::Back => self.go_history(-1, deadline).await.map(|()| None),
            Action::Forward => self.go_history(1, deadline).await.map(|()| None),
            Action::Reload => self.reload(deadline).await.map(|()| None),
        }
    }
}

/// Runs a CDP step until `deadline`, turning its failure into a reason for the caller.
async fn within<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
) -> Result<T, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(cdp_reason(e)),
        Err(_) => Err("timed out".to_owned()),
    }
}

fn cdp_reason(err: chromiumoxide::error::CdpError) -> String {
    use chromiumoxide::error::CdpError;
    match err {
        CdpError::NotFound => "no element matches the selector".to_owned(),
        CdpError::Chrome(e) => e.message,
        CdpError::Timeout => "timed out".to_owned(),
        other => other.to_string(),
    }
}

impl SessionPage {
    async fn set_files(
        &self,
        selector: &str,
        uploads: &[String],
        ctx: &ActionContext<'_>,
        deadline: Instant,
    ) -> Result<Option<serde_json::Value>, String> {
        let paths: Vec<String> = uploads
            .iter()
            .map(|id| {
                ctx.upload_paths
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("upload {id} is not an upload of this session"))
            })
            .collect::<Result<_, _>>()?;
        self.wait_for_element(selector, ElementState::Attached, deadline)
            .await?;
        within(deadline, async {
            let el = self.page.find_element(selector).await?;
            let params = SetFileInputFilesParams {
                files: paths,
                node_id: None,
                backend_node_id: Some(el.backend_node_id),
                object_id: None,
            };
            self.page.execute(params).await?;
            Ok(())
        })
        .await?;
        Ok(None)
    }
}

/// The session's next finished download after the `seen` first; a download that did not
/// complete fails the action.
async fn wait_for_download(
    ctx: &ActionContext<'_>,
    seen: &mut usize,
    deadline: Instant,
) -> Result<Option<serde_json::Value>, String> {
    let downloads = ctx
        .downloads
        .ok_or_else(|| "downloads are not available in this session".to_owned())?;
    let Some(done) = downloads.next_after(*seen, deadline).await else {
        return Err("no download finished in time".to_owned());
    };
    *seen += 1;
    match done.state {
        DownloadState::Completed => Ok(Some(serde_json::json!({
            "download_id": done.id,
            "filename": done.filename,
            "size": done.size,
            "sha256": done.sha256,
        }))),
        DownloadState::TooLarge => Err(format!(
            "the download {} ({}) was cancelled: it is larger than your plan allows",
            done.id, done.filename
        )),
        _ => Err(format!(
            "the download {} ({}) failed",
            done.id, done.filename
        )),
    }
}
