//! The OpenAPI document: info, security schemes and shared schemas. Paths are collected from the
//! `#[utoipa::path]` annotations of every route as the router is built, so the spec and the router
//! cannot disagree about which routes exist.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Driftstack API",
        description = "Headless Chromium sessions on demand: create a session, drive it over REST \
                       or raw CDP, keep browser identities in profiles with snapshots.\n\n\
                       Authenticate with `Authorization: Bearer ds_live_…` (or `ds_test_…`). Errors \
                       are RFC 9457 `application/problem+json`. Every route's description names the \
                       permission it requires.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "system", description = "Health, readiness, version and metrics"),
        (name = "account", description = "The calling account"),
        (name = "api-keys", description = "API keys: create, list, rotate, revoke"),
        (name = "sessions", description = "Browser sessions: create, drive, capture, release; raw CDP"),
        (name = "webhooks", description = "Signed webhooks: endpoints, event catalog, deliveries, replay"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`ds_live_…`, `ds_test_…`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The configured `METRICS_TOKEN`"))
                    .build(),
            ),
        );
    }
}
