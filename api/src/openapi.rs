//! The OpenAPI document: info, security schemes and shared schemas. Paths are collected from the
//! `#[utoipa::path]` annotations of every route as the router is built, so the spec and the router
//! cannot disagree about which routes exist.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::error::Problem;

/// The API's own semantic version (`info.version`, `GET /v1/version`): minor for additive
/// changes, major for breaking ones (docs/VERSIONING.md).
pub const API_VERSION: &str = "1.0.0";

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
        (name = "auth", description = "Dashboard sign-in: signup, verification, login, MFA challenge, step-up, magic links, password reset, refresh, logout"),
        (name = "account", description = "The calling account, its settings and two-factor authentication"),
        (name = "api-keys", description = "API keys: create, list, rotate, revoke"),
        (name = "sessions", description = "Browser sessions: create, drive, capture, release; raw CDP"),
        (name = "profiles", description = "Persistent browser identities: fingerprint and saved state, snapshots, restore, clone"),
        (name = "team", description = "Team members, roles and invitations"),
        (name = "billing", description = "Plans, Stripe Checkout and Billing Portal, Stripe webhooks"),
        (name = "usage", description = "Usage meters against your plan's caps"),
        (name = "audit", description = "The account's tamper-evident audit log"),
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

/// The problems any operation may answer besides its own: a bad or missing credential (401),
/// a missing permission (403), an unknown id (404), a slow request (408), an oversized body
/// (413), the wrong content type (415), invalid fields (422), a rate limit (429), and the
/// server's own trouble (500, 503). Added to every operation that does not document them itself,
/// so clients and fuzzers know every status they can meet.
pub fn add_common_problems(api: &mut utoipa::openapi::OpenApi) {
    add_id_patterns(api);
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const COMMON: &[(&str, &str)] = &[
        ("400", "The request is malformed"),
        ("401", "No valid credential"),
        (
            "403",
            "The credential lacks a permission, or a step-up is needed",
        ),
        ("404", "No such object (or it belongs to another account)"),
        ("408", "The request took too long"),
        ("413", "The body is too large"),
        ("415", "The body is not JSON"),
        ("422", "A field is invalid (see `errors`)"),
        ("429", "A rate limit was hit (see `retry-after`)"),
        ("500", "Something went wrong on our side"),
        (
            "503",
            "A dependency (database, browsers) is unavailable (see `retry-after`)",
        ),
    ];
    for item in api.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            for (status, description) in COMMON {
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(*description)
                            .content(
                                "application/problem+json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Problem")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
}

/// The id prefix of the items each cursor-paginated list returns (its `starting_after`).
const LIST_ITEM_PREFIXES: &[(&str, &str)] = &[
    ("/v1/api-keys", "key_"),
    ("/v1/audit-log", "aud_"),
    ("/v1/profiles", "prof_"),
    ("/v1/profiles/{id}/snapshots", "snap_"),
    ("/v1/sessions", "ses_"),
    ("/v1/sessions/{id}/downloads", "dl_"),
    ("/v1/sessions/{id}/logs", "log_"),
    ("/v1/team/invites", "inv_"),
    ("/v1/webhooks/deliveries", "dlv_"),
    ("/v1/webhooks/endpoints", "whe_"),
];

fn id_pattern(prefix: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::{ObjectBuilder, schema::Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{prefix}[0-9a-f]{{32}}$")))
        .into()
}

/// States in the spec the limits the server enforces on the parameters every route shares, so
/// generated clients and fuzzers send what the server accepts: path ids documented as "`prof_…`"
/// get their pattern (prefix and 32 hex digits), and so do cursors; `limit` is 1–100;
/// `since`/`until` are RFC 3339 times; `Idempotency-Key` is 1–255 visible ASCII characters;
/// the audit log's text filters are 1–200 characters.
fn add_id_patterns(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        KnownFormat, ObjectBuilder, SchemaFormat, path::ParameterIn, schema::Type,
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let list_prefix = LIST_ITEM_PREFIXES
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, prefix)| *prefix);
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            for p in op.parameters.iter_mut().flatten() {
                let utoipa::openapi::RefOr::T(p) = p else {
                    continue;
                };
                match (&p.parameter_in, p.name.as_str()) {
                    (ParameterIn::Query, "limit") => {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                                .minimum(Some(1))
                                .maximum(Some(100))
                                .into(),
                        );
                        continue;
                    }
                    (ParameterIn::Query, "starting_after") => {
                        if let Some(prefix) = list_prefix {
                            p.schema = Some(id_pattern(prefix));
                        }
                        continue;
                    }
                    (ParameterIn::Query, "status") => {
                        let values: &[&str] = match path.as_str() {
                            "/v1/sessions" => &["live", "all"],
                            "/v1/webhooks/deliveries" => {
                                &["pending", "failed", "delivered", "dead"]
                            }
                            _ => continue,
                        };
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(values.iter().copied()))
                                .into(),
                        );
                        continue;
                    }
                    (ParameterIn::Query, "endpoint_id") => {
                        p.schema = Some(id_pattern("whe_"));
                        continue;
                    }
                    (ParameterIn::Query, "since" | "until") => {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                                .into(),
                        );
                        continue;
                    }
                    (ParameterIn::Query, "action" | "actor" | "target") => {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .min_length(Some(1))
                                .max_length(Some(200))
                                .into(),
                        );
                        continue;
                    }
                    (ParameterIn::Header, name) if name.eq_ignore_ascii_case("idempotency-key") => {
                        p.schema = Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some("^[!-~]{1,255}$"))
                                .into(),
                        );
                        continue;
                    }
                    (ParameterIn::Path, _) => {}
                    _ => continue,
                }
                let prefix = p
                    .description
                    .as_deref()
                    .and_then(|d| d.strip_prefix('`'))
                    .and_then(|d| d.split_once("…`"))
                    .map(|(prefix, _)| prefix.to_owned());
                if let Some(prefix) = prefix.filter(|p| p.ends_with('_')) {
                    p.schema = Some(id_pattern(&prefix));
                }
            }
        }
    }
}
