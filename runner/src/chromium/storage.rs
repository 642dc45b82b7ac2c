//! A profile's browser state: the cookies of a page's browser context, and localStorage per
//! origin (read from the page, kept across navigations, restored before the page's own scripts).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context;

use super::{BrowserProcess, SessionPage, map_cdp};
use crate::spec::RunnerError;

impl BrowserProcess {
    /// Every cookie of the page's browser context, with all attributes (a profile's state).
    pub async fn cookies(&self, page: &SessionPage) -> anyhow::Result<Vec<profiles::Cookie>> {
        use chromiumoxide::cdp::browser_protocol::storage::GetCookiesParams;
        let browser = self.browser.lock().await;
        let params = GetCookiesParams {
            browser_context_id: Some(page.context_id.clone()),
        };
        let res = browser
            .execute(params)
            .await
            .context("Storage.getCookies")?;
        Ok(res
            .result
            .cookies
            .into_iter()
            .map(|c| profiles::Cookie {
                name: c.name,
                value: c.value,
                domain: c.domain,
                path: c.path,
                expires: (!c.session).then_some(c.expires),
                http_only: c.http_only,
                secure: c.secure,
                same_site: c
                    .same_site
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| v.as_str().map(str::to_owned)),
                partition_key: c.partition_key.map(|k| k.top_level_site),
            })
            .collect())
    }

    /// Puts cookies into the page's browser context (before it is handed to a session).
    pub async fn set_cookies(
        &self,
        page: &SessionPage,
        cookies: &[profiles::Cookie],
    ) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::{
            network::{CookieParam, TimeSinceEpoch},
            storage::SetCookiesParams,
        };
        let params = cookies
            .iter()
            .map(|c| {
                let mut p = CookieParam::new(c.name.clone(), c.value.clone());
                p.domain = Some(c.domain.clone());
                p.path = Some(c.path.clone());
                p.secure = Some(c.secure);
                p.http_only = Some(c.http_only);
                p.expires = c.expires.map(TimeSinceEpoch::new);
                p.same_site = c.same_site.as_ref().and_then(|s| {
                    serde_json::from_value(serde_json::Value::String(s.clone())).ok()
                });
                p
            })
            .collect();
        let browser = self.browser.lock().await;
        browser
            .execute(SetCookiesParams {
                cookies: params,
                browser_context_id: Some(page.context_id.clone()),
            })
            .await
            .context("Storage.setCookies")?;
        Ok(())
    }
}

impl SessionPage {
    /// Starts keeping localStorage per origin for a profile session, from `seed` (the profile's
    /// stored origins). [`Self::remember_local_storage`] adds the current page's origin; the
    /// runner calls it before every command that may leave the page.
    pub fn track_local_storage(&mut self, seed: BTreeMap<String, profiles::OriginStorage>) {
        let mut map = match self.storage.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *map = seed;
    }

    /// Reads the current page's localStorage into what [`Self::all_local_storage`] returns.
    pub async fn remember_local_storage(&self) -> Result<(), RunnerError> {
        if let Some((origin, storage)) = self.local_storage().await? {
            let mut map = match self.storage.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            map.insert(origin, storage);
        }
        Ok(())
    }

    /// The localStorage of every origin kept since [`Self::track_local_storage`], with the
    /// current page's origin read directly (origins left empty are dropped).
    pub async fn all_local_storage(
        &self,
    ) -> Result<BTreeMap<String, profiles::OriginStorage>, RunnerError> {
        let mut all = match self.storage.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if let Some((origin, storage)) = self.local_storage().await? {
            all.insert(origin, storage);
        }
        all.retain(|_, s| !s.local_storage.is_empty());
        Ok(all)
    }

    /// The localStorage of the page's current origin, if it has one (`about:blank` has none).
    pub async fn local_storage(
        &self,
    ) -> Result<Option<(String, profiles::OriginStorage)>, RunnerError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let value = self
            .evaluate_value(
                "(() => { try { return [location.origin, Object.fromEntries(Object.entries(localStorage))]; } \
                 catch (e) { return null; } })()",
                deadline,
            )
            .await
            .map_err(|e| RunnerError::Internal(anyhow::anyhow!("reading localStorage: {e}")))?;
        let Some([origin, items]) = value
            .as_array()
            .and_then(|a| <&[_; 2]>::try_from(a.as_slice()).ok())
        else {
            return Ok(None);
        };
        let origin = origin.as_str().unwrap_or("null");
        if origin == "null" || !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Ok(None);
        }
        let local_storage = items
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some((
            origin.to_owned(),
            profiles::OriginStorage { local_storage },
        )))
    }

    /// Makes every document of a stored origin start with that origin's localStorage: a script
    /// that runs before the page's own scripts fills it in once per session and origin.
    pub async fn restore_local_storage(
        &self,
        origins: &std::collections::BTreeMap<String, profiles::OriginStorage>,
    ) -> Result<(), RunnerError> {
        use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
        if origins.is_empty() {
            return Ok(());
        }
        let data: std::collections::BTreeMap<&String, &std::collections::BTreeMap<String, String>> =
            origins.iter().map(|(o, s)| (o, &s.local_storage)).collect();
        let json = serde_json::to_string(&data).map_err(|e| RunnerError::Internal(e.into()))?;
        let source = format!(
            "(() => {{ try {{ const all = {json}; const items = all[location.origin]; \
             const mark = '__driftstack_restored'; \
             if (!items || sessionStorage.getItem(mark)) return; \
             for (const [k, v] of Object.entries(items)) localStorage.setItem(k, v); \
             sessionStorage.setItem(mark, '1'); }} catch (e) {{}} }})()"
        );
        self.page
            .execute(AddScriptToEvaluateOnNewDocumentParams::new(source))
            .await
            .map_err(|e| map_cdp(e, "addScriptToEvaluateOnNewDocument"))?;
        Ok(())
    }
}
