//! The page behind a live link: `GET /live/{token}`. The server checks the link when the page is
//! asked for — unknown answers 404, revoked, expired, already opened or its session ended 410,
//! each with a short page saying so — and otherwise serves a minimal page (`dashboard/live.html`
//! and its module) that exchanges the token for a viewer credential and shows the live view.
//! `frame-ancestors` is the account's `live-embedding` list (default `'none'`).

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::live_links::token_hash;
use crate::{state::AppState, store::live_links::Lookup};

const PAGE: &str = include_str!("../../../dashboard/live.html");

pub fn router() -> Router<AppState> {
    Router::new().route("/live/{token}", get(page))
}

/// The CSP of the live page and its explanations: this origin only, frames from `ancestors`.
fn csp(ancestors: &[String]) -> String {
    let frame = if ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {frame}"
    )
}

fn html(status: StatusCode, body: String, ancestors: &[String]) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match HeaderValue::from_str(&csp(ancestors)) {
        Ok(v) => {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
            if ancestors.is_empty() {
                h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            }
        }
        // Never served without a policy: the strictest one then.
        Err(_) => {
            if let Ok(v) = HeaderValue::from_str(&csp(&[])) {
                h.insert(header::CONTENT_SECURITY_POLICY, v);
            }
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
    response
}

/// A short page for a link that cannot be opened.
fn explanation(status: StatusCode, sentence: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Live link unavailable</title>\
         <link rel=\"stylesheet\" href=\"/assets/live.css\"><main class=\"gone\"><h1>This live link \
         cannot be opened</h1><p>{sentence}</p></main></html>"
    );
    html(status, body, &[])
}

async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if !token.starts_with("lvt_") || token.len() > 100 {
        return explanation(
            StatusCode::NOT_FOUND,
            "There is no live link at this address.",
        );
    }
    let now = state.clock.now_ms();
    match state.live_links.lookup(&token_hash(&token), now).await {
        Ok(Lookup::Usable(link)) => {
            let ancestors = state
                .live_links
                .frame_ancestors(&link.account_id)
                .await
                .unwrap_or_default();
            html(StatusCode::OK, PAGE.to_owned(), &ancestors)
        }
        Ok(Lookup::Gone(gone)) => explanation(StatusCode::GONE, gone.explain()),
        Ok(Lookup::Unknown) => explanation(
            StatusCode::NOT_FOUND,
            "There is no live link at this address.",
        ),
        Err(err) => {
            tracing::error!(error = %err, "a live link could not be looked up");
            explanation(
                StatusCode::SERVICE_UNAVAILABLE,
                "The live view is unavailable right now; try again in a moment.",
            )
        }
    }
}
