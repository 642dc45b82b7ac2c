//! Dashboard sign-in: signup and email verification, password login with the MFA challenge,
//! magic links, password reset, refresh-token rotation, logout and step-up. Every
//! unauthenticated route sits behind a per-IP gate, and the routes that take an email answer the
//! same way whether an account exists or not.

mod links;
mod login;
mod signup;
mod tokens;

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::StatusCode,
};
use common::{clock::rfc3339, ids::AccountId};
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

use login::{LoginResponse, MfaRequiredResponse, StatusResponse};
use signup::drop_unproven_password;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup::signup))
        .routes(routes!(signup::verify_email))
        .routes(routes!(signup::resend_verification))
        .routes(routes!(login::login))
        .routes(routes!(login::mfa_challenge))
        .routes(routes!(login::step_up))
        .routes(routes!(links::magic_link))
        .routes(routes!(links::magic_link_verify))
        .routes(routes!(links::password_reset))
        .routes(routes!(links::password_reset_confirm))
        .routes(routes!(tokens::refresh))
        .routes(routes!(tokens::logout))
}

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
