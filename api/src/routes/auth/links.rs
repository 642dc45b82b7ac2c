//! Sign-in by magic link, and the password reset by link.

use super::*;

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
    mail_link(&state, addr, &body.email, &MAGIC).await
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
    let before = state.identity.user(&user_id).await?;
    if before.email_verified_at.is_none() {
        drop_unproven_password(&state, &before, addr).await?;
    }
    state.identity.store.mark_verified(&user_id, now).await?;
    let user = state.identity.user(&user_id).await?;
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
    mail_link(&state, addr, &body.email, &RESET).await
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
    let user = state.identity.user(&user_id).await?;
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

/// A one-time link sent by mail, and how its request is recorded.
struct MailedLink {
    kind: LinkKind,
    /// Earlier unused links of this kind stop working when a new one is sent.
    voids_earlier: Option<&'static str>,
    template: Template,
    path: &'static str,
    action: &'static str,
}

const MAGIC: MailedLink = MailedLink {
    kind: LinkKind::Magic,
    voids_earlier: None,
    template: Template::MagicLink,
    path: "/magic-link",
    action: "auth.magic_link_sent",
};

const RESET: MailedLink = MailedLink {
    kind: LinkKind::Reset,
    voids_earlier: Some("reset"),
    template: Template::PasswordReset,
    path: "/password-reset",
    action: "auth.password_reset_requested",
};

/// Mails a one-time link to the account with this email, if there is one, within the limits;
/// the answer is the same whether there is an account or not.
async fn mail_link(
    state: &AppState,
    addr: SocketAddr,
    raw_email: &str,
    what: &MailedLink,
) -> Result<Json<AcceptedResponse>, ApiError> {
    gate(state, addr)?;
    let email = email_of(raw_email);
    match state.identity.link_decision(&email, addr.ip()).await? {
        LinkDecision::Cooldown(s) => return Err(cooldown(s)),
        LinkDecision::Silent => return Ok(Json(LINK_SENT)),
        LinkDecision::Send => {}
    }
    if let Some(user) = state.identity.user_by_email(&email).await? {
        if let Some(purpose) = what.voids_earlier {
            let now = state.clock.now_ms();
            state
                .identity
                .store
                .void_links(&user.user_id(), purpose, now)
                .await?;
        }
        let token = state
            .identity
            .issue_link(what.kind, &user.user_id(), what.kind.ttl())
            .await?;
        let url = link(state, what.path, &token);
        send(state, &email, what.template, &[("link", &url)]);
        audit(state, Some(&user), what.action, addr, json!({})).await;
    }
    Ok(Json(LINK_SENT))
}
