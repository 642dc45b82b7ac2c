//! Password sign-in, the MFA challenge, and step-up (TOTP, recovery code or password).

use super::*;
use crate::identity::guards::{self, StepUpRefusal};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 4096)]
    pub password: String,
}

impl Validate for LoginRequest {
    fn validate(&self, v: &mut Violations) {
        check_email(v, &self.email);
        v.check(
            !self.password.is_empty() && self.password.len() <= 4096,
            "password",
            "is required",
        );
    }
}

/// `mfa_token` and exactly one of `code` and `recovery_code`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 2, max_properties = 2)]
pub struct MfaChallengeRequest {
    /// From the login answer.
    #[schema(min_length = 1)]
    pub mfa_token: String,
    /// A 6-digit code from your authenticator app…
    #[schema(nullable = false)]
    pub code: Option<String>,
    /// …or one of your recovery codes.
    #[schema(nullable = false)]
    pub recovery_code: Option<String>,
}

impl Validate for MfaChallengeRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(!self.mfa_token.is_empty(), "mfa_token", "is required");
        v.check(
            self.code.is_some() != self.recovery_code.is_some(),
            "code",
            "give exactly one of code and recovery_code",
        );
    }
}

/// Exactly one of `code`, `recovery_code` and `password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct StepUpRequest {
    /// With MFA on: a TOTP code…
    #[schema(nullable = false)]
    pub code: Option<String>,
    /// …or a recovery code.
    #[schema(nullable = false)]
    pub recovery_code: Option<String>,
    /// With MFA off: your password.
    #[schema(nullable = false)]
    pub password: Option<String>,
}

impl Validate for StepUpRequest {
    fn validate(&self, v: &mut Violations) {
        let given = [
            self.code.is_some(),
            self.recovery_code.is_some(),
            self.password.is_some(),
        ];
        v.check(
            given.iter().filter(|g| **g).count() == 1,
            "code",
            "give exactly one of code, recovery_code and password",
        );
    }
}

/// Password accepted; the second factor is needed: `POST /v1/auth/mfa/challenge`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always true.
    pub mfa_required: bool,
    /// Valid for 5 minutes.
    pub mfa_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(TokenResponse),
    MfaRequired(MfaRequiredResponse),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}

/// Signs in with email and password. With MFA on, the answer is `{mfa_required, mfa_token}`:
/// finish at `POST /v1/auth/mfa/challenge`. Wrong email and wrong password get the same 401.
/// Repeated failures on one account slow its logins down (never lock it).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    gate(&state, addr)?;
    let email = email_of(&body.email);
    let user = state.identity.user_by_email(&email).await?;
    let now = state.clock.now_ms();
    if let Some(u) = &user
        && let Some(delay) = guards::failure_delay(u, now)
    {
        audit(
            &state,
            Some(u),
            "auth.login_throttled",
            addr,
            json!({"failed_logins": u.failed_logins, "delay_ms": delay.as_millis() as u64}),
        )
        .await;
        tokio::time::sleep(delay).await;
    }
    let password_ok = identity::verify_password(user.as_ref(), &body.password);
    let Some(user) = user.filter(|_| password_ok) else {
        if let Some(u) = state.identity.user_by_email(&email).await? {
            state
                .identity
                .store
                .login_failed(&u.user_id(), Some(now))
                .await?;
            audit(&state, Some(&u), "auth.login_failed", addr, json!({})).await;
        } else {
            audit(
                &state,
                None,
                "auth.login_failed",
                addr,
                json!({"email": email}),
            )
            .await;
        }
        return Err(ApiError::unauthorized("The email or password is wrong.")
            .with_code("invalid_credentials"));
    };
    if user.failed_logins > 0 {
        state
            .identity
            .store
            .login_failed(&user.user_id(), None)
            .await?;
    }
    // Hashes made with weaker parameters are upgraded while the password is at hand.
    if user
        .password_hash
        .as_deref()
        .is_some_and(crate::password::needs_rehash)
    {
        let upgraded = crate::password::hash(&body.password)?;
        state
            .identity
            .store
            .set_password(&user.user_id(), &upgraded)
            .await?;
    }
    if user.email_verified_at.is_none() {
        return Err(ApiError::forbidden(
            "email_not_verified",
            "Confirm your email first: follow the link we sent, or ask for a new one at \
             POST /v1/auth/verify-email/resend.",
        ));
    }
    let answer = finish_sign_in(&state, &user, true).await?;
    let action = match answer {
        LoginResponse::Tokens(_) => "auth.login_succeeded",
        LoginResponse::MfaRequired(_) => "auth.login_password_ok_mfa_required",
    };
    audit(&state, Some(&user), action, addr, json!({})).await;
    Ok(Json(answer))
}

/// A step-up by password (see `identity::guards`), answered: 429 with `retry-after` when
/// throttled (audited), 401 for a wrong password.
async fn password_step_up(
    state: &AppState,
    user: &UserAuth,
    password: &str,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    let refusal = match state.identity.step_up_by_password(user, password).await? {
        Ok(()) => return Ok(()),
        Err(refusal) => refusal,
    };
    match refusal {
        StepUpRefusal::TooManyFailures { wait_seconds } => {
            let data = json!({"failed_logins": user.failed_logins});
            audit(state, Some(user), "auth.step_up_throttled", addr, data).await;
            Err(ApiError::too_many(
                "too_many_attempts",
                format!("Too many wrong passwords; try again in {wait_seconds} seconds."),
                wait_seconds,
            ))
        }
        StepUpRefusal::TooManyAttempts { wait_seconds } => {
            audit(state, Some(user), "auth.step_up_throttled", addr, json!({})).await;
            Err(ApiError::too_many(
                "too_many_attempts",
                "Too many password attempts; try again in 15 minutes.",
                wait_seconds,
            ))
        }
        StepUpRefusal::WrongPassword => {
            Err(ApiError::unauthorized("The password is wrong.").with_code("invalid_credentials"))
        }
    }
}

/// Completes a sign-in that needs MFA, with a TOTP code or a recovery code.
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/mfa/challenge", tag = "auth",
    request_body = MfaChallengeRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn mfa_challenge(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<MfaChallengeRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    gate(&state, addr)?;
    let now = state.clock.now_ms();
    let mfa_hash = crate::apikey::hash(&body.mfa_token);
    let user_id = state
        .identity
        .store
        .find_link(&mfa_hash, "mfa", now)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("The MFA token is invalid or expired; sign in again.")
                .with_code("invalid_mfa_token")
        })?;
    let user = state.identity.user(&user_id).await?;
    let verified = state
        .identity
        .verify_second_factor(&user, body.code.as_deref(), body.recovery_code.as_deref())
        .await;
    if let Err(e) = verified {
        let action = match e {
            OtpRefusal::TooMany => "auth.otp_rate_limited",
            OtpRefusal::Invalid => "auth.mfa_failed",
        };
        audit(&state, Some(&user), action, addr, json!({})).await;
        return Err(ApiError::from(e));
    }
    if state
        .identity
        .store
        .consume_link(&mfa_hash, "mfa", now)
        .await?
        .is_none()
    {
        return Err(
            ApiError::unauthorized("The MFA token was used already; sign in again.")
                .with_code("invalid_mfa_token"),
        );
    }
    let tokens = state.identity.sign_in(&user_id, true).await?;
    let action = if body.recovery_code.is_some() {
        "auth.login_succeeded_recovery_code"
    } else {
        "auth.login_succeeded"
    };
    audit(&state, Some(&user), action, addr, json!({"mfa": true})).await;
    Ok(Json(token_response(&state, tokens, &user, true)))
}

/// Verifies you again (TOTP or recovery code with MFA on, password with it off) so that
/// sensitive actions are allowed for the step-up window (10 minutes by default). Answers with a
/// new token pair; the old access token stops working.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/auth/mfa/step-up", tag = "auth",
    request_body = StepUpRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn step_up(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    principal: Principal,
    ValidatedJson(body): ValidatedJson<StepUpRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let (user_id, dash) = principal.user()?;
    let user = state.identity.user(user_id).await?;
    let verified = if user.mfa_enabled() {
        if body.password.is_some() {
            return Err(ApiError::invalid(
                "code",
                "MFA is on: give a code or a recovery code",
            ));
        }
        state
            .identity
            .verify_second_factor(&user, body.code.as_deref(), body.recovery_code.as_deref())
            .await
            .map_err(ApiError::from)
    } else {
        match &body.password {
            Some(p) => password_step_up(&state, &user, p, addr).await,
            None => Err(ApiError::invalid(
                "password",
                "MFA is off: give your password",
            )),
        }
    };
    if let Err(e) = verified {
        audit(&state, Some(&user), "auth.step_up_failed", addr, json!({})).await;
        return Err(e);
    }
    let expires = state
        .identity
        .store
        .session_expires_at(&dash.session_id)
        .await?;
    let tokens = state
        .identity
        .reissue(&dash.session_id, expires, true)
        .await?;
    audit(&state, Some(&user), "auth.step_up", addr, json!({})).await;
    Ok(Json(token_response(&state, tokens, &user, true)))
}
