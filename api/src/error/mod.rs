//! The one error type that becomes an HTTP response: RFC 9457 `application/problem+json`.
//!
//! Every failure a handler can meet is turned into an [`ApiError`] here, with a stable machine
//! `code`, a human `title` and `detail`, the request id as `instance`, and for 422s an `errors` map
//! of field → message. Server errors are logged once, in this module, with their cause chain; the
//! client only sees an opaque detail — never a stack trace, SQL text or an internal path.

pub mod domain;

use std::collections::BTreeMap;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use common::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://driftstack.dev/problems/";

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware.
    pub static REQUEST_ID: String;
    /// The client address and user agent of the request being served (for the audit log).
    pub static REQUEST_ORIGIN: (Option<String>, Option<String>);
}

/// The client address and user agent of the request being served, if any.
pub fn current_origin() -> (Option<String>, Option<String>) {
    REQUEST_ORIGIN.try_with(Clone::clone).unwrap_or_default()
}

/// The current request's id, if called while serving a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; its last segment equals `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request id (also in the `x-request-id` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A stable machine-readable code, e.g. `not_found` or `concurrency_limit_exceeded`.
    pub code: String,
    /// Field → message, present on validation failures (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
    /// Seconds to wait before retrying, on 429 and 503.
    #[serde(skip_serializing_if = "Option::is_none", rename = "retryAfterSeconds")]
    pub retry_after_seconds: Option<u64>,
    /// Problem-specific members (for example `failed_action` on `action_failed`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A failure on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// The rarer members, boxed to keep `Result<_, ApiError>` small.
    pub extra: Option<Box<Extra>>,
    /// The cause of a server error, logged and never shown.
    pub source: Option<anyhow::Error>,
}

#[derive(Debug, Default)]
pub struct Extra {
    pub errors: Option<BTreeMap<String, String>>,
    pub retry_after: Option<u64>,
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
            source: None,
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Adds a problem-specific member.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra()
            .extensions
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }

    /// Sets `retry-after` (header and `retryAfterSeconds`).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.extra().retry_after = Some(seconds);
        self
    }

    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.retry_after)
    }

    /// Replaces the machine code, keeping status and detail.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// A missing object, or one that belongs to another account (never distinguished).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such {what}."),
        )
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// A 422 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(field.into(), message.into());
        Self::validation(errors)
    }

    /// A 422 naming every invalid field.
    pub fn validation(errors: BTreeMap<String, String>) -> Self {
        let detail = match errors.len() {
            1 => "One field is invalid.".to_owned(),
            n => format!("{n} fields are invalid."),
        };
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        );
        err.extra().errors = Some(errors);
        err
    }

    pub fn too_many(code: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, detail).retry_after(retry_after)
    }

    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            detail,
        )
        .retry_after(retry_after)
    }

    /// An unexpected failure: logged with its cause, answered with an opaque 500.
    pub fn internal(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side. Quote the instance id if you contact support.",
            )
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("{TYPE_BASE}{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: current_request_id(),
            code: self.code.to_owned(),
            errors: self.extra.as_ref().and_then(|e| e.errors.clone()),
            retry_after_seconds: self.retry_after_seconds(),
            extensions: self.extra.as_ref().and_then(|e| e.extensions.clone()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict => {
                ApiError::conflict("conflict", "This conflicts with an existing object.")
            }
            StoreError::Unavailable(source) => ApiError {
                source: Some(anyhow::Error::new(source)),
                ..ApiError::unavailable("The database is unavailable; retry shortly.", 2)
            },
            StoreError::Internal(source) => ApiError::internal(source),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::internal(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.code, error = ?source, "request failed")
                }
                None => tracing::error!(code = self.code, detail = %self.detail, "request failed"),
            }
        } else {
            tracing::debug!(
                code = self.code,
                status = self.status.as_u16(),
                "request refused"
            );
        }
        problem_response(&self.problem(), self.retry_after_seconds())
    }
}

/// Renders a problem document with the right content type (and `retry-after` when given).
pub fn problem_response(problem: &Problem, retry_after: Option<u64>) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The problem to send for a bare status produced outside our handlers (router fallbacks,
/// tower-http layers, extractor rejections).
pub fn problem_for_status(status: StatusCode) -> ApiError {
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "No route matches this path."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This path does not accept this method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long."),
        StatusCode::BAD_REQUEST => ("bad_request", "The request is malformed."),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication is required."),
        StatusCode::FORBIDDEN => ("forbidden", "This is not allowed."),
        s if s.is_server_error() => ("internal_error", "Something went wrong on our side."),
        _ => ("error", "The request failed."),
    };
    ApiError::new(status, code, detail)
}
