//! Sign-up, email verification (which may keep or drop a password set before the address
//! was proven) and resending the verification link.

use super::*;

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
    if state.identity.user_by_email(&email).await?.is_some() {
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
    let user = state.identity.user(&user_id).await?;
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

/// Drops a password set before the address was proven (see `identity::guards`), audited.
pub(super) async fn drop_unproven_password(
    state: &AppState,
    user: &UserAuth,
    addr: SocketAddr,
) -> Result<(), ApiError> {
    if let Some(revoked) = state.identity.drop_unproven_password(user).await? {
        let data = json!({"sessions_revoked": revoked});
        audit(
            state,
            Some(user),
            "auth.unproven_password_removed",
            addr,
            data,
        )
        .await;
    }
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
    let user = state.identity.user_by_email(&email).await?;
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
