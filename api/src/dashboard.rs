//! The dashboard: a single-page app (plain ES modules in `dashboard/`, no build step) embedded in
//! the binary and served at `/`. It talks only to the public `/v1` API with a dashboard token.
//!
//! The app's own paths (`/login`, `/sessions/…`, the links in mails) all answer `index.html`;
//! assets live under `/assets/`. Every answer carries a strict Content-Security-Policy: scripts
//! and connections only from this origin, images also from `data:`/`blob:` (QR codes, screencast
//! frames), no framing. Styles may also be inline: the session replay (rrweb-player) sizes and
//! scales the replayed page with style attributes and rebuilds its stylesheets inside a sandboxed,
//! script-less iframe; scripts stay `'self'` only.

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::error::problem_for_status;

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/ui.js"),
    ),
    (
        "screens.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/screens.js"),
    ),
    (
        "onboarding.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/onboarding.js"),
    ),
    (
        "sessionfacts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/sessionfacts.js"),
    ),
    (
        "sessionend.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/sessionend.js"),
    ),
    (
        "usagechart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/usagechart.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../dashboard/style.css"),
    ),
    (
        "liveview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/liveview.js"),
    ),
    // The live-link page's own (`routes::live_page`).
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../dashboard/live.js"),
    ),
    (
        "live.css",
        "text/css; charset=utf-8",
        include_bytes!("../../dashboard/live.css"),
    ),
    // Vendored, pinned (vendor/rrweb/README.md): the session page's replay.
    (
        "rrweb-player.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../vendor/rrweb/rrweb-player-2.1.6.min.js"),
    ),
    (
        "rrweb-player.css",
        "text/css; charset=utf-8",
        include_bytes!("../../vendor/rrweb/rrweb-player-2.1.6.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../dashboard/index.html");

/// First path segments that belong to the app (each answers `index.html`).
pub const APP_PATHS: &[&str] = &[
    "login",
    "signup",
    "verify-email",
    "magic-link",
    "password-reset",
    "accept-invite",
    "sessions",
    "profiles",
    "keys",
    "webhooks",
    "usage",
    "audit",
    "team",
    "billing",
    "settings",
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The routes: `/`, `/assets/{file}` and the app's paths.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset));
    for path in APP_PATHS {
        router = router
            .route(&format!("/{path}"), get(index))
            .route(&format!("/{path}/{{*rest}}"), get(index));
    }
    router
}

fn headers(content_type: &'static str, etag: &str, cache: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h
}

/// A strong validator: the first 16 hex digits of the content's SHA-256.
fn etag(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn respond(request: &HeaderMap, content_type: &'static str, bytes: &'static [u8]) -> Response {
    let tag = etag(bytes);
    // Revalidate every time: assets change with the binary, and a 304 is cheap.
    let h = headers(content_type, &tag, "no-cache");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    (h, bytes).into_response()
}

async fn index(request: HeaderMap) -> Response {
    respond(&request, "text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => respond(&request, content_type, bytes),
        None => problem_for_status(StatusCode::NOT_FOUND).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_app_imports_is_served() {
        for (name, _, bytes) in ASSETS {
            let text = String::from_utf8_lossy(bytes);
            for import in text.split("from \"./").skip(1) {
                let target = import.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {target}, which is not embedded"
                );
            }
        }
        let index = String::from_utf8_lossy(INDEX);
        let live = include_str!("../../dashboard/live.html");
        for (name, _, _) in ASSETS {
            if name.ends_with(".css") || *name == "app.js" || *name == "live.js" {
                let link = format!("/assets/{name}");
                assert!(
                    index.contains(&link) || live.contains(&link),
                    "{name} not linked"
                );
            }
        }
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
