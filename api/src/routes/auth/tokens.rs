//! Refresh-token rotation and logout.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

impl Validate for RefreshRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            !self.refresh_token.is_empty(),
            "refresh_token",
            "is required",
        );
    }
}

/// Trades a refresh token for a new token pair. Each refresh token works once: presenting a used
/// one again signs the whole session out (someone else may have it) and is audited.
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    gate(&state, addr)?;
    let invalid = || {
        ApiError::unauthorized("The refresh token is invalid or expired; sign in again.")
            .with_code("invalid_refresh_token")
    };
    if !body.refresh_token.starts_with(identity::REFRESH_PREFIX) {
        return Err(invalid());
    }
    let hash = crate::apikey::hash(&body.refresh_token);
    let session = state
        .identity
        .store
        .find_token(&hash)
        .await?
        .filter(|s| s.kind == "refresh")
        .ok_or_else(invalid)?;
    let now = state.clock.now_ms();
    let reused = session.used_at.is_some()
        || (state.identity.session_live(&session)
            && !state.identity.store.use_token(&hash, now).await?);
    if reused {
        state
            .identity
            .store
            .revoke_session(&session.session_id, "refresh_reuse", now)
            .await?;
        let user = state
            .identity
            .store
            .user(&common::ids::UserId::from_trusted(session.user_id.clone()))
            .await?;
        audit(
            &state,
            Some(&user),
            "auth.refresh_reuse_detected",
            addr,
            json!({"session": session.session_id}),
        )
        .await;
        return Err(invalid());
    }
    if !state.identity.session_live(&session) {
        return Err(invalid());
    }
    let tokens = state
        .identity
        .reissue(&session.session_id, session.session_expires_at, false)
        .await?;
    let user = state
        .identity
        .store
        .user(&common::ids::UserId::from_trusted(session.user_id.clone()))
        .await?;
    let window = i64::try_from(state.config.step_up.as_millis()).unwrap_or(i64::MAX);
    let fresh = session.step_up_at.is_some_and(|at| now - at < window);
    let mut answer = token_response(&state, tokens, &user, false);
    if fresh {
        answer.step_up_expires_at = session.step_up_at.map(|at| rfc3339(at + window));
    }
    Ok(Json(answer))
}

/// Signs this dashboard session out (its access and refresh tokens stop working).
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204),
              (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    let (_, dash) = principal.user()?;
    state
        .identity
        .store
        .revoke_session(&dash.session_id, "logout", state.clock.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
