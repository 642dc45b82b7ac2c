//! The MCP server's way into the product: every tool call is one or more requests to the public
//! REST API, sent in process through the same router (and so the same credential checks, scopes,
//! caps, usage metering, audit, egress guard and routing to the session's node) with the caller's
//! own `Authorization`. A REST problem becomes a [`ToolError`] with the same `code`.

use std::net::SocketAddr;

use axum::{
    Router,
    body::{Body, Bytes, to_bytes},
    extract::ConnectInfo,
    http::{HeaderValue, Method, Request, StatusCode, header, request::Parts},
};
use serde_json::Value;
use tower::ServiceExt;

use crate::middleware::InProcess;

/// The largest REST answer a tool reads (a full-page screenshot of a long page).
const MAX_ANSWER: usize = 64 << 20;

/// A REST client for one MCP request, speaking as its caller.
#[derive(Clone)]
pub struct Rest {
    app: Router,
    authorization: HeaderValue,
    user_agent: Option<HeaderValue>,
    peer: Option<ConnectInfo<SocketAddr>>,
}

/// A successful REST answer.
pub struct Answer {
    pub content_type: String,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Result<Value, ToolError> {
        serde_json::from_slice(&self.body)
            .map_err(|_| ToolError::internal("the API answered with something other than JSON"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A tool call that failed: the REST problem's `code`, status and sentence (and the fields, for
/// a 422), or a problem with the tool's own arguments.
#[derive(Debug, Clone)]
pub struct ToolError {
    pub status: u16,
    pub code: String,
    pub detail: String,
    pub extra: serde_json::Map<String, Value>,
}

impl ToolError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut errors = serde_json::Map::new();
        errors.insert(field.to_owned(), Value::String(message.into()));
        let mut extra = serde_json::Map::new();
        extra.insert("errors".into(), Value::Object(errors));
        ToolError {
            status: 422,
            code: "validation_failed".into(),
            detail: "One argument is invalid.".into(),
            extra,
        }
    }

    pub fn internal(detail: &str) -> Self {
        ToolError {
            status: 500,
            code: "internal_error".into(),
            detail: detail.to_owned(),
            extra: serde_json::Map::new(),
        }
    }

    /// The text a model reads: the code, the sentence, and each invalid field.
    pub fn message(&self) -> String {
        let mut out = format!("{}: {}", self.code, self.detail);
        if let Some(Value::Object(errors)) = self.extra.get("errors") {
            for (field, why) in errors {
                out.push_str(&format!(
                    "\n- {field}: {}",
                    why.as_str().unwrap_or_default()
                ));
            }
        }
        if let Some(failed) = self.extra.get("failed_action")
            && let Some(reason) = failed.get("reason").and_then(Value::as_str)
        {
            out.push_str(&format!("\n- reason: {reason}"));
        }
        out
    }

    pub fn structured(&self) -> Value {
        let mut v = self.extra.clone();
        v.insert("code".into(), Value::String(self.code.clone()));
        v.insert("status".into(), Value::from(self.status));
        v.insert("detail".into(), Value::String(self.detail.clone()));
        Value::Object(v)
    }

    fn from_problem(status: StatusCode, body: &[u8]) -> Self {
        let problem: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut extra = problem.as_object().cloned().unwrap_or_default();
        let code = extra
            .remove("code")
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_else(|| "http_error".to_owned());
        let detail = extra
            .remove("detail")
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
        for k in ["type", "title", "status"] {
            extra.remove(k);
        }
        ToolError {
            status: status.as_u16(),
            code,
            detail,
            extra,
        }
    }
}

impl From<crate::error::ApiError> for ToolError {
    fn from(err: crate::error::ApiError) -> Self {
        let problem = err.problem();
        let extra = problem.extensions.unwrap_or_default();
        ToolError {
            status: problem.status,
            code: problem.code,
            detail: problem.detail,
            extra,
        }
    }
}

impl Rest {
    /// A client for the caller of `parts` (its `Authorization` is required and was checked by
    /// the `/mcp` gate).
    pub fn for_caller(app: Router, parts: &Parts) -> Option<Self> {
        Some(Rest {
            app,
            authorization: parts.headers.get(header::AUTHORIZATION)?.clone(),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ToolError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Answer, ToolError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, ToolError> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, ToolError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, self.authorization.clone());
        if let Some(ua) = &self.user_agent {
            req = req.header(header::USER_AGENT, ua.clone());
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req
            .body(body)
            .map_err(|_| ToolError::internal("the request could not be built"))?;
        req.extensions_mut().insert(InProcess);
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(peer);
        }
        let response = self
            .app
            .clone()
            .oneshot(req)
            .await
            .map_err(|_| ToolError::internal("the API did not answer"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|_| ToolError::internal("the API's answer could not be read"))?;
        if status.is_success() {
            Ok(Answer { content_type, body })
        } else {
            Err(ToolError::from_problem(status, &body))
        }
    }
}
