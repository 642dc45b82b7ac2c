//! Navigation and waiting on a [`SessionPage`]: `navigate`, `wait`, and the two primitives that
//! actions and captures build on (evaluating a script, waiting for an element).

use std::time::{Duration, Instant};
use tracing::Instrument;

use chromiumoxide::cdp::{
    browser_protocol::page::NavigateParams, js_protocol::runtime::EvaluateParams,
};

use super::monitor::network_idle;
use super::{SessionPage, map_cdp};
use crate::spec::{ElementState, NavigateOutcome, RunnerError, WaitSpec, WaitUntil};

const TIMED_OUT: &str = "timed out";

impl SessionPage {
    pub async fn navigate(
        &self,
        url: &str,
        wait_until: WaitUntil,
        timeout: Duration,
    ) -> Result<NavigateOutcome, RunnerError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let timeout_ms = timeout.as_millis() as u64;
        let nav = tokio::time::timeout(timeout, self.page.execute(NavigateParams::new(url)))
            .instrument(common::phase!("navigate.command"))
            .await
            .map_err(|_| RunnerError::Timeout(timeout_ms))?;
        let nav = match nav {
            Ok(response) => response.result,
            Err(chromiumoxide::error::CdpError::ChromeMessage(text)) => {
                return Err(RunnerError::NavigationFailed(text));
            }
            Err(chromiumoxide::error::CdpError::Timeout) => {
                return Err(RunnerError::Timeout(timeout_ms));
            }
            Err(err) => return Err(map_cdp(err, "navigate")),
        };
        if let Some(text) = nav.error_text {
            return Err(RunnerError::NavigationFailed(text));
        }
        let loader = nav.loader_id.map(|l| l.inner().clone());
        let wanted = match wait_until {
            WaitUntil::Load => "load",
            WaitUntil::DomContentLoaded => "DOMContentLoaded",
            WaitUntil::NetworkIdle => "load",
        };
        let load = async {
            let Some(loader) = &loader else {
                return true;
            };
            let reached = self
                .monitor
                .wait_for(deadline, |s| {
                    s.lifecycle
                        .get(loader)
                        .is_some_and(|names| names.contains(wanted))
                })
                .await;
            if !reached {
                return false;
            }
            // Lifecycle and response events are read by separate tasks: under load the `load`
            // can be seen before the document's response (its status and the egress guard's
            // marker). Give the response a moment to be recorded; an http(s) document has one.
            let grace = (Instant::now() + Duration::from_secs(2)).min(deadline);
            self.monitor
                .wait_for(grace, |s| s.document_status.contains_key(loader))
                .await;
            true
        };
        if !load.instrument(common::phase!("navigate.load")).await {
            return Err(RunnerError::Timeout(timeout_ms));
        }
        if wait_until == WaitUntil::NetworkIdle
            && !self.monitor.wait_for(deadline, network_idle).await
        {
            return Err(RunnerError::Timeout(timeout_ms));
        }
        let (status, marker) = match &loader {
            Some(l) => {
                let s = self.monitor.lock();
                (
                    s.document_status.get(l).copied(),
                    s.document_marker.get(l).cloned(),
                )
            }
            None => (None, None),
        };
        // The address and the title, asked together (two round trips at once).
        let (current, title) = async {
            tokio::join!(
                self.page.url(),
                self.evaluate_value("document.title", deadline)
            )
        }
        .instrument(common::phase!("navigate.after"))
        .await;
        let current = current.ok().flatten().unwrap_or_else(|| url.to_owned());
        let current_host = url::Url::parse(&current)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        match marker.as_deref() {
            Some("denied") => return Err(RunnerError::EgressDenied { host: current_host }),
            Some("unreachable") => {
                return Err(RunnerError::NavigationFailed(format!(
                    "cannot connect to {current_host}"
                )));
            }
            _ => {}
        }
        let title = title
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(NavigateOutcome {
            url: current,
            status,
            title,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Evaluates `expression` in the page (awaiting promises) and returns its JSON value.
    pub(super) async fn evaluate_value(
        &self,
        expression: &str,
        deadline: Instant,
    ) -> Result<serde_json::Value, String> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .return_by_value(true)
            .await_promise(true)
            .user_gesture(true)
            .build()
            .map_err(|e| e.to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        let response = tokio::time::timeout(left, self.page.execute(params))
            .await
            .map_err(|_| TIMED_OUT.to_owned())?
            .map_err(|e| e.to_string())?;
        if let Some(exception) = response.result.exception_details {
            let text = exception
                .exception
                .as_ref()
                .and_then(|e| e.description.clone())
                .unwrap_or(exception.text);
            return Err(text);
        }
        Ok(response
            .result
            .result
            .value
            .unwrap_or(serde_json::Value::Null))
    }

    /// Waits until an element matches `selector` (and is visible when `visible`).
    pub(super) async fn wait_for_element(
        &self,
        selector: &str,
        state: ElementState,
        deadline: Instant,
    ) -> Result<(), String> {
        let sel = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        let probe = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) return 'absent'; \
             const r = el.getBoundingClientRect(); const st = getComputedStyle(el); \
             return (r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none') \
             ? 'visible' : 'hidden'; }})()"
        );
        let missing = || match state {
            ElementState::Attached => format!("no element matches `{selector}`"),
            ElementState::Visible => format!("no visible element matches `{selector}`"),
            ElementState::Hidden => format!("`{selector}` stayed visible"),
        };
        loop {
            let found = match self.evaluate_value(&probe, deadline).await {
                Ok(v) => v,
                // The deadline passed while the page was busy: the element never showed up.
                Err(e) if e == TIMED_OUT => return Err(missing()),
                Err(e) => return Err(e),
            };
            let found = found.as_str().unwrap_or("absent");
            let ok = match state {
                ElementState::Attached => found != "absent",
                ElementState::Visible => found == "visible",
                ElementState::Hidden => found != "visible",
            };
            if ok {
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(missing());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait(&self, spec: &WaitSpec, load_mark: u64) -> Result<(), RunnerError> {
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let timeout = RunnerError::Timeout(spec.timeout_ms);
        if spec.navigation
            && !self
                .monitor
                .wait_for(deadline, |s| s.loads > load_mark)
                .await
        {
            return Err(timeout);
        }
        if let Some(selector) = &spec.selector {
            self.wait_for_element(selector, spec.state, deadline)
                .await
                .map_err(|reason| {
                    if Instant::now() >= deadline - Duration::from_millis(50) {
                        RunnerError::Timeout(spec.timeout_ms)
                    } else {
                        RunnerError::Invalid {
                            field: "selector".into(),
                            message: reason,
                        }
                    }
                })?;
        }
        for (text, present) in [(&spec.text, true), (&spec.text_gone, false)] {
            let Some(text) = text else { continue };
            let text = serde_json::to_string(text)
                .map_err(|e| RunnerError::Internal(anyhow::anyhow!("wait text: {e}")))?;
            let probe = format!(
                "(document.body ? document.body.innerText : '').includes({text}) === {present}"
            );
            self.wait_until_true(&probe, deadline, "")
                .await
                .map_err(|_| RunnerError::Timeout(spec.timeout_ms))?;
        }
        if spec.network_idle && !self.monitor.wait_for(deadline, network_idle).await {
            return Err(timeout);
        }
        Ok(())
    }
}
