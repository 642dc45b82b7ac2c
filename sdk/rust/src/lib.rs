//! A typed async client for the Driftstack API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), driftstack_sdk::Error> {
//! use driftstack_sdk::{CaptureFormatBody, CaptureRequest, Client, NavigateRequest};
//!
//! let ds = Client::new("http://127.0.0.1:8080", "ds_live_…");
//! let session = ds.create_session(None).await?;
//! let nav = NavigateRequest { url: "https://example.com".into(), wait_until: None, timeout_ms: None };
//! ds.navigate(&session.id, &nav).await?;
//! let capture = CaptureRequest { format: CaptureFormatBody::Png, ..CaptureRequest::png() };
//! let png: Vec<u8> = ds.capture(&session.id, &capture).await?;
//! ds.release_session(&session.id).await?;
//! # let _ = png; Ok(()) }
//! ```
//!
//! Every operation of `openapi.json` is a method (generated into `generated.rs` by
//! `sdk/rust/generate.py`; the repository's tests fail when it drifts from the spec), except the
//! two WebSocket routes (use `connect_url` with a CDP client) and Stripe's webhook.
//!
//! This module owns what is not generated: the transport, [`Error`] (problem+json answers as a
//! typed error), retries (GET/PUT/DELETE and every POST — each POST carries a fresh
//! `Idempotency-Key`, kept across its retries — on 429/503 after `retry-after` and on connection
//! errors), cursor pagination streams, and [`webhooks::verify`].

mod generated;
pub mod webhooks;

use std::{collections::BTreeMap, time::Duration};

pub use generated::*;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Whether another page follows (fetch it with `starting_after` = the last id).
    pub has_more: bool,
}

/// An RFC 9457 problem answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// A stable machine-readable code such as `not_found` or `validation_failed`.
    #[serde(default)]
    pub code: String,
    /// The request id.
    #[serde(default)]
    pub instance: Option<String>,
    /// Field → message, on validation failures (422).
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    /// Problem-specific members.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem.
    #[error("{} {}: {}", .status, .problem.code, .problem.detail)]
    Api {
        status: u16,
        problem: Box<Problem>,
        retry_after: Option<u64>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer did not have the documented shape.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl Error {
    /// The HTTP status of a problem answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem's `code` (e.g. `not_found`).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    /// The problem itself.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// One credential (API key or dashboard token) against one server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    account: Option<String>,
    max_retries: u32,
    page_size: u32,
}

impl Client {
    pub fn new(base_url: &str, token: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            account: None,
            max_retries: 3,
            page_size: 100,
        }
    }

    /// How often a retryable failure is retried (default 3).
    pub fn with_max_retries(mut self, n: u32) -> Client {
        self.max_retries = n;
        self
    }

    /// The page size the `*_all` streams ask for (1–100, default 100).
    pub fn with_page_size(mut self, n: u32) -> Client {
        self.page_size = n.clamp(1, 100);
        self
    }

    /// For dashboard tokens: act in this account (`X-Account-Id`).
    pub fn with_account(mut self, account_id: &str) -> Client {
        self.account = Some(account_id.to_owned());
        self
    }

    /// Sends one request with retries; the answer if it is a success. The body is `body` as
    /// JSON, or `content` as raw bytes (an upload).
    async fn send<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        body: Option<&B>,
        content: Option<&[u8]>,
    ) -> Result<reqwest::Response, Error> {
        let idempotency_key =
            (method == Method::POST).then(|| uuid::Uuid::now_v7().simple().to_string());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("accept", "application/json");
            if let Some(account) = &self.account {
                req = req.header("x-account-id", account);
            }
            if let Some(key) = &idempotency_key {
                req = req.header("idempotency-key", key);
            }
            if let Some(q) = query {
                req = req.query(q);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(c) = content {
                req = req
                    .header("content-type", "application/octet-stream")
                    .body(c.to_vec());
            }
            let retries_left = attempt <= self.max_retries;
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE;
                    if retryable && retries_left {
                        tokio::time::sleep(backoff(retry_after, attempt)).await;
                        continue;
                    }
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let mut problem: Problem =
                        serde_json::from_slice(&bytes).unwrap_or_else(|_| Problem {
                            title: String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                                .into_owned(),
                            ..Problem::default()
                        });
                    problem.status = status.as_u16();
                    return Err(Error::Api {
                        status: status.as_u16(),
                        problem: Box::new(problem),
                        retry_after,
                    });
                }
                Err(err) if retries_left && (err.is_connect() || err.is_request()) => {
                    tokio::time::sleep(backoff(None, attempt)).await;
                }
                Err(err) => return Err(Error::Transport(err)),
            }
        }
    }

    async fn json<T: DeserializeOwned, Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let bytes = self
            .send(method, path, query, body, None)
            .await?
            .bytes()
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    /// A JSON answer to a request whose body is raw bytes.
    async fn json_content<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        content: &[u8],
    ) -> Result<T, Error> {
        let bytes = self
            .send(method, path, query, None::<&()>, Some(content))
            .await?
            .bytes()
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    async fn bytes<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<Vec<u8>, Error> {
        Ok(self
            .send(method, path, query, body, None)
            .await?
            .bytes()
            .await?
            .to_vec())
    }

    async fn text<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<String, Error> {
        Ok(self
            .send(method, path, query, body, None)
            .await?
            .text()
            .await?)
    }

    async fn empty<Q: Serialize + ?Sized, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: String,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<(), Error> {
        self.send(method, path, query, body, None).await.map(drop)
    }

    /// Every item of a list, page after page, as a stream. `query`'s own `limit` and
    /// `starting_after` are replaced.
    fn paginate<'a, T: DeserializeOwned + 'a, Q: Serialize + 'a>(
        &'a self,
        path: String,
        query: Q,
    ) -> impl futures::Stream<Item = Result<T, Error>> + 'a {
        struct State<Q> {
            query: Q,
            cursor: Option<String>,
            buffer: std::collections::VecDeque<serde_json::Value>,
            done: bool,
        }
        let start = State {
            query,
            cursor: None,
            buffer: Default::default(),
            done: false,
        };
        futures::stream::try_unfold(start, move |mut st| {
            let path = path.clone();
            async move {
                loop {
                    if let Some(item) = st.buffer.pop_front() {
                        let value = serde_json::from_value(item)
                            .map_err(|e| Error::Decode(e.to_string()))?;
                        return Ok(Some((value, st)));
                    }
                    if st.done {
                        return Ok(None);
                    }
                    let mut q = serde_json::to_value(&st.query)
                        .map_err(|e| Error::Decode(e.to_string()))?;
                    if let Some(map) = q.as_object_mut() {
                        map.retain(|_, v| !v.is_null());
                        map.insert("limit".into(), self.page_size.into());
                        match &st.cursor {
                            Some(c) => map.insert("starting_after".into(), c.clone().into()),
                            None => map.remove("starting_after"),
                        };
                    }
                    let page: Page<serde_json::Value> = self
                        .json(Method::GET, path.clone(), Some(&q), None::<&()>)
                        .await?;
                    st.cursor = page
                        .data
                        .last()
                        .and_then(|v| v["id"].as_str())
                        .map(str::to_owned);
                    st.done = !page.has_more || st.cursor.is_none();
                    st.buffer.extend(page.data);
                }
            }
        })
    }
}

/// `retry-after` when the server gave one (at most a minute), else exponential from 0.5 s.
fn backoff(retry_after: Option<u64>, attempt: u32) -> Duration {
    match retry_after {
        Some(s) => Duration::from_secs(s.min(60)),
        None => Duration::from_millis((500u64 << (attempt.min(5) - 1)).min(8000)),
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl CaptureRequest {
    /// A PNG of the viewport.
    pub fn png() -> CaptureRequest {
        CaptureRequest {
            format: CaptureFormatBody::Png,
            full_page: None,
            selector: None,
            quality: None,
            timeout_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("ses_0123"), "ses_0123");
        assert_eq!(encode("../a b"), "..%2Fa%20b");
    }

    #[test]
    fn backoff_honours_retry_after_and_grows() {
        assert_eq!(backoff(Some(2), 1), Duration::from_secs(2));
        assert_eq!(backoff(Some(600), 1), Duration::from_secs(60));
        assert!(backoff(None, 2) > backoff(None, 1));
    }

    #[test]
    fn problems_decode_with_their_extra_members() {
        let p: Problem = serde_json::from_str(
            r#"{"type":"t","title":"x","status":422,"detail":"d","code":"validation_failed",
                "errors":{"url":"bad"},"failed_action":2}"#,
        )
        .expect("problem");
        assert_eq!(p.errors["url"], "bad");
        assert_eq!(p.extra["failed_action"], 2);
    }
}
