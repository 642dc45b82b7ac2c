//! Running a session's actions (click, hover, type, press, scroll, select, evaluate) on a
//! [`SessionPage`], each within its own deadline; the first failure stops the list.

use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};

use super::SessionPage;
use crate::spec::{Action, ActionOutcome, ElementState, RunnerError};

impl SessionPage {
    /// Runs actions in order; the first failure stops the list.
    pub async fn run_actions(
        &self,
        actions: &[Action],
        timeout_per_action: Duration,
    ) -> Result<Vec<ActionOutcome>, RunnerError> {
        let mut done = Vec::with_capacity(actions.len());
        for (index, action) in actions.iter().enumerate() {
            let started = Instant::now();
            let deadline = started + timeout_per_action;
            match self.run_action(action, deadline).await {
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
