//! [`SessionPage`]: a session's page in its own browser context, and the settings applied to it
//! before it is handed out (viewport, user agent, locale, time zone, extra headers, geolocation,
//! blocked resource types).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering},
};

use chromiumoxide::{
    Page,
    cdp::browser_protocol::{
        browser::BrowserContextId,
        emulation::{
            SetDeviceMetricsOverrideParams, SetGeolocationOverrideParams, SetLocaleOverrideParams,
            SetTimezoneOverrideParams,
        },
        fetch::{self, EventRequestPaused, FailRequestParams, RequestPattern, RequestStage},
        network::{
            ErrorReason, Headers, ResourceType, SetExtraHttpHeadersParams,
            SetUserAgentOverrideParams,
        },
    },
};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::internal;
use super::monitor::Monitor;
use crate::spec::{BlockedResource, Counters, RunnerError, SessionSpec, Viewport};

/// A session's page in its own browser context, with its event monitor.
pub struct SessionPage {
    pub(super) page: Page,
    pub(super) context_id: BrowserContextId,
    pub(super) monitor: Arc<Monitor>,
    pub(super) tasks: Vec<JoinHandle<()>>,
    /// localStorage per origin, followed from DOMStorage events (profile sessions only).
    pub(super) storage: Arc<Mutex<BTreeMap<String, profiles::OriginStorage>>>,
    /// The recorder's isolated world in the main frame's current document (recorded sessions).
    pub(super) recorder_world:
        Arc<Mutex<Option<chromiumoxide::cdp::js_protocol::runtime::ExecutionContextId>>>,
    /// The viewport this page is sized to by `size_to` (none until then).
    pub(super) sized: Option<Viewport>,
}

impl SessionPage {
    pub(super) fn stop_monitor(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// The viewport the page is already sized to, if any.
    pub fn sized(&self) -> Option<Viewport> {
        self.sized
    }

    /// Sizes the page's viewport. The pool does it ahead of time on a warm page (to the viewport
    /// its previous session used), so `apply` skips the round trip when a session asks the same.
    pub async fn size_to(&mut self, viewport: Viewport) -> Result<(), RunnerError> {
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(
                i64::from(viewport.width),
                i64::from(viewport.height),
                1.0,
                false,
            ))
            .await
            .map_err(internal("setDeviceMetricsOverride"))?;
        self.sized = Some(viewport);
        Ok(())
    }

    /// Applies a session's settings to its page before it is handed out.
    pub async fn apply(&mut self, spec: &SessionSpec) -> Result<(), RunnerError> {
        if self.sized != Some(spec.viewport) {
            self.size_to(spec.viewport).await?;
        }
        let page = &self.page;
        if spec.user_agent.is_some() || spec.locale.is_some() {
            let ua = match &spec.user_agent {
                Some(ua) => ua.clone(),
                None => page.user_agent().await.map_err(internal("user agent"))?,
            };
            let mut params = SetUserAgentOverrideParams::new(ua);
            params.accept_language = spec.locale.clone();
            page.execute(params)
                .await
                .map_err(internal("setUserAgentOverride"))?;
        }
        if let Some(locale) = &spec.locale {
            let params = SetLocaleOverrideParams {
                locale: Some(locale.clone()),
            };
            page.execute(params)
                .await
                .map_err(|e| RunnerError::Invalid {
                    field: "locale".into(),
                    message: format!("Chromium refused this locale ({e})"),
                })?;
        }
        if let Some(tz) = &spec.timezone {
            page.execute(SetTimezoneOverrideParams::new(tz.clone()))
                .await
                .map_err(|_| RunnerError::Invalid {
                    field: "timezone".into(),
                    message: "is not a known IANA time zone".into(),
                })?;
        }
        if !spec.extra_headers.is_empty() {
            let headers = serde_json::to_value(&spec.extra_headers)
                .map_err(|e| RunnerError::Internal(e.into()))?;
            page.execute(SetExtraHttpHeadersParams::new(Headers::new(headers)))
                .await
                .map_err(internal("setExtraHTTPHeaders"))?;
        }
        if let Some(geo) = spec.geolocation {
            let params = SetGeolocationOverrideParams {
                latitude: Some(geo.latitude),
                longitude: Some(geo.longitude),
                accuracy: Some(geo.accuracy.unwrap_or(50.0)),
                ..Default::default()
            };
            page.execute(params)
                .await
                .map_err(internal("setGeolocationOverride"))?;
        }
        if !spec.block.is_empty() {
            self.start_blocking(&spec.block).await?;
        }
        Ok(())
    }

    /// Fails requests of the blocked resource types before they are sent.
    async fn start_blocking(&mut self, block: &[BlockedResource]) -> Result<(), RunnerError> {
        let patterns = block
            .iter()
            .map(|b| {
                let rt = match b {
                    BlockedResource::Image => ResourceType::Image,
                    BlockedResource::Font => ResourceType::Font,
                    BlockedResource::Media => ResourceType::Media,
                    BlockedResource::Stylesheet => ResourceType::Stylesheet,
                };
                RequestPattern {
                    url_pattern: Some("*".into()),
                    resource_type: Some(rt),
                    request_stage: Some(RequestStage::Request),
                }
            })
            .collect::<Vec<_>>();
        let mut paused = self
            .page
            .event_listener::<EventRequestPaused>()
            .await
            .map_err(internal("Fetch listener"))?;
        let enable = fetch::EnableParams {
            patterns: Some(patterns),
            ..Default::default()
        };
        self.page
            .execute(enable)
            .await
            .map_err(internal("Fetch.enable"))?;
        let page = self.page.clone();
        let m = self.monitor.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = paused.next().await {
                m.blocked.fetch_add(1, Ordering::Relaxed);
                let fail =
                    FailRequestParams::new(ev.request_id.clone(), ErrorReason::BlockedByClient);
                let _ = page.execute(fail).await;
            }
        }));
        Ok(())
    }

    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.monitor.requests.load(Ordering::Relaxed),
            blocked_requests: self.monitor.blocked.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    /// The number of main-frame loads so far (a mark for `wait { navigation }`).
    pub fn load_mark(&self) -> u64 {
        self.monitor.lock().loads
    }

    pub fn target_id(&self) -> String {
        self.page.target_id().inner().clone()
    }

    /// The page's browser context.
    pub fn context_id(&self) -> String {
        self.context_id.inner().clone()
    }
}

impl Drop for SessionPage {
    fn drop(&mut self) {
        self.stop_monitor();
    }
}
