//! Profiles: persistent browser identities (fingerprint + saved state), their snapshots,
//! restore and clone. The state itself never leaves the server through this API — only what it
//! holds, counted (cookies per domain, origins, size) — so a profile can be audited without
//! exposing its cookies.

mod crud;
mod snapshots;

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use common::{
    clock::rfc3339,
    ids::{ProfileId, SnapshotId},
};
use profiles::{Fingerprint, Geolocation, ProfileRecord, Size, SnapshotRecord, StateSummary};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    audit::Entry,
    error::{ApiError, Problem, domain::profile_error},
    extract::{ListParams, Validate, ValidatedJson, ValidatedQuery, Violations, parse_path_id},
    permissions::{ProfilesRead, ProfilesWrite},
    routes::{
        Page,
        fingerprint::{Identity, ViewportBody, validate_identity},
    },
    state::AppState,
    tiers::Tier,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crud::create_profile, crud::list_profiles))
        .routes(routes!(
            crud::get_profile,
            crud::update_profile,
            crud::delete_profile
        ))
        .routes(routes!(crud::clone_profile))
        .routes(routes!(
            snapshots::create_snapshot,
            snapshots::list_snapshots
        ))
        .routes(routes!(snapshots::delete_snapshot))
        .routes(routes!(snapshots::restore_snapshot))
}

// ---------------------------------------------------------------------------------------------

// Bodies

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeolocationBody {
    /// −90 to 90.
    pub latitude: f64,
    /// −180 to 180.
    pub longitude: f64,
    /// Metres, 0–100000 (default 50).
    pub accuracy: Option<f64>,
}

/// How sessions on the profile present themselves. A session's own settings override these.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FingerprintBody {
    #[schema(min_length = 1, max_length = 512)]
    pub user_agent: Option<String>,
    pub viewport: Option<ViewportBody>,
    /// A BCP 47 locale such as `en-US`.
    pub locale: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`.
    pub timezone: Option<String>,
    /// The position pages see (permission granted).
    pub geolocation: Option<GeolocationBody>,
    /// Headers added to every request (at most 50). Values are never shown back.
    pub extra_headers: Option<BTreeMap<String, String>>,
}

impl FingerprintBody {
    fn validate(&self, v: &mut Violations) {
        validate_identity(
            v,
            "fingerprint.",
            Identity {
                viewport: self.viewport,
                user_agent: self.user_agent.as_ref(),
                locale: self.locale.as_ref(),
                timezone: self.timezone.as_ref(),
                extra_headers: self.extra_headers.as_ref(),
            },
        );
        if let Some(g) = self.geolocation {
            v.check(
                (-90.0..=90.0).contains(&g.latitude),
                "fingerprint.geolocation.latitude",
                "must be between -90 and 90",
            );
            v.check(
                (-180.0..=180.0).contains(&g.longitude),
                "fingerprint.geolocation.longitude",
                "must be between -180 and 180",
            );
            if let Some(a) = g.accuracy {
                v.check(
                    (0.0..=100_000.0).contains(&a),
                    "fingerprint.geolocation.accuracy",
                    "must be between 0 and 100000 metres",
                );
            }
        }
    }

    fn into_fingerprint(self) -> Fingerprint {
        Fingerprint {
            user_agent: self.user_agent,
            viewport: self.viewport.map(|v| Size {
                width: v.width,
                height: v.height,
            }),
            locale: self.locale,
            timezone: self.timezone,
            geolocation: self.geolocation.map(|g| Geolocation {
                latitude: g.latitude,
                longitude: g.longitude,
                accuracy: g.accuracy,
            }),
            extra_headers: self.extra_headers.unwrap_or_default(),
        }
    }
}

fn validate_name(v: &mut Violations, field: &str, name: &str) {
    let len = name.chars().count();
    v.check(
        (1..=100).contains(&len) && !name.chars().any(char::is_control),
        field,
        "must be 1 to 100 characters without control characters",
    );
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProfileRequest {
    /// 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: String,
    pub fingerprint: Option<FingerprintBody>,
}

impl Validate for CreateProfileRequest {
    fn validate(&self, v: &mut Violations) {
        validate_name(v, "name", &self.name);
        if let Some(f) = &self.fingerprint {
            f.validate(v);
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: Option<String>,
    /// Replaces the whole fingerprint.
    pub fingerprint: Option<FingerprintBody>,
}

impl Validate for UpdateProfileRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(name) = &self.name {
            validate_name(v, "name", name);
        }
        if let Some(f) = &self.fingerprint {
            f.validate(v);
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneProfileRequest {
    /// Default: the source's name with ` (copy)`.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: Option<String>,
}

impl Validate for CloneProfileRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(name) = &self.name {
            validate_name(v, "name", name);
        }
    }
}

/// What a saved state holds, counted from the stored blob after it was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateSummaryBody {
    pub cookies: usize,
    pub cookies_by_domain: BTreeMap<String, usize>,
    /// Origins with localStorage.
    pub origins: usize,
    pub local_storage_items: usize,
    /// Stored size (compressed and encrypted).
    pub bytes: u64,
}

impl From<StateSummary> for StateSummaryBody {
    fn from(s: StateSummary) -> Self {
        StateSummaryBody {
            cookies: s.cookies,
            cookies_by_domain: s.cookies_by_domain,
            origins: s.origins,
            local_storage_items: s.local_storage_items,
            bytes: s.bytes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FingerprintResponse {
    pub user_agent: Option<String>,
    pub viewport: Option<ViewportBody>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub geolocation: Option<GeolocationBody>,
    /// Header names only (values may be credentials).
    pub extra_header_names: Vec<String>,
}

impl From<Fingerprint> for FingerprintResponse {
    fn from(f: Fingerprint) -> Self {
        FingerprintResponse {
            user_agent: f.user_agent,
            viewport: f.viewport.map(|s| ViewportBody {
                width: s.width,
                height: s.height,
            }),
            locale: f.locale,
            timezone: f.timezone,
            geolocation: f.geolocation.map(|g| GeolocationBody {
                latitude: g.latitude,
                longitude: g.longitude,
                accuracy: g.accuracy,
            }),
            extra_header_names: f.extra_headers.into_keys().collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    /// `prof_…`
    pub id: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: String,
    pub fingerprint: FingerprintResponse,
    /// The current state, or `null` while nothing was saved yet.
    pub state: Option<StateSummaryBody>,
    pub state_saved_at: Option<String>,
    /// The live session holding the profile (one at a time), if any.
    pub live_session_id: Option<String>,
    /// Why the last save from a session failed, if it did (the previous state was kept).
    pub last_save_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ProfileRecord> for ProfileResponse {
    fn from(p: ProfileRecord) -> Self {
        ProfileResponse {
            id: p.id.to_string(),
            name: p.name,
            fingerprint: p.fingerprint.into(),
            state: p.summary.map(Into::into),
            state_saved_at: p.state_saved_at.map(rfc3339),
            live_session_id: p.live_session.map(|s| s.to_string()),
            last_save_error: p.last_save_error,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

// Errors

fn tier(state: &AppState, name: &str) -> Result<Tier, ApiError> {
    state
        .tiers
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {name}")))
}

fn profile_id(raw: &str) -> Result<ProfileId, ApiError> {
    parse_path_id(raw)
}

// ---------------------------------------------------------------------------------------------
// Routes
