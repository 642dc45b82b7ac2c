//! Profiles themselves: create (with a fingerprint), list, read, change, delete, clone.

use super::*;

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
