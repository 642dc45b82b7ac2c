//! Deprecated routes and fields, each declared in one table ([`DEPRECATED`],
//! [`DEPRECATED_FIELDS`]; docs/VERSIONING.md). A deprecated field is `deprecated: true` in the
//! OpenAPI document. A deprecated
//! route's answers carry (through `middleware::deprecation`) `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! `Link: <…>; rel="deprecation"`; the OpenAPI document marks its operation `deprecated`; every
//! call is counted per credential and day (`store::deprecated_calls`), so an account — and an
//! operator — can see who still calls it.

use axum::http::{HeaderMap, HeaderValue};

/// One deprecated route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecated {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The route as the router knows it: `/v1/sessions/{id}/…`.
    pub path: &'static str,
    /// When it was announced (unix seconds).
    pub since: i64,
    /// When it may be removed (unix seconds): at least 6 months after `since`.
    pub sunset: i64,
    /// What to use instead, for the changelog and the docs.
    pub instead: &'static str,
}

/// The deprecated routes of this release. None yet: `/v1` was first released on 2026-12-01.
pub static DEPRECATED: &[Deprecated] = &[];

/// The entry for `method path`, if it is deprecated.
pub fn find(table: &'static [Deprecated], method: &str, path: &str) -> Option<&'static Deprecated> {
    table
        .iter()
        .find(|d| d.method.eq_ignore_ascii_case(method) && d.path == path)
}

/// Adds the three headers of a deprecated route's answer.
pub fn add_headers(d: &Deprecated, public_url: &str, h: &mut HeaderMap) {
    let sunset = std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.sunset.max(0) as u64);
    let values = [
        ("deprecation", format!("@{}", d.since)),
        ("sunset", httpdate::fmt_http_date(sunset)),
        (
            "link",
            format!("<{public_url}/docs/>; rel=\"deprecation\"; type=\"text/html\""),
        ),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
}

/// Marks the table's operations `deprecated: true` in the OpenAPI document.
pub fn mark(api: &mut utoipa::openapi::OpenApi, table: &[Deprecated]) {
    use utoipa::openapi::Deprecated as Flag;
    for d in table {
        let Some(item) = api.paths.paths.get_mut(d.path) else {
            continue;
        };
        let op = match d.method.to_ascii_uppercase().as_str() {
            "GET" => item.get.as_mut(),
            "POST" => item.post.as_mut(),
            "PUT" => item.put.as_mut(),
            "PATCH" => item.patch.as_mut(),
            "DELETE" => item.delete.as_mut(),
            _ => None,
        };
        if let Some(op) = op {
            op.deprecated = Some(Flag::True);
        }
    }
}

/// One deprecated field of a schema (a request or response body's property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeprecatedField {
    /// The schema's name in the OpenAPI document (`SessionResponse`).
    pub schema: &'static str,
    pub field: &'static str,
    /// When it was announced and when it may go (unix seconds).
    pub since: i64,
    pub sunset: i64,
    /// What to use instead.
    pub instead: &'static str,
}

/// The deprecated fields of this release. None yet.
pub static DEPRECATED_FIELDS: &[DeprecatedField] = &[];

/// Marks the fields `deprecated: true` in the OpenAPI document. A field that is a bare `$ref`
/// cannot carry the flag in utoipa's model: deprecate such a field by its schema's description.
pub fn mark_fields(api: &mut utoipa::openapi::OpenApi, fields: &[DeprecatedField]) {
    use utoipa::openapi::{Deprecated as Flag, RefOr, schema::Schema};
    let Some(components) = api.components.as_mut() else {
        return;
    };
    for f in fields {
        let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(f.schema) else {
            continue;
        };
        match schema.properties.get_mut(f.field) {
            Some(RefOr::T(Schema::Object(p))) => p.deprecated = Some(Flag::True),
            Some(RefOr::T(Schema::Array(p))) => p.deprecated = Some(Flag::True),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: &[Deprecated] = &[Deprecated {
        method: "GET",
        path: "/v1/version",
        since: 1_764_547_200,
        sunset: 1_780_272_000,
        instead: "nothing",
    }];

    #[test]
    fn headers_follow_the_rfcs() {
        let mut h = HeaderMap::new();
        add_headers(&TABLE[0], "https://ds.test", &mut h);
        assert_eq!(h["deprecation"], "@1764547200");
        assert_eq!(h["sunset"], "Mon, 01 Jun 2026 00:00:00 GMT");
        assert_eq!(
            h["link"],
            "<https://ds.test/docs/>; rel=\"deprecation\"; type=\"text/html\""
        );
        assert_eq!(find(TABLE, "get", "/v1/version"), Some(&TABLE[0]));
        assert_eq!(find(TABLE, "POST", "/v1/version"), None);
    }
}
