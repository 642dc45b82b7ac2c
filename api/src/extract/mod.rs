//! Extractors that turn untrusted input into validated values, or into a precise problem:
//! a JSON body (415 for a wrong content type, 400 for malformed JSON, 422 naming the field for
//! wrong types, missing or unknown fields, and for values that break a rule), a query string, a
//! prefixed id in the path, and list (cursor pagination) parameters; and the caller
//! ([`credentials`]).

pub mod credentials;
mod serde_text;

pub use credentials::Require;

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::ApiError;

/// Field-level rules beyond what the type system says.
pub trait Validate {
    fn validate(&self, v: &mut Violations);
}

/// Collects field → message pairs while validating.
#[derive(Default, Debug)]
pub struct Violations(BTreeMap<String, String>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// Turns a serde_path_to_error failure into a field → message pair.
fn field_error<E: std::fmt::Display>(err: &serde_path_to_error::Error<E>) -> (String, String) {
    let message = err.inner().to_string();
    let path = err.path().to_string();
    let field = if path == "." || path.is_empty() {
        // "missing field `url`" and "unknown field `urll`, expected …" name the field themselves.
        message
            .split('`')
            .nth(1)
            .filter(|_| {
                message.starts_with("missing field") || message.starts_with("unknown field")
            })
            .map(str::to_owned)
            .unwrap_or_else(|| "body".to_owned())
    } else {
        path
    };
    let message = message.split(" at line ").next().unwrap_or(&message);
    (field, serde_text::humanize(message))
}

/// A JSON request body, deserialized strictly and validated. An empty body counts as `{}`.
pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| crate::error::problem_for_status(rejection.status()))?;
        // No body at all counts as `{}`, and so does `null` (the optional bodies are documented
        // as "object or null"); a body of only whitespace is not JSON.
        let bytes: &[u8] = if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            b"{}"
        } else {
            let is_json = content_type
                .as_deref()
                .is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"));
            if !is_json {
                return Err(crate::error::problem_for_status(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ));
            }
            &bytes
        };
        // Every body is an object: serde would also read a struct from an array of its fields
        // (`[null, null]`), which is not a shape this API documents.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{')
            && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
        {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
            if err.inner().is_syntax() || err.inner().is_eof() {
                ApiError::bad_request(
                    "malformed_json",
                    format!("The body is not valid JSON: {}", err.inner()),
                )
            } else {
                let (field, message) = field_error(&err);
                ApiError::invalid(field, message)
            }
        })?;
        let mut violations = Violations::default();
        value.validate(&mut violations);
        violations.into_result()?;
        Ok(ValidatedJson(value))
    }
}

/// A query string, deserialized and validated like a body.
pub struct ValidatedQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidatedQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
            let (field, message) = field_error(&err);
            ApiError::invalid(field, message)
        })?;
        let mut violations = Violations::default();
        value.validate(&mut violations);
        violations.into_result()?;
        Ok(ValidatedQuery(value))
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Cursor pagination parameters shared by every list route.
#[derive(Debug, Clone, Default, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// How many items to return, 1–100 (default 20).
    pub limit: Option<i64>,
    /// Return items after this id (the last id of the previous page).
    pub starting_after: Option<String>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: i64 = 20;
    pub const MAX_LIMIT: i64 = 100;

    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }

    /// The cursor parsed as the listed id type (422 when it is not one).
    pub fn cursor<I: std::str::FromStr>(&self) -> Result<Option<I>, ApiError> {
        self.starting_after
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|_| ApiError::invalid("starting_after", "is not an id of this list"))
            })
            .transpose()
    }
}

impl Validate for ListParams {
    fn validate(&self, v: &mut Violations) {
        if let Some(limit) = self.limit {
            v.check(
                (1..=Self::MAX_LIMIT).contains(&limit),
                "limit",
                "must be between 1 and 100",
            );
        }
    }
}

/// Parses a prefixed id taken from the path; a malformed id is a 422 naming `id`.
pub fn parse_path_id<I: std::str::FromStr>(raw: &str) -> Result<I, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid("id", "is not a valid id for this resource"))
}
