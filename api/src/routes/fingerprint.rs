//! The browser identity settings a session and a profile's fingerprint share (viewport, user
//! agent, locale, time zone, extra headers): their body type and their validation, one set of
//! rules for both routes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::Violations;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewportBody {
    /// 100–3840 CSS pixels.
    #[schema(minimum = 100, maximum = 3840)]
    pub width: u32,
    /// 100–2160 CSS pixels.
    #[schema(minimum = 100, maximum = 2160)]
    pub height: u32,
}

fn valid_locale(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A name from the IANA time zone database (`Mars/Olympus` is refused here rather than at every
/// session start on the profile).
fn valid_timezone(s: &str) -> bool {
    crate::identity::is_timezone(s)
}

fn valid_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The settings a session and a profile's fingerprint share.
pub struct Identity<'a> {
    pub viewport: Option<ViewportBody>,
    pub user_agent: Option<&'a String>,
    pub locale: Option<&'a String>,
    pub timezone: Option<&'a String>,
    pub extra_headers: Option<&'a BTreeMap<String, String>>,
}

/// Checks identity settings; `prefix` is put before each field name (`fingerprint.`).
pub fn validate_identity(v: &mut Violations, prefix: &str, identity: Identity<'_>) {
    if let Some(vp) = identity.viewport {
        v.check(
            (100..=3840).contains(&vp.width),
            &format!("{prefix}viewport.width"),
            "must be between 100 and 3840",
        );
        v.check(
            (100..=2160).contains(&vp.height),
            &format!("{prefix}viewport.height"),
            "must be between 100 and 2160",
        );
    }
    if let Some(ua) = identity.user_agent {
        let len = ua.chars().count();
        v.check(
            (1..=512).contains(&len),
            &format!("{prefix}user_agent"),
            "must be 1 to 512 characters",
        );
        v.check(
            !ua.chars().any(char::is_control),
            &format!("{prefix}user_agent"),
            "must not contain control characters",
        );
    }
    if let Some(locale) = identity.locale {
        v.check(
            valid_locale(locale),
            &format!("{prefix}locale"),
            "must be a BCP 47 tag such as en-US",
        );
    }
    if let Some(tz) = identity.timezone {
        v.check(
            valid_timezone(tz),
            &format!("{prefix}timezone"),
            "must be an IANA time zone such as Europe/Berlin",
        );
    }
    if let Some(headers) = identity.extra_headers {
        v.check(
            headers.len() <= 50,
            &format!("{prefix}extra_headers"),
            "at most 50 headers",
        );
        for (name, value) in headers {
            v.check(
                valid_header_name(name),
                &format!("{prefix}extra_headers.{name}"),
                "is not a valid header name",
            );
            v.check(
                value.len() <= 8192 && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
                &format!("{prefix}extra_headers.{name}"),
                "must be at most 8192 bytes without line breaks",
            );
        }
    }
}
