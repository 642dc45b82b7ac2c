//! Cross-cutting HTTP layers: request ids and request logging, metrics, turning every stray error
//! status into problem+json, and `Idempotency-Key` handling for POSTs.

use std::time::Instant;

use axum::{
    body::{Body, to_bytes},
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::{
    error::{ApiError, PROBLEM_JSON, REQUEST_ID, REQUEST_ORIGIN, problem_for_status},
    state::AppState,
    store::idempotency::Begin,
};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Responses larger than this are not stored for idempotent replay (the key is then forgotten).
const MAX_STORED_RESPONSE: usize = 1 << 20;

/// Gives every request an id (`req_…`, in the `x-request-id` response header and in problem
/// `instance`), a tracing span, one log line and the HTTP metrics.
pub async fn request_context(req: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let started = Instant::now();
    let origin = (
        req.extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        req.headers()
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), REQUEST_ORIGIN.scope(origin, next.run(req)))
        .instrument(common::phase!("request", method = %method, route = %route))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

/// Replaces any error response that is not already problem+json (router fallbacks, rejections of
/// axum and tower-http layers) with a problem document for its status. HTML pages meant for a
/// person (the live page's "link unavailable") stay as they are.
pub async fn problem_fallback(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| {
            ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || ct.as_bytes().starts_with(b"text/html")
        });
    if is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = problem_for_status(status).into_response();
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

/// Honours `Idempotency-Key` on authenticated POSTs: the same key and body within 24 hours get
/// the first response again (with `idempotent-replayed: true`); the same key with another body is a
/// 422 `idempotency_key_reused`; a duplicate while the first is still running is a 409.
/// Server errors, 429s and 503s are not stored, so a retry runs the request again.
///
/// Stored answers belong to the **credential** that caused them, with the scopes it held then:
/// another key of the account, or the same user after a role change, never sees them (the
/// request runs anew and meets the route's permission check). So an answer is replayed only to
/// a caller that passed that very check.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(req).await;
    };
    // Unauthenticated requests go on; the handler answers them with a 401.
    let principal = match req.extensions().get::<crate::auth::Principal>() {
        Some(p) => p.clone(),
        None => match state.auth.authenticate(req.headers()).await {
            Ok(p) => p,
            Err(_) => return next.run(req).await,
        },
    };
    let key = match raw_key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    let (mut parts, body) = req.into_parts();
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str().as_bytes());
    hash.update(b" ");
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    hash.update(target.as_bytes());
    hash.update(b"\n");
    let body = match read_for_hash(&state, &parts, &principal, body, &mut hash).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let request_hash = crate::apikey::hex(&hash.finalize());
    let account = principal.account_id.clone();
    let key = credential_scoped(&principal, &key);
    let now = state.clock.now_ms();
    let store = &state.idempotency;
    match store.begin(&account, &key, &request_hash, now).await {
        Err(err) => return ApiError::from(err).into_response(),
        Ok(Begin::Mismatch) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request.",
            )
            .into_response();
        }
        Ok(Begin::InFlight) => {
            return ApiError::conflict(
                "idempotency_request_in_flight",
                "A request with this Idempotency-Key is still being processed.",
            )
            .into_response();
        }
        Ok(Begin::Replay {
            status,
            content_type,
            body,
        }) => {
            // Stored answers are sealed: they can hold a new API key or signing secret.
            let Ok(body) = state.idempotent_answers.open_bytes(&body) else {
                return ApiError::conflict(
                    "idempotency_key_unreadable",
                    "The answer stored for this Idempotency-Key can no longer be read (the \
                     master key changed); retry with a new key.",
                )
                .into_response();
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            return response;
        }
        Ok(Begin::Started) => {}
    }

    parts.extensions.insert(principal);
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::SWITCHING_PROTOCOLS;
    if transient {
        if let Err(err) = store.abandon(&account, &key).await {
            tracing::warn!(error = %err, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(err) => {
            tracing::warn!(error = %err, "response body failed while being stored");
            if let Err(err) = store.abandon(&account, &key).await {
                tracing::warn!(error = %err, "could not release an idempotency key");
            }
            return ApiError::internal(anyhow::anyhow!("response body failed")).into_response();
        }
    };
    let sealed = (bytes.len() <= MAX_STORED_RESPONSE)
        .then(|| state.idempotent_answers.seal_bytes(&bytes).ok())
        .flatten();
    let stored = if let Some(sealed) = sealed {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        store
            .complete(&account, &key, status.as_u16(), content_type, &sealed)
            .await
    } else {
        store.abandon(&account, &key).await
    };
    if let Err(err) = stored {
        tracing::warn!(error = %err, "could not store an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Reads a request's body into `hash` and hands it on: in memory up to the body limit, or, for a
/// file upload, spooled to disk up to the plan's per-file limit.
async fn read_for_hash(
    state: &AppState,
    parts: &axum::http::request::Parts,
    principal: &crate::auth::Principal,
    body: Body,
    hash: &mut Sha256,
) -> Result<Body, ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if route.is_some_and(|r| crate::spool::FILE_BODIES.contains(&r)) {
        // Nothing is spooled for a caller who may not upload, or for a session that is not
        // the caller's or has ended: the body goes on unread and the request is refused
        // further in.
        let session = parts
            .uri
            .path()
            .split('/')
            .nth(3)
            .and_then(|id| id.parse().ok());
        let may = principal
            .scopes
            .contains(crate::permissions::Scope::SessionsWrite);
        let live = match &session {
            Some(id) if may => !matches!(
                crate::routing::locate(state, &principal.account_id, id).await,
                crate::routing::Placement::Unknown | crate::routing::Placement::Ended
            ),
            _ => false,
        };
        if !live {
            return Ok(body);
        }
        let limit = state
            .tiers
            .get(&principal.tier)
            .map_or(0, |t| t.max_upload_bytes);
        let dir = state.config.data_dir.join("spool");
        return crate::spool::to_disk(&dir, body, limit, hash).await;
    }
    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| problem_for_status(StatusCode::PAYLOAD_TOO_LARGE))?;
    hash.update(&bytes);
    Ok(Body::from(bytes))
}

/// The stored form of an `Idempotency-Key`: bound to the credential and its scopes.
fn credential_scoped(principal: &crate::auth::Principal, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(principal.actor.id().as_bytes());
    h.update(b"\n");
    // A dashboard answer belongs to the sign-in that caused it, not to every token of the user.
    if let Some(d) = &principal.dashboard {
        h.update(d.session_id.as_bytes());
    }
    h.update(b"\n");
    h.update(principal.scopes.to_stored().as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    crate::apikey::hex(&h.finalize())
}

pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Marks a request the MCP server sends on a caller's behalf: its `/mcp` request was already
/// rate-limited, so [`limits`] counts it as an API call without limiting it again.
#[derive(Clone, Copy, Debug)]
pub struct InProcess;

/// Resolves the caller once for the layers below, applies its rate limit (by tier; headers on
/// every answer, 429 over the limit) and counts the API call for usage. Requests without a valid
/// credential pass untouched (the handler answers 401, or they are public).
pub async fn limits(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let enabled = state.config.rate_limits || state.config.metering;
    if !enabled || crate::auth::bearer_token(req.headers()).is_none() {
        return next.run(req).await;
    }
    let Ok(principal) = state.auth.authenticate(req.headers()).await else {
        return next.run(req).await;
    };
    // Forwarded by another node of the cluster, which already counted and limited the call.
    if crate::routing::is_forwarded(&state, req.headers()) {
        req.extensions_mut().insert(principal);
        return next.run(req).await;
    }
    let verdict = if req.extensions().get::<InProcess>().is_some() {
        None
    } else {
        match rate_check(&state, &principal) {
            Ok(v) => v,
            Err(refused) => return *refused,
        }
    };
    // The dashboard's own requests (a signed-in person, polling) are not billable API calls.
    if state.config.metering && principal.dashboard.is_none() {
        state.usage.count_api_call(&principal.account_id);
    }
    req.extensions_mut().insert(principal);
    let mut response = next.run(req).await;
    if let Some(v) = verdict {
        rate_headers(&mut response, &v);
    }
    response
}

/// Takes one request from the caller's rate limit: the verdict (none when limits are off), or
/// the 429 to answer.
pub fn rate_check(
    state: &AppState,
    principal: &crate::auth::Principal,
) -> Result<Option<crate::ratelimit::Verdict>, Box<Response>> {
    if !state.config.rate_limits {
        return Ok(None);
    }
    let Some(tier) = state.tiers.get(&principal.tier) else {
        return Ok(None);
    };
    let v = state.limiter.check(
        principal.actor.id(),
        tier.rate_limit_per_second,
        tier.rate_limit_burst,
    );
    if v.allowed {
        return Ok(Some(v));
    }
    let mut r = ApiError::too_many(
        "rate_limited",
        format!(
            "Too many requests for this credential; your plan allows bursts of {} and a steady \
             rate per second. Retry after the indicated time.",
            v.limit
        ),
        v.reset_seconds,
    )
    .into_response();
    rate_headers(&mut r, &v);
    Err(Box::new(r))
}

/// The `x-ratelimit-*` headers of a verdict.
pub fn rate_headers(r: &mut Response, v: &crate::ratelimit::Verdict) {
    let h = r.headers_mut();
    h.insert(X_RATELIMIT_LIMIT, HeaderValue::from(v.limit));
    h.insert(X_RATELIMIT_REMAINING, HeaderValue::from(v.remaining));
    h.insert(X_RATELIMIT_RESET, HeaderValue::from(v.reset_seconds));
}

/// The layer: answers of deprecated routes get the headers, and their calls are counted.
pub async fn deprecation(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let found = matched
        .as_deref()
        .and_then(|path| crate::deprecation::find(state.deprecated, req.method().as_str(), path));
    let Some(d) = found else {
        return next.run(req).await;
    };
    // Only deprecated calls pay for this: who is calling, for the counter.
    let actor = match state.auth.authenticate(req.headers()).await {
        Ok(p) => (p.account_id.to_string(), p.actor.id().to_owned()),
        Err(_) => (String::new(), "anonymous".to_owned()),
    };
    let mut response = next.run(req).await;
    crate::deprecation::add_headers(d, &state.public_url, response.headers_mut());
    let now = state.clock.now_ms();
    if let Err(err) = state
        .deprecated_calls
        .count(&actor.0, &actor.1, d.method, d.path, now)
        .await
    {
        tracing::warn!(error = %err, "a deprecated call could not be counted");
    }
    response
}
