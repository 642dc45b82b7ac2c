//! A session's tabs as its commands see them: list them, select the one commands act on (a page
//! the site opened with `target=_blank` or `window.open`), close one. Serialised with the
//! session's other commands.

use std::sync::Arc;

use common::ids::{AccountId, SessionId};

use crate::{live::LiveSession, pool::WarmBrowser, *};

/// One tab of a session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tab {
    pub id: String,
    pub url: String,
    pub title: String,
    /// The tab commands act on.
    pub current: bool,
}

impl Runner {
    /// Runs `f` with the session's browser, like [`Runner::command`] but able to change which
    /// tab is current.
    async fn with_browser<T>(
        &self,
        account: &AccountId,
        id: &SessionId,
        f: impl AsyncFnOnce(&Arc<LiveSession>, &mut WarmBrowser) -> Result<T, RunnerError>,
    ) -> Result<T, RunnerError> {
        let Some(live) = self.live(account, id) else {
            return Err(self.not_live_error(account, id).await);
        };
        live.last_activity
            .store(self.clock.now_ms(), std::sync::atomic::Ordering::SeqCst);
        let mut guard = tokio::select! {
            g = live.browser.lock() => g,
            _ = live.cancel.cancelled() => return Err(RunnerError::Ended),
        };
        let Some(browser) = guard.as_mut() else {
            return Err(RunnerError::Ended);
        };
        tokio::select! {
            r = f(&live, browser) => r,
            _ = live.cancel.cancelled() => Err(RunnerError::Ended),
        }
    }

    /// The session's tabs, the current one marked.
    pub async fn tabs(&self, account: &AccountId, id: &SessionId) -> Result<Vec<Tab>, RunnerError> {
        self.with_browser(account, id, async |_, browser| list(browser).await)
            .await
    }

    /// Makes `tab` the one the session's commands act on (and brings it to the front).
    pub async fn select_tab(
        &self,
        account: &AccountId,
        id: &SessionId,
        tab: &str,
    ) -> Result<Vec<Tab>, RunnerError> {
        self.with_browser(account, id, async |live, browser| {
            if browser.page.target_id() != tab {
                let known = list(browser).await?;
                if !known.iter().any(|t| t.id == tab) {
                    return Err(RunnerError::TabNotFound);
                }
                // A tab driven before is taken back as it is; a new one is set up first.
                let next = match browser.others.iter().position(|p| p.target_id() == tab) {
                    Some(i) => browser.others.swap_remove(i),
                    None => {
                        if browser.others.len() >= chromium::MAX_ADOPTED {
                            return Err(RunnerError::TooManyTabs);
                        }
                        let mut adopted = browser
                            .process
                            .adopt_tab(&browser.page, tab, &live.spec)
                            .await?;
                        if let Err(err) = adopted.follow_logs(live.log.sink()).await {
                            tracing::warn!(session.id = %live.id, error = %err, "the tab's logs cannot be followed");
                        }
                        adopted
                    }
                };
                crate::admission::remember_storage(live, &browser.page).await;
                let previous = std::mem::replace(&mut browser.page, next);
                browser.others.push(previous);
            }
            browser.page.bring_to_front().await?;
            list(browser).await
        })
        .await
    }

    /// Closes `tab`; the current tab cannot be closed (select another first).
    pub async fn close_tab(
        &self,
        account: &AccountId,
        id: &SessionId,
        tab: &str,
    ) -> Result<(), RunnerError> {
        self.with_browser(account, id, async |_, browser| {
            if browser.page.target_id() == tab {
                return Err(RunnerError::CurrentTab);
            }
            if !list(browser).await?.iter().any(|t| t.id == tab) {
                return Err(RunnerError::TabNotFound);
            }
            browser.others.retain(|p| p.target_id() != tab);
            browser.process.close_tab(tab).await
        })
        .await
    }
}

async fn list(browser: &WarmBrowser) -> Result<Vec<Tab>, RunnerError> {
    let current = browser.page.target_id();
    Ok(browser
        .process
        .tabs(&browser.page.context_id())
        .await?
        .into_iter()
        .map(|t| Tab {
            current: t.id == current,
            id: t.id,
            url: t.url,
            title: t.title,
        })
        .collect())
}
