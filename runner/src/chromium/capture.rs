//! Captures of a [`SessionPage`]: HTML, text, PDF, screenshots of the viewport, the full page or
//! one element, and (from `agent`) Markdown and the snapshot outline.

use std::time::{Duration, Instant};
use tracing::Instrument;

use chromiumoxide::cdp::browser_protocol::{
    dom::Rect,
    page::{
        CaptureScreenshotFormat, CaptureScreenshotParams, GetLayoutMetricsParams, PrintToPdfParams,
        Viewport as CdpViewport,
    },
};

use super::{SessionPage, map_cdp};
use crate::spec::{CaptureFormat, CaptureSpec, ElementState, RunnerError};

impl SessionPage {
    pub async fn capture(
        &self,
        spec: &CaptureSpec,
        timeout: Duration,
    ) -> Result<Vec<u8>, RunnerError> {
        let deadline = Instant::now() + timeout;
        let timeout_ms = timeout.as_millis() as u64;
        let run = async {
            match spec.format {
                CaptureFormat::Html => {
                    let html = self
                        .evaluate_value(
                            "document.documentElement ? document.documentElement.outerHTML : ''",
                            deadline,
                        )
                        .await
                        .map_err(RunnerError::NavigationFailed)?;
                    let doctype = "<!DOCTYPE html>\n";
                    Ok(format!("{doctype}{}", html.as_str().unwrap_or("")).into_bytes())
                }
                CaptureFormat::Text => {
                    let text = self
                        .evaluate_value("document.body ? document.body.innerText : ''", deadline)
                        .await
                        .map_err(RunnerError::NavigationFailed)?;
                    Ok(text.as_str().unwrap_or("").as_bytes().to_vec())
                }
                CaptureFormat::Pdf => {
                    let params = PrintToPdfParams {
                        print_background: Some(true),
                        ..PrintToPdfParams::default()
                    };
                    let response = self
                        .page
                        .execute(params)
                        .await
                        .map_err(|e| map_cdp(e, "printToPDF"))?;
                    decode_base64(response.result.data.as_ref())
                }
                CaptureFormat::Png | CaptureFormat::Jpeg | CaptureFormat::Webp => {
                    self.screenshot(spec, deadline).await
                }
                CaptureFormat::Markdown => Ok(self.markdown().await?.into_bytes()),
                CaptureFormat::Snapshot => Ok(self.snapshot().await?.into_bytes()),
            }
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| RunnerError::Timeout(timeout_ms))?
    }

    async fn screenshot(
        &self,
        spec: &CaptureSpec,
        deadline: Instant,
    ) -> Result<Vec<u8>, RunnerError> {
        let format = match spec.format {
            CaptureFormat::Jpeg => CaptureScreenshotFormat::Jpeg,
            CaptureFormat::Webp => CaptureScreenshotFormat::Webp,
            _ => CaptureScreenshotFormat::Png,
        };
        let mut params = CaptureScreenshotParams {
            format: Some(format),
            ..CaptureScreenshotParams::default()
        };
        if spec.format != CaptureFormat::Png {
            params.quality = spec.quality.map(i64::from);
        }
        if let Some(selector) = &spec.selector {
            self.wait_for_element(selector, ElementState::Visible, deadline)
                .await
                .map_err(|message| RunnerError::Invalid {
                    field: "selector".into(),
                    message,
                })?;
            let el = self
                .page
                .find_element(selector.as_str())
                .await
                .map_err(|e| map_cdp(e, "find element"))?;
            el.scroll_into_view()
                .await
                .map_err(|e| map_cdp(e, "scroll"))?;
            let bb = el
                .bounding_box()
                .await
                .map_err(|e| map_cdp(e, "bounding box"))?;
            let scroll = self
                .evaluate_value("[window.scrollX, window.scrollY]", deadline)
                .await
                .map_err(RunnerError::NavigationFailed)?;
            let sx = scroll
                .get(0)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            let sy = scroll
                .get(1)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            params.clip = Some(CdpViewport {
                x: bb.x + sx,
                y: bb.y + sy,
                width: bb.width.max(1.0),
                height: bb.height.max(1.0),
                scale: 1.0,
            });
            params.capture_beyond_viewport = Some(true);
        } else if spec.full_page {
            let metrics = self
                .page
                .execute(GetLayoutMetricsParams::default())
                .await
                .map_err(|e| map_cdp(e, "layout metrics"))?;
            let Rect { width, height, .. } = metrics.result.css_content_size;
            params.clip = Some(CdpViewport {
                x: 0.0,
                y: 0.0,
                width: width.max(1.0),
                height: height.max(1.0),
                scale: 1.0,
            });
            params.capture_beyond_viewport = Some(true);
        }
        let response = self
            .page
            .execute(params)
            .instrument(common::phase!("capture.screenshot"))
            .await
            .map_err(|e| map_cdp(e, "screenshot"))?;
        let _decode = common::phase!("capture.decode").entered();
        decode_base64(response.result.data.as_ref())
    }
}

fn decode_base64(data: &str) -> Result<Vec<u8>, RunnerError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| RunnerError::Internal(anyhow::anyhow!("capture data: {e}")))
}
