//! What an agent reads from a page and the history moves it makes: the `snapshot` outline (roles,
//! names and refs), the main content as Markdown, and back / forward / reload.
//!
//! The scripts run in an isolated world of their own, made afresh for each call, so the page's
//! scripts cannot replace the DOM functions they use; the page still sees the `data-ds-ref`
//! attributes a snapshot writes (that is how an action finds a ref again, on any node).

use std::time::{Duration, Instant};

use chromiumoxide::cdp::{
    browser_protocol::page::{
        CreateIsolatedWorldParams, FrameId, GetNavigationHistoryParams,
        NavigateToHistoryEntryParams, ReloadParams,
    },
    js_protocol::runtime::EvaluateParams,
};

use super::{SessionPage, internal};
use crate::spec::RunnerError;

const SNAPSHOT: &str = include_str!("snapshot.js");
const MAIN_CONTENT: &str = include_str!("extract.js");
const WORLD: &str = "driftstack-agent";

/// The most Markdown one capture returns; longer pages are cut with a note.
const MAX_MARKDOWN: usize = 200_000;

/// The converter thread's stack: far more than the tree the script hands over can need.
const MARKDOWN_STACK: usize = 64 << 20;

impl SessionPage {
    /// The page as an outline with refs (see `snapshot.js`).
    pub async fn snapshot(&self) -> Result<String, RunnerError> {
        let value = self.evaluate_isolated(SNAPSHOT).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The page's main content as Markdown.
    pub async fn markdown(&self) -> Result<String, RunnerError> {
        let value = self.evaluate_isolated(MAIN_CONTENT).await?;
        let html = value.as_str().unwrap_or_default().to_owned();
        // html5ever is synchronous and can take a while on a big page: off the async threads,
        // on a thread of its own with a generous stack (htmd walks the tree recursively; the
        // script already flattens nesting past 100 levels, this is the second wall).
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("markdown".into())
            .stack_size(MARKDOWN_STACK)
            .spawn(move || {
                let converted = htmd::HtmlToMarkdown::builder()
                    .skip_tags(vec!["script", "style", "noscript", "template"])
                    .build()
                    .convert(&html);
                let _ = tx.send(converted);
            })
            .map_err(|e| RunnerError::Internal(anyhow::anyhow!("markdown thread: {e}")))?;
        let converted = rx
            .await
            .map_err(|_| RunnerError::Internal(anyhow::anyhow!("markdown: the converter stopped")))?
            .map_err(|e| RunnerError::Internal(anyhow::anyhow!("markdown: {e}")))?;
        Ok(cut(converted, MAX_MARKDOWN))
    }

    /// Evaluates `expression` in a fresh isolated world of the main frame (the caller bounds
    /// the time: captures run under their own timeout).
    async fn evaluate_isolated(&self, expression: &str) -> Result<serde_json::Value, RunnerError> {
        let frame = FrameId::new(self.page.target_id().inner().clone());
        let mut world = CreateIsolatedWorldParams::new(frame);
        world.world_name = Some(WORLD.to_owned());
        let world = self
            .page
            .execute(world)
            .await
            .map_err(internal("Page.createIsolatedWorld"))?;
        let mut eval = EvaluateParams::new(expression);
        eval.context_id = Some(world.result.execution_context_id);
        eval.return_by_value = Some(true);
        let response = self
            .page
            .execute(eval)
            .await
            .map_err(internal("Runtime.evaluate"))?;
        if let Some(exception) = &response.result.exception_details {
            return Err(RunnerError::NavigationFailed(format!(
                "the page could not be read: {}",
                exception.text
            )));
        }
        Ok(response
            .result
            .result
            .value
            .clone()
            .unwrap_or(serde_json::Value::Null))
    }

    /// Moves `step` entries through the tab's history (−1 back, +1 forward) and waits until the
    /// entry's page is shown and loaded.
    pub(super) async fn go_history(&self, step: i64, deadline: Instant) -> Result<(), String> {
        let history = self
            .page
            .execute(GetNavigationHistoryParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let target = history.result.current_index + step;
        let Some(entry) = usize::try_from(target)
            .ok()
            .and_then(|i| history.result.entries.get(i))
        else {
            return Err(if step < 0 {
                "there is no previous page in this tab's history".to_owned()
            } else {
                "there is no next page in this tab's history".to_owned()
            });
        };
        let url = entry.url.clone();
        self.page
            .execute(NavigateToHistoryEntryParams::new(entry.id))
            .await
            .map_err(|e| e.to_string())?;
        // A page restored from the back-forward cache fires no new `load`: wait for the entry's
        // URL and a complete document instead.
        let probe = format!(
            "location.href === {} && document.readyState === 'complete'",
            serde_json::to_string(&url).map_err(|e| e.to_string())?
        );
        self.wait_until_true(&probe, deadline, "the page did not come back in time")
            .await
    }

    /// Loads the page again and waits for the new document's `load`.
    pub(super) async fn reload(&self, deadline: Instant) -> Result<(), String> {
        let before = self.load_mark();
        self.page
            .execute(ReloadParams::default())
            .await
            .map_err(|e| e.to_string())?;
        if self.monitor.wait_for(deadline, |s| s.loads > before).await {
            Ok(())
        } else {
            Err("the page did not load again in time".to_owned())
        }
    }

    /// Evaluates `probe` every 50 ms until it is `true` or `deadline` passes.
    pub(super) async fn wait_until_true(
        &self,
        probe: &str,
        deadline: Instant,
        timed_out: &str,
    ) -> Result<(), String> {
        loop {
            // A probe during a navigation can fail (no context yet): try again.
            if let Ok(serde_json::Value::Bool(true)) = self.evaluate_value(probe, deadline).await {
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(timed_out.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, saying so.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("\n\n… (cut: the page's content is longer)");
    text
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let text = "é".repeat(10);
        let out = cut(text, 5);
        assert!(out.starts_with("éé"));
        assert!(out.ends_with("longer)"));
        assert_eq!(cut("short".into(), 10), "short");
    }
}
