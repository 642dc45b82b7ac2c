//! Snapshots of a profile's state: capture (from the live session, or the saved state),
//! list, delete, restore.

use super::*;

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
