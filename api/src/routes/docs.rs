//! The API reference at `/docs/`: Scalar's renderer (vendored in `vendor/scalar`, pinned) over
//! `/openapi.json`, both served by this binary — the docs work on an air-gapped install. The
//! page loads no fonts or scripts from elsewhere (`withDefaultFonts: false`, telemetry and the
//! "Ask AI" agent off) and its CSP says so.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

const SCALAR: &[u8] = include_bytes!("../../../vendor/scalar/api-reference-1.72.1.standalone.js");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Driftstack API reference</title>
</head>
<body>
  <script id="api-reference" data-url="/openapi.json"
    data-configuration='{"withDefaultFonts": false, "hideClientButton": true, "telemetry": false, "agent": {"disabled": true}}'></script>
  <script src="/docs/scalar.js"></script>
</body>
</html>
"#;

/// Scripts and data from this origin only; Scalar styles its page inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(page))
        .route("/docs/scalar.js", get(script))
}

fn with(content_type: &'static str, cache: &'static str, body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
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
    r
}

async fn page() -> Response {
    with("text/html; charset=utf-8", "no-cache", PAGE)
}

async fn script() -> Response {
    // The file name carries no version, so revalidate; it changes only with the binary.
    with(
        "text/javascript; charset=utf-8",
        "public, max-age=3600",
        SCALAR,
    )
}
