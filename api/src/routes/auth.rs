//! Dashboard sign-in: signup and email verification, password login with the MFA challenge,
//! magic links, password reset, refresh-token rotation, logout and step-up. Every
//! unauthenticated route sits behind a per-IP gate, and the routes that take an email answer the
//! same way whether an account exists or not.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::StatusCode,
};
use common::{
    clock::{Millis, rfc3339},
    ids::AccountId,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::Entry,
    auth::Principal,
    error::{ApiError, Problem},
    extract::{Validate, ValidatedJson, Violations},
    identity::{self, LinkDecision, LinkKind, OtpRefusal, Tokens, UserAuth},
    mail::Template,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(mfa_challenge))
        .routes(routes!(step_up))
        .routes(routes!(magic_link))
        .routes(routes!(magic_link_verify))
        .routes(routes!(password_reset))
        .routes(routes!(password_reset_confirm))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

// ---------------------------------------------------------------------------------------------
// Bodies

fn check_email(v: &mut Violations, email: &str) {
    v.check(
        crate::service::accounts::normalize_email(email).is_ok(),
        "email",
        "is not an email address",
    );
}

fn email_of(raw: &str) -> String {
    crate::service::accounts::normalize_email(raw).unwrap_or_else(|_| raw.trim().to_lowercase())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 8 characters, not one of the most common passwords.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// Your name (optional).
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub name: Option<String>,
    /// The new account's (team's) name; default: your email.
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub account_name: Option<String>,
}

impl Validate for SignupRequest {
    fn validate(&self, v: &mut Violations) {
        check_email(v, &self.email);
        if let Err(msg) = identity::check_new_password(&self.password) {
            v.add("password", msg);
        }
        for (field, value) in [("name", &self.name), ("account_name", &self.account_name)] {
            if let Some(value) = value {
                v.check(
                    value.chars().count() <= 100 && !value.chars().any(char::is_control),
                    field,
                    "must be at most 100 characters without control characters",
                );
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

impl Validate for EmailRequest {
    fn validate(&self, v: &mut Violations) {
        check_email(v, &self.email);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the link in the mail.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
}

impl Validate for TokenRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            !self.token.is_empty() && self.token.len() <= 256,
            "token",
            "is required",
        );
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the link in the mail.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The password chosen at sign-up. With it, the password keeps working; without it, the
    /// address is verified but a password set before this proof is removed (whoever set it may
    /// not own the address): sign in with a magic link or set one with a reset link.
    #[schema(min_length = 1, max_length = 4096)]
    pub password: Option<String>,
}

impl Validate for VerifyEmailRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            !self.token.is_empty() && self.token.len() <= 256,
            "token",
            "is required",
        );
        if let Some(p) = &self.password {
            v.check(
                !p.is_empty() && p.len() <= 4096,
                "password",
                "must be 1 to 4096 characters",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyEmailResponse {
    /// `verified`.
    pub status: &'static str,
    /// Whether the password set at sign-up still works (it does only when it was given).
    pub password_kept: bool,
}

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmRequest {
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new password: at least 8 characters, not one of the most common passwords.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

impl Validate for ResetConfirmRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(!self.token.is_empty(), "token", "is required");
        if let Err(msg) = identity::check_new_password(&self.password) {
            v.add("password", msg);
        }
    }
}

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

/// The same answer whatever the email: whether an account exists is never revealed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub status: &'static str,
    pub detail: &'static str,
}

const LINK_SENT: AcceptedResponse = AcceptedResponse {
    status: "accepted",
    detail: "If an account can use this email, a message is on its way to it.",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    /// `usr_…`
    pub id: String,
    pub email: String,
    pub name: String,
    pub mfa_enabled: bool,
}

impl From<&UserAuth> for UserBody {
    fn from(u: &UserAuth) -> Self {
        UserBody {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            mfa_enabled: u.mfa_enabled(),
        }
    }
}

/// Dashboard credentials. Send `access_token` as `Authorization: Bearer …`; before it expires,
/// trade `refresh_token` for a new pair at `POST /v1/auth/refresh` (each refresh token works
/// once).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: i64,
    pub refresh_token: String,
    /// Until when sensitive actions are allowed without another step-up, if they are now.
    pub step_up_expires_at: Option<String>,
    pub user: UserBody,
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

// ---------------------------------------------------------------------------------------------
// Helpers

fn gate(state: &AppState, addr: SocketAddr) -> Result<(), ApiError> {
    state.identity.ip_gate(addr.ip()).map_err(|wait| {
        ApiError::too_many(
            "rate_limited",
            "Too many requests from your address; slow down.",
            wait,
        )
    })
}

fn cooldown(seconds: u64) -> ApiError {
    ApiError::too_many(
        "resend_cooldown",
        format!("Wait {seconds} seconds before asking for another message."),
        seconds,
    )
}

fn invalid_token() -> ApiError {
    ApiError::bad_request(
        "invalid_token",
        "The link is invalid, expired or already used; ask for a new one.",
    )
}

fn link(state: &AppState, path: &str, token: &str) -> String {
    format!("{}{path}?token={token}", state.public_url)
}

fn send(state: &AppState, to: &str, template: Template, values: &[(&str, &str)]) {
    state.mailer.send(template.render(to, values));
}

/// The account an event about `user` is recorded under (their oldest membership).
async fn account_of(state: &AppState, user: &UserAuth) -> Option<AccountId> {
    state
        .accounts
        .memberships(&user.user_id())
        .await
        .ok()
        .and_then(|m| m.into_iter().next())
        .map(|m| m.account_id)
}

async fn audit(
    state: &AppState,
    user: Option<&UserAuth>,
    action: &'static str,
    addr: SocketAddr,
    data: serde_json::Value,
) {
    let account = match user {
        Some(u) => account_of(state, u).await,
        None => None,
    };
    state
        .audit
        .record(
            Entry {
                account_id: account,
                actor: user
                    .map(|u| u.id.clone())
                    .unwrap_or_else(|| "anonymous".into()),
                action,
                target: user.map(|u| u.id.clone()),
                ip: Some(addr.ip().to_string()),
                user_agent: None,
                data,
            },
            state.clock.now_ms(),
        )
        .await;
}

fn token_response(
    state: &AppState,
    tokens: Tokens,
    user: &UserAuth,
    step_up: bool,
) -> TokenResponse {
    let now = state.clock.now_ms();
    let window = i64::try_from(state.config.step_up.as_millis()).unwrap_or(i64::MAX);
    TokenResponse {
        token_type: "Bearer",
        access_token: tokens.access_token,
        expires_in: identity::ACCESS_TTL / 1000,
        refresh_token: tokens.refresh_token,
        step_up_expires_at: step_up.then(|| rfc3339(now + window)),
        user: user.into(),
    }
}

/// Signs `user` in, or asks for the second factor when MFA is on.
async fn finish_sign_in(
    state: &AppState,
    user: &UserAuth,
    step_up: bool,
) -> Result<LoginResponse, ApiError> {
    if user.mfa_enabled() {
        let token = state
            .identity
            .issue_link(LinkKind::Mfa, &user.user_id(), LinkKind::Mfa.ttl())
            .await?;
        return Ok(LoginResponse::MfaRequired(MfaRequiredResponse {
            mfa_required: true,
            mfa_token: token,
        }));
    }
    let tokens = state.identity.sign_in(&user.user_id(), step_up).await?;
    Ok(LoginResponse::Tokens(token_response(
        state, tokens, user, step_up,
    )))
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Creates an account (trial plan) with you as its owner and mails a verification link. The
/// answer is the same whether or not the email already has an account (an existing user gets a
/// mail saying so instead).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses((status = 202, body = AcceptedResponse),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<SignupRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), ApiError> {
    gate(&state, addr)?;
    let email = email_of(&body.email);
    // Hash first, whatever happens next, so known and unknown emails take the same time.
    let hash = crate::password::hash(&body.password)?;
    match state.identity.link_decision(&email, addr.ip()).await? {
        LinkDecision::Cooldown(s) => return Err(cooldown(s)),
        LinkDecision::Silent => return Ok((StatusCode::ACCEPTED, Json(LINK_SENT))),
        LinkDecision::Send => {}
    }
    let now = state.clock.now_ms();
    if state.identity.store.user_by_email(&email).await?.is_some() {
        send(
            &state,
            &email,
            Template::SignupExisting,
            &[("public_url", &state.public_url)],
        );
        return Ok((StatusCode::ACCEPTED, Json(LINK_SENT)));
    }
    let name = body.name.as_deref().unwrap_or("");
    let account_name = body.account_name.as_deref().unwrap_or(&email);
    let created = state
        .identity
        .store
        .signup(
            &email,
            name,
            &hash,
            account_name,
            crate::service::accounts::default_tier(&state),
            now,
        )
        .await;
    let (account, user) = match created {
        Ok(ids) => ids,
        // Signed up concurrently: the same answer as for any existing email.
        Err(common::StoreError::Conflict) => return Ok((StatusCode::ACCEPTED, Json(LINK_SENT))),
        Err(e) => return Err(e.into()),
    };
    let token = state
        .identity
        .issue_link(LinkKind::Verify, &user, LinkKind::Verify.ttl())
        .await?;
    send(
        &state,
        &email,
        Template::VerifyWelcome,
        &[("link", &link(&state, "/verify-email", &token))],
    );
    state
        .audit
        .record(
            Entry {
                account_id: Some(account),
                actor: user.to_string(),
                action: "auth.signup",
                target: Some(user.to_string()),
                ip: Some(addr.ip().to_string()),
                user_agent: None,
                data: json!({"email": email}),
            },
            now,
        )
        .await;
    Ok((StatusCode::ACCEPTED, Json(LINK_SENT)))
}

/// Confirms an email address with the token from the verification mail.
///
/// An address belongs to whoever proves it: a password set before the proof keeps working only
/// when this request carries it (the person who signed up knows it). Without `password`, the
/// address is verified and that password stops working, with every sign-in made with it (someone
/// may have signed up with your address); sign in by magic link or set a password by reset link.
/// A wrong `password` is a 401 and leaves the link usable.
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmailRequest,
    responses((status = 200, body = VerifyEmailResponse),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn verify_email(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<VerifyEmailRequest>,
) -> Result<Json<VerifyEmailResponse>, ApiError> {
    gate(&state, addr)?;
    let now = state.clock.now_ms();
    let token_hash = crate::apikey::hash(&body.token);
    let user_id = state
        .identity
        .store
        .find_link(&token_hash, "verify", now)
        .await?
        .ok_or_else(invalid_token)?;
    let user = state.identity.store.user(&user_id).await?;
    if let Some(p) = &body.password
        && !identity::verify_password(Some(&user), p)
    {
        audit(
            &state,
            Some(&user),
            "auth.verify_password_wrong",
            addr,
            json!({}),
        )
        .await;
        return Err(ApiError::unauthorized(
            "This is not the password chosen at sign-up; leave it out to verify the address \
             without keeping a password.",
        )
        .with_code("invalid_credentials"));
    }
    state
        .identity
        .store
        .consume_link(&token_hash, "verify", now)
        .await?
        .ok_or_else(invalid_token)?;
    // The password goes before the address counts as proven: no sign-in can slip in between.
    let remove =
        user.password_hash.is_some() && user.email_verified_at.is_none() && body.password.is_none();
    if remove {
        drop_unproven_password(&state, &user, addr).await?;
    }
    state.identity.store.mark_verified(&user_id, now).await?;
    let password_kept = user.password_hash.is_some() && !remove;
    audit(
        &state,
        Some(&user),
        "auth.email_verified",
        addr,
        json!({"password_kept": password_kept}),
    )
    .await;
    Ok(Json(VerifyEmailResponse {
        status: "verified",
        password_kept,
    }))
}

/// Removes a password that was set before the address was proven, and signs out every sign-in
/// made with it: the address has just been proven by someone who did not show that password.
async fn drop_unproven_password(
    state: &AppState,
    user: &UserAuth,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    if user.password_hash.is_none() {
        return Ok(());
    }
    let now = state.clock.now_ms();
    state.identity.store.clear_password(&user.user_id()).await?;
    let revoked = state
        .identity
        .store
        .revoke_user_sessions(&user.user_id(), "unproven_password", now)
        .await?;
    audit(
        state,
        Some(user),
        "auth.unproven_password_removed",
        addr,
        json!({"sessions_revoked": revoked}),
    )
    .await;
    Ok(())
}

/// Sends a new verification link to an unverified account (same answer for any email; 60 s
/// cooldown per email).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/verify-email/resend", tag = "auth",
    request_body = EmailRequest,
    responses((status = 202, body = AcceptedResponse),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn resend_verification(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), ApiError> {
    gate(&state, addr)?;
    let email = email_of(&body.email);
    if let LinkDecision::Cooldown(s) = state.identity.link_decision(&email, addr.ip()).await? {
        return Err(cooldown(s));
    }
    // `link_decision` recorded the request; Silent and Send differ only in whether mail goes.
    let user = state.identity.store.user_by_email(&email).await?;
    if let Some(user) = user.filter(|u| u.email_verified_at.is_none()) {
        let token = state
            .identity
            .issue_link(LinkKind::Verify, &user.user_id(), LinkKind::Verify.ttl())
            .await?;
        send(
            &state,
            &email,
            Template::Verify,
            &[("link", &link(&state, "/verify-email", &token))],
        );
    }
    Ok((StatusCode::ACCEPTED, Json(LINK_SENT)))
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
    let user = state.identity.store.user_by_email(&email).await?;
    let now = state.clock.now_ms();
    if let Some(u) = &user
        && let Some(delay) = failure_delay(u, now)
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
        if let Some(u) = state.identity.store.user_by_email(&email).await? {
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

/// Failed password checks (sign-in or step-up) within 15 minutes after which a step-up by
/// password answers 429 until the window passes.
const STEP_UP_FAILURES: i64 = 5;

/// The per-account delay before checking a password after repeated failures (never a lock).
fn failure_delay(u: &UserAuth, now: Millis) -> Option<std::time::Duration> {
    let recent = u
        .last_failed_login_at
        .is_some_and(|at| now - at < 15 * identity::MINUTE);
    (recent && u.failed_logins >= 3).then(|| {
        let exponent = u32::try_from((u.failed_logins - 3).min(5)).unwrap_or(5);
        std::time::Duration::from_millis(250 * 2u64.pow(exponent))
    })
}

/// A step-up by password counts as a sign-in attempt: the same per-account failure count and
/// delay, and after [`STEP_UP_FAILURES`] recent failures a 429 with `retry-after` (audited).
async fn password_step_up(
    state: &AppState,
    user: &UserAuth,
    password: &str,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    let now = state.clock.now_ms();
    if user.failed_logins >= STEP_UP_FAILURES
        && let Some(at) = user.last_failed_login_at
        && now - at < 15 * identity::MINUTE
    {
        let wait = u64::try_from((at + 15 * identity::MINUTE - now) / 1000 + 1).unwrap_or(1);
        audit(
            state,
            Some(user),
            "auth.step_up_throttled",
            addr,
            json!({"failed_logins": user.failed_logins}),
        )
        .await;
        return Err(ApiError::too_many(
            "too_many_attempts",
            format!("Too many wrong passwords; try again in {wait} seconds."),
            wait,
        ));
    }
    // Concurrent guesses cannot all see room: attempts are taken one atomic step at a time.
    let bucket = format!("stepup:{}", user.user_id());
    let window = 15 * identity::MINUTE;
    if !state
        .identity
        .store
        .throttle_take(&bucket, now - window, STEP_UP_FAILURES, now)
        .await?
    {
        audit(state, Some(user), "auth.step_up_throttled", addr, json!({})).await;
        return Err(ApiError::too_many(
            "too_many_attempts",
            "Too many password attempts; try again in 15 minutes.",
            u64::try_from(window / 1000).unwrap_or(900),
        ));
    }
    if let Some(delay) = failure_delay(user, now) {
        tokio::time::sleep(delay).await;
    }
    if identity::verify_password(Some(user), password) {
        if user.failed_logins > 0 {
            state
                .identity
                .store
                .login_failed(&user.user_id(), None)
                .await?;
        }
        return Ok(());
    }
    state
        .identity
        .store
        .login_failed(&user.user_id(), Some(now))
        .await?;
    Err(ApiError::unauthorized("The password is wrong.").with_code("invalid_credentials"))
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
    let user = state.identity.store.user(&user_id).await?;
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
    let user = state.identity.store.user(user_id).await?;
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

/// Mails a sign-in link valid for 10 minutes, usable once (same answer for any email; 3 per
/// email and 10 per address per 15 minutes; 60 s between two requests for one email).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "auth",
    request_body = EmailRequest,
    responses((status = 200, body = AcceptedResponse),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn magic_link(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<EmailRequest>,
) -> Result<Json<AcceptedResponse>, ApiError> {
    gate(&state, addr)?;
    let email = email_of(&body.email);
    match state.identity.link_decision(&email, addr.ip()).await? {
        LinkDecision::Cooldown(s) => return Err(cooldown(s)),
        LinkDecision::Silent => return Ok(Json(LINK_SENT)),
        LinkDecision::Send => {}
    }
    if let Some(user) = state.identity.store.user_by_email(&email).await? {
        let token = state
            .identity
            .issue_link(LinkKind::Magic, &user.user_id(), LinkKind::Magic.ttl())
            .await?;
        send(
            &state,
            &email,
            Template::MagicLink,
            &[("link", &link(&state, "/magic-link", &token))],
        );
        audit(&state, Some(&user), "auth.magic_link_sent", addr, json!({})).await;
    }
    Ok(Json(LINK_SENT))
}

/// Signs in with a magic link's token (or asks for the second factor when MFA is on).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/magic-link/verify", tag = "auth",
    request_body = TokenRequest,
    responses((status = 200, body = LoginResponse),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn magic_link_verify(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<TokenRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    gate(&state, addr)?;
    let now = state.clock.now_ms();
    let user_id = state
        .identity
        .store
        .consume_link(&crate::apikey::hash(&body.token), "magic", now)
        .await?
        .ok_or_else(invalid_token)?;
    // The link proved the address; a password set before that proof was not shown by whoever
    // proved it, so it stops working.
    let before = state.identity.store.user(&user_id).await?;
    if before.email_verified_at.is_none() {
        drop_unproven_password(&state, &before, addr).await?;
    }
    state.identity.store.mark_verified(&user_id, now).await?;
    let user = state.identity.store.user(&user_id).await?;
    let answer = finish_sign_in(&state, &user, false).await?;
    audit(&state, Some(&user), "auth.magic_link_used", addr, json!({})).await;
    Ok(Json(answer))
}

/// Mails a password reset link valid for 30 minutes, usable once (same answer and limits as
/// magic links).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "auth",
    request_body = EmailRequest,
    responses((status = 200, body = AcceptedResponse),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn password_reset(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<EmailRequest>,
) -> Result<Json<AcceptedResponse>, ApiError> {
    gate(&state, addr)?;
    let email = email_of(&body.email);
    match state.identity.link_decision(&email, addr.ip()).await? {
        LinkDecision::Cooldown(s) => return Err(cooldown(s)),
        LinkDecision::Silent => return Ok(Json(LINK_SENT)),
        LinkDecision::Send => {}
    }
    if let Some(user) = state.identity.store.user_by_email(&email).await? {
        let now = state.clock.now_ms();
        state
            .identity
            .store
            .void_links(&user.user_id(), "reset", now)
            .await?;
        let token = state
            .identity
            .issue_link(LinkKind::Reset, &user.user_id(), LinkKind::Reset.ttl())
            .await?;
        send(
            &state,
            &email,
            Template::PasswordReset,
            &[("link", &link(&state, "/password-reset", &token))],
        );
        audit(
            &state,
            Some(&user),
            "auth.password_reset_requested",
            addr,
            json!({}),
        )
        .await;
    }
    Ok(Json(LINK_SENT))
}

/// Sets a new password with a reset token. Every sign-in session of the user is revoked, the
/// user is told by mail, and nobody is signed in by this (sign in again, with MFA if it is on).
///
/// Requires `none`: no credential (limited per IP address).
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetConfirmRequest,
    responses((status = 200, body = StatusResponse),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn password_reset_confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ValidatedJson(body): ValidatedJson<ResetConfirmRequest>,
) -> Result<Json<StatusResponse>, ApiError> {
    gate(&state, addr)?;
    let hash = crate::password::hash(&body.password)?;
    let now = state.clock.now_ms();
    let user_id = state
        .identity
        .store
        .consume_link(&crate::apikey::hash(&body.token), "reset", now)
        .await?
        .ok_or_else(invalid_token)?;
    state.identity.store.set_password(&user_id, &hash).await?;
    // The reset link proved the address too.
    state.identity.store.mark_verified(&user_id, now).await?;
    state.identity.store.login_failed(&user_id, None).await?;
    let revoked = state
        .identity
        .store
        .revoke_user_sessions(&user_id, "password_reset", now)
        .await?;
    let user = state.identity.store.user(&user_id).await?;
    send(&state, &user.email, Template::PasswordChanged, &[]);
    audit(
        &state,
        Some(&user),
        "auth.password_reset",
        addr,
        json!({"sessions_revoked": revoked}),
    )
    .await;
    Ok(Json(StatusResponse {
        status: "password_changed",
    }))
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
