//! The tabs of a session: the page targets of its browser context (the session's first page,
//! and those its sites open), adopting one as the page commands act on, and closing one.
//!
//! An adopted tab gets the session's settings (viewport, user agent, locale, time zone, blocking)
//! and shares its profile's localStorage record; the tab it replaces keeps running (its monitor
//! and logs too) so that switching back is instant and its counters still count.

use chromiumoxide::cdp::browser_protocol::target::{CloseTargetParams, GetTargetsParams, TargetId};

use super::{BrowserProcess, SessionPage, internal};
use crate::spec::{RunnerError, SessionSpec};

/// One tab of a session's context.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TabInfo {
    pub id: String,
    pub url: String,
    pub title: String,
}

/// At most this many tabs of one session are adopted (driven) at a time.
pub const MAX_ADOPTED: usize = 20;

impl BrowserProcess {
    /// The page targets of `context`, in the browser's order.
    pub async fn tabs(&self, context: &str) -> Result<Vec<TabInfo>, RunnerError> {
        let browser = self.browser.lock().await;
        let targets = browser
            .execute(GetTargetsParams::default())
            .await
            .map_err(internal("Target.getTargets"))?;
        Ok(targets
            .result
            .target_infos
            .into_iter()
            .filter(|t| {
                t.r#type == "page"
                    && t.browser_context_id.as_ref().map(|c| c.inner().as_str()) == Some(context)
            })
            .map(|t| TabInfo {
                id: t.target_id.inner().clone(),
                url: t.url,
                title: t.title,
            })
            .collect())
    }

    /// A [`SessionPage`] for the tab `target` of `current`'s context, set up like the session.
    pub async fn adopt_tab(
        &self,
        current: &SessionPage,
        target: &str,
        spec: &SessionSpec,
    ) -> Result<SessionPage, RunnerError> {
        let page = {
            let browser = self.browser.lock().await;
            browser
                .get_page(TargetId::new(target))
                .await
                .map_err(|_| RunnerError::TabNotFound)?
        };
        let mut adopted = SessionPage::start(page, current.context_id.clone())
            .await
            .map_err(RunnerError::Internal)?;
        adopted.storage = current.storage.clone();
        adopted.apply(spec).await?;
        Ok(adopted)
    }

    /// Closes the tab `target`.
    pub async fn close_tab(&self, target: &str) -> Result<(), RunnerError> {
        let browser = self.browser.lock().await;
        browser
            .execute(CloseTargetParams::new(TargetId::new(target)))
            .await
            .map_err(internal("Target.closeTarget"))?;
        Ok(())
    }
}

impl SessionPage {
    /// Shows this tab in front (what a person watching the live view sees follows it).
    pub async fn bring_to_front(&self) -> Result<(), RunnerError> {
        self.page
            .bring_to_front()
            .await
            .map_err(internal("Page.bringToFront"))?;
        Ok(())
    }
}
