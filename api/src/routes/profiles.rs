//! Profiles: persistent browser identities (fingerprint + saved state), their snapshots,
//! restore and clone. The state itself never leaves the server through this API — only what it
//! holds, counted (cookies per domain, origins, size) — so a profile can be audited without
//! exposing its cookies.

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
use profiles::{
    Fingerprint, Geolocation, ProfileRecord, Size, SnapshotRecord, StateSummary,
};
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
        .routes(routes!(create_profile, list_profiles))
        .routes(routes!(get_profile, update_profile, delete_profile))
        .routes(routes!(clone_profile))
        .routes(routes!(create_snapshot, list_snapshots))
        .routes(routes!(delete_snapshot))
        .routes(routes!(restore_snapshot))
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

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// A label, 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: Option<String>,
}

impl Validate for CreateSnapshotRequest {
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

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotResponse {
    /// `snap_…`
    pub id: String,
    pub profile_id: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: Option<String>,
    /// `session` (read from the profile's live session) or `profile` (its saved state).
    pub source: String,
    pub session_id: Option<String>,
    pub state: StateSummaryBody,
    pub created_at: String,
}

impl From<SnapshotRecord> for SnapshotResponse {
    fn from(s: SnapshotRecord) -> Self {
        SnapshotResponse {
            id: s.id.to_string(),
            profile_id: s.profile_id.to_string(),
            name: s.name,
            source: s.source,
            session_id: s.session_id.map(|s| s.to_string()),
            state: s.summary.into(),
            created_at: rfc3339(s.created_at),
        }
    }
}

// ---------------------------------------------------------------------------------------------
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

/// Creates an empty profile with an optional fingerprint.
///
/// Requires `profiles:write`. Over the plan's profile limit: 403 `profile_limit_reached`.
#[utoipa::path(post, path = "/v1/profiles", tag = "profiles",
    request_body = CreateProfileRequest,
    responses((status = 201, body = ProfileResponse),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_profile(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    ValidatedJson(body): ValidatedJson<CreateProfileRequest>,
) -> Result<(StatusCode, Json<ProfileResponse>), ApiError> {
    let principal = auth.principal;
    let tier = tier(&state, &principal.tier)?;
    let fingerprint = body.fingerprint.unwrap_or_default().into_fingerprint();
    let record = state
        .profiles
        .store
        .create(
            &profiles::store::NewProfile {
                account_id: &principal.account_id,
                name: &body.name,
                fingerprint: &fingerprint,
                max_profiles: tier.max_profiles,
                now: state.clock.now_ms(),
            },
            None,
        )
        .await
        .map_err(|e| profile_error("profile")(e.into()))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &principal,
            "profile.created",
            Some(record.id.to_string()),
            json!({"name": record.name}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Lists the account's profiles, newest first.
///
/// Requires `profiles:read`.
#[utoipa::path(get, path = "/v1/profiles", tag = "profiles",
    params(ListParams),
    responses((status = 200, body = Page<ProfileResponse>),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_profiles(
    State(state): State<AppState>,
    auth: Require<ProfilesRead>,
    ValidatedQuery(params): ValidatedQuery<ListParams>,
) -> Result<Json<Page<ProfileResponse>>, ApiError> {
    let cursor: Option<ProfileId> = params.cursor()?;
    let (rows, has_more) = state
        .profiles
        .store
        .list(&auth.principal.account_id, cursor.as_ref(), params.limit())
        .await?;
    Ok(Json(Page {
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    }))
}

/// One profile: its fingerprint and what its saved state holds.
///
/// Requires `profiles:read`.
#[utoipa::path(get, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`")),
    responses((status = 200, body = ProfileResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_profile(
    State(state): State<AppState>,
    auth: Require<ProfilesRead>,
    Path(id): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let id = profile_id(&id)?;
    let record = state
        .profiles
        .get(&auth.principal.account_id, &id)
        .await
        .map_err(profile_error("profile"))?;
    Ok(Json(record.into()))
}

/// Renames a profile or replaces its fingerprint (used by sessions created after this).
///
/// Requires `profiles:write`.
#[utoipa::path(patch, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`")),
    request_body(content = Option<UpdateProfileRequest>),
    responses((status = 200, body = ProfileResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_profile(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<UpdateProfileRequest>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let id = profile_id(&id)?;
    let fingerprint = body.fingerprint.map(FingerprintBody::into_fingerprint);
    let record = state
        .profiles
        .store
        .update(
            &auth.principal.account_id,
            &id,
            body.name.as_deref(),
            fingerprint.as_ref(),
            state.clock.now_ms(),
        )
        .await
        .map_err(|e| profile_error("profile")(e.into()))?;
    state
        .record(Entry::by(
            &auth.principal,
            "profile.updated",
            Some(id.to_string()),
            json!({"name": body.name.is_some(), "fingerprint": fingerprint.is_some()}),
        ))
        .await;
    Ok(Json(record.into()))
}

/// Deletes a profile, its snapshots and every stored state nothing else refers to.
///
/// Requires `profiles:write`. While a live session holds it: 409 `profile_in_use`.
#[utoipa::path(delete, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_profile(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(&id)?;
    state
        .profiles
        .delete(&auth.principal.account_id, &id)
        .await
        .map_err(profile_error("profile"))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &auth.principal,
            "profile.deleted",
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a new profile with this profile's fingerprint and current saved state.
///
/// Requires `profiles:write`.
#[utoipa::path(post, path = "/v1/profiles/{id}/clone", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`")),
    request_body(content = Option<CloneProfileRequest>),
    responses((status = 201, body = ProfileResponse),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn clone_profile(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CloneProfileRequest>,
) -> Result<(StatusCode, Json<ProfileResponse>), ApiError> {
    let principal = auth.principal;
    let id = profile_id(&id)?;
    let tier = tier(&state, &principal.tier)?;
    let source = state
        .profiles
        .get(&principal.account_id, &id)
        .await
        .map_err(profile_error("profile"))?;
    let name = body.name.unwrap_or_else(|| {
        let mut base: String = source.name.chars().take(93).collect();
        base.push_str(" (copy)");
        base
    });
    let record = state
        .profiles
        .store
        .create(
            &profiles::store::NewProfile {
                account_id: &principal.account_id,
                name: &name,
                fingerprint: &source.fingerprint,
                max_profiles: tier.max_profiles,
                now: state.clock.now_ms(),
            },
            Some(&id),
        )
        .await
        .map_err(|e| profile_error("profile")(e.into()))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &principal,
            "profile.cloned",
            Some(record.id.to_string()),
            json!({"from": id}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Captures a snapshot: of the live session on this profile if there is one (and, when that
/// session persists, saves it as the profile's state too — a checkpoint), else of the profile's
/// saved state.
///
/// Requires `profiles:write`. Over the plan's state size: 413 `profile_state_too_large`.
#[utoipa::path(post, path = "/v1/profiles/{id}/snapshots", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`")),
    request_body(content = Option<CreateSnapshotRequest>),
    responses((status = 201, body = SnapshotResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_snapshot(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CreateSnapshotRequest>,
) -> Result<(StatusCode, Json<SnapshotResponse>), ApiError> {
    let principal = auth.principal;
    let account = &principal.account_id;
    let id = profile_id(&id)?;
    let tier = tier(&state, &principal.tier)?;
    let profile = state
        .profiles
        .get(account, &id)
        .await
        .map_err(profile_error("profile"))?;
    let live = match (&state.runner, &profile.live_session) {
        (Some(runner), Some(_)) => runner
            .live_profile_state(account, &id)
            .await
            .map_err(crate::error::domain::session_error)?,
        _ => None,
    };
    let name = body.name.as_deref();
    let snapshot = match (live, profile.live_session) {
        (Some((session, request, live_state)), _) => {
            let limit = tier.profile_state_limit();
            let snap = state
                .profiles
                .snapshot_state(account, &id, name, &session, &live_state, limit)
                .await
                .map_err(profile_error("profile"))?;
            if request.persist {
                state
                    .profiles
                    .save(account, &id, &live_state, limit)
                    .await
                    .map_err(profile_error("profile"))?;
            }
            snap
        }
        (None, Some(session)) => {
            return Err(ApiError::conflict(
                "profile_in_use",
                format!(
                    "The profile's live session {session} runs on another node; capture the \
                     snapshot through that session's node or after it ends."
                ),
            )
            .with("session_id", json!(session)));
        }
        (None, None) => state
            .profiles
            .snapshot_saved(account, &id, name)
            .await
            .map_err(profile_error("profile"))?,
    };
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &principal,
            "profile.snapshot.created",
            Some(snapshot.id.to_string()),
            json!({"profile_id": id, "source": snapshot.source}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(snapshot.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSnapshotsParams {
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// The last id of the previous page.
    pub starting_after: Option<String>,
}

impl Validate for ListSnapshotsParams {
    fn validate(&self, v: &mut Violations) {
        ListParams {
            limit: self.limit,
            starting_after: None,
        }
        .validate(v);
    }
}

/// Lists a profile's snapshots, newest first.
///
/// Requires `profiles:read`.
#[utoipa::path(get, path = "/v1/profiles/{id}/snapshots", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`"), ListSnapshotsParams),
    responses((status = 200, body = Page<SnapshotResponse>),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    auth: Require<ProfilesRead>,
    Path(id): Path<String>,
    ValidatedQuery(params): ValidatedQuery<ListSnapshotsParams>,
) -> Result<Json<Page<SnapshotResponse>>, ApiError> {
    let account = &auth.principal.account_id;
    let id = profile_id(&id)?;
    let list = ListParams {
        limit: params.limit,
        starting_after: params.starting_after,
    };
    let cursor: Option<SnapshotId> = list.cursor()?;
    state
        .profiles
        .get(account, &id)
        .await
        .map_err(profile_error("profile"))?;
    let (rows, has_more) = state
        .profiles
        .store
        .list_snapshots(account, &id, cursor.as_ref(), list.limit())
        .await?;
    Ok(Json(Page {
        data: rows.into_iter().map(Into::into).collect(),
        has_more,
    }))
}

/// Deletes a snapshot (its stored state goes once nothing else refers to it).
///
/// Requires `profiles:write`.
#[utoipa::path(delete, path = "/v1/profiles/{id}/snapshots/{sid}", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`"),
           ("sid" = String, Path, description = "`snap_…`")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path((id, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(&id)?;
    let sid: SnapshotId = parse_path_id(&sid)?;
    state
        .profiles
        .delete_snapshot(&auth.principal.account_id, &id, &sid)
        .await
        .map_err(profile_error("snapshot"))?;
    state
        .record(Entry::by(
            &auth.principal,
            "profile.snapshot.deleted",
            Some(sid.to_string()),
            json!({"profile_id": id}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a snapshot's state the profile's current state; sessions created after this start
/// from it. The snapshot stays.
///
/// Requires `profiles:write`. While a live session holds the profile: 409 `profile_in_use`.
#[utoipa::path(post, path = "/v1/profiles/{id}/snapshots/{sid}/restore", tag = "profiles",
    params(("id" = String, Path, description = "`prof_…`"),
           ("sid" = String, Path, description = "`snap_…`")),
    responses((status = 200, body = ProfileResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn restore_snapshot(
    State(state): State<AppState>,
    auth: Require<ProfilesWrite>,
    Path((id, sid)): Path<(String, String)>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let id = profile_id(&id)?;
    let sid: SnapshotId = parse_path_id(&sid)?;
    let record = state
        .profiles
        .restore(&auth.principal.account_id, &id, &sid)
        .await
        .map_err(profile_error("snapshot"))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &auth.principal,
            "profile.snapshot.restored",
            Some(sid.to_string()),
            json!({"profile_id": id}),
        ))
        .await;
    Ok(Json(record.into()))
}
