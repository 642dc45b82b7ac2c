//! Forwarding between nodes. Every node can answer every session's REST commands: when the
//! session is live on another node's runner (the handler answers 421 with the `runner_id`), the
//! request is sent on to that runner's node (its registered address) and its answer returned.
//!
//! Forwarding needs `DRIFTSTACK_CLUSTER_TOKEN` (the same on every node): the forwarded request
//! carries it in `x-driftstack-forwarded`, which the receiving node checks in constant time, so it
//! neither forwards again (no loops) nor counts or rate-limits the call a second time. The
//! client's own credential goes along and is checked again by the receiving node; its
//! `Idempotency-Key` does not (the first node already holds it). An owner node that cannot be
//! reached answers 503 with `retry-after`: it is restarting, or it is dead and its sessions are
//! about to be failed.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use crate::{
    error::{ApiError, problem_for_status},
    state::AppState,
};

pub const FORWARDED: HeaderName = HeaderName::from_static("x-driftstack-forwarded");

/// Headers of the client's request that travel with it.
const PASSED_ON: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static("x-account-id"),
];

/// Headers of the owner's answer that travel back.
const PASSED_BACK: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
];

/// Whether the request was forwarded by another node of this cluster (a valid token).
pub fn is_forwarded(state: &AppState, headers: &HeaderMap) -> bool {
    match (state.config.cluster_token.as_ref(), headers.get(&FORWARDED)) {
        (Some(token), Some(given)) => bool::from(token.expose().as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

pub async fn forward_misdirected(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let eligible = state.config.cluster_token.is_some()
        && req.uri().path().starts_with("/v1/sessions/")
        && !req.headers().contains_key(&FORWARDED);
    if !eligible {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut passed = HeaderMap::new();
    for name in PASSED_ON {
        if let Some(v) = req.headers().get(&name) {
            passed.insert(name, v.clone());
        }
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return problem_for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response();
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.status() != StatusCode::MISDIRECTED_REQUEST {
        return response;
    }
    // The handler names the runner in the problem.
    let (head, answer) = response.into_parts();
    let Ok(answer) = to_bytes(answer, 64 * 1024).await else {
        return problem_for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    let runner = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|p| p["runner_id"].as_str().and_then(|r| r.parse().ok()));
    let address = match runner {
        Some(id) => runner::registry::RunnerRegistry::new(state.db.clone())
            .get(&id)
            .await
            .ok()
            .filter(|r| r.state == runner::registry::RunnerState::Active)
            .and_then(|r| r.address),
        None => None,
    };
    let Some(address) = address else {
        return Response::from_parts(head, Body::from(answer));
    };
    let Some(token) = state.config.cluster_token.as_ref() else {
        return Response::from_parts(head, Body::from(answer));
    };
    let Ok(token) = HeaderValue::from_str(token.expose()) else {
        return Response::from_parts(head, Body::from(answer));
    };
    passed.insert(FORWARDED, token);
    let sent = state
        .http
        .request(method, format!("{address}{path}"))
        .headers(passed)
        .body(bytes)
        .send()
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(err) => {
            tracing::warn!(%address, error = %err, "the session's node cannot be reached");
            return ApiError::unavailable(
                "The node running this session cannot be reached right now; retry shortly (if \
                 it is gone, the session will be marked failed).",
                2,
            )
            .into_response();
        }
    };
    let status = reply.status();
    let mut headers = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(v) = reply.headers().get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let body = reply.bytes().await.unwrap_or_default();
    let mut out = (status, body).into_response();
    out.headers_mut().extend(headers);
    out
}
