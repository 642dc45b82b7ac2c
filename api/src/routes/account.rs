//! The calling account: who you are and what you may do, the account's settings, and the
//! signed-in user's two-factor authentication (TOTP enrolment, activation with recovery codes,
//! disabling and regenerating codes behind step-up).

use axum::{Json, extract::State, http::StatusCode};
use common::clock::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    audit::Entry,
    auth::{Actor, Principal},
    error::{ApiError, Problem},
    extract::{Validate, ValidatedJson, Violations},
    permissions::{AccountRead, AccountWrite, Scope},
    state::AppState,
    store::accounts::AccountSettings,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(enrol_totp, disable_totp))
        .routes(routes!(activate_totp))
        .routes(routes!(regenerate_recovery_codes))
}

/// Regions an account can choose for where its sessions run.
pub const REGIONS: &[&str] = &[
    "us-east",
    "us-west",
    "eu-central",
    "eu-west",
    "ap-southeast",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorResponse {
    /// `api_key` or `user`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `key_…` or `usr_…`.
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    pub account_id: String,
    pub account_name: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountMeResponse {
    /// `acct_…`
    pub id: String,
    pub name: String,
    /// The plan, e.g. `trial`, `starter`, `pro` or `self_hosted`.
    pub tier: String,
    pub created_at: String,
    /// The credential that made this request.
    pub actor: ActorResponse,
    /// What that credential may do.
    pub scopes: Vec<Scope>,
    /// The accounts a signed-in user belongs to (empty for API keys).
    pub memberships: Vec<MembershipResponse>,
    /// A unique short name for the account (URLs, dashboards).
    pub slug: Option<String>,
    /// An IANA time zone for dates shown to the team.
    pub timezone: Option<String>,
    /// One of `us-east`, `us-west`, `eu-central`, `eu-west`, `ap-southeast`.
    pub region: Option<String>,
    pub avatar_url: Option<String>,
    /// The signed-in user (absent for API keys).
    pub user: Option<MeUser>,
    /// What a session of this plan gets when its request does not say (absent if the plan is
    /// not known to this server).
    pub session_defaults: Option<SessionDefaults>,
}

/// A plan's session defaults; a create request may lower them, never raise them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDefaults {
    /// Seconds without a command before a session is ended.
    pub idle_timeout_seconds: u32,
    /// The longest a session may live, in seconds.
    pub max_session_seconds: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    /// Whether you have a password (the first-start owner and people who only ever used sign-in
    /// links have none: step-up by password is not open to them until they set one). Always
    /// sent; optional in the schema only because it came after `/v1` was released.
    #[schema(required = false)]
    pub password_set: bool,
    /// Your role in this account.
    pub role: String,
}

/// The account of the calling credential.
///
/// Requires `account:read`.
#[utoipa::path(get, path = "/v1/account/me", tag = "account",
    responses((status = 200, body = AccountMeResponse),
              (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_me(
    State(state): State<AppState>,
    auth: Require<AccountRead>,
) -> Result<Json<AccountMeResponse>, ApiError> {
    me(&state, &auth.principal).await.map(Json)
}

async fn me(state: &AppState, p: &Principal) -> Result<AccountMeResponse, ApiError> {
    let account = state.accounts.get(&p.account_id).await?;
    let settings = state.accounts.settings(&p.account_id).await?;
    let user = match (&p.actor, &p.dashboard) {
        (Actor::User(id), Some(d)) => {
            let u = state.identity.user(id).await?;
            Some(MeUser {
                id: u.id.clone(),
                email: u.email.clone(),
                name: u.name.clone(),
                email_verified: u.email_verified_at.is_some(),
                mfa_enabled: u.mfa_enabled(),
                password_set: u.password_hash.is_some(),
                role: d.role.clone(),
            })
        }
        _ => None,
    };
    let (actor, memberships) = match &p.actor {
        Actor::ApiKey(id) => (
            ActorResponse {
                kind: "api_key",
                id: id.to_string(),
            },
            Vec::new(),
        ),
        Actor::User(id) => {
            let list = state.accounts.memberships(id).await?;
            let list = list
                .into_iter()
                .map(|m| MembershipResponse {
                    account_id: m.account_id.to_string(),
                    account_name: m.account_name,
                    role: m.role,
                })
                .collect();
            (
                ActorResponse {
                    kind: "user",
                    id: id.to_string(),
                },
                list,
            )
        }
    };
    let session_defaults = state.tiers.get(&account.tier).map(|t| SessionDefaults {
        idle_timeout_seconds: t.idle_timeout_seconds,
        max_session_seconds: t.max_session_seconds,
    });
    Ok(AccountMeResponse {
        session_defaults,
        id: account.id.to_string(),
        name: account.name,
        tier: account.tier,
        created_at: rfc3339(account.created_at),
        actor,
        scopes: p.scopes.iter().collect(),
        memberships,
        slug: settings.slug,
        timezone: settings.timezone,
        region: settings.region,
        avatar_url: settings.avatar_url,
        user,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// The account's display name, 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`.
    #[schema(value_type = Option<crate::identity::TimeZoneName>)]
    pub timezone: Option<String>,
    /// 3–40 characters: lowercase letters, digits and dashes, unique across accounts.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")]
    pub slug: Option<String>,
    /// One of `us-east`, `us-west`, `eu-central`, `eu-west`, `ap-southeast`.
    #[schema(pattern = "^(us-east|us-west|eu-central|eu-west|ap-southeast)$")]
    pub region: Option<String>,
    /// An `https` URL of an image.
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]://[^\\x00-\\x20\\x7f]+$"
    )]
    pub avatar_url: Option<String>,
}

impl Validate for UpdateMeRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(name) = &self.name {
            let n = name.chars().count();
            v.check(
                (1..=100).contains(&n) && !name.chars().any(char::is_control),
                "name",
                "must be 1 to 100 characters without control characters",
            );
        }
        if let Some(tz) = &self.timezone {
            v.check(
                crate::identity::is_timezone(tz),
                "timezone",
                "is not an IANA time zone such as Europe/Berlin",
            );
        }
        if let Some(slug) = &self.slug {
            v.check(
                (3..=40).contains(&slug.len())
                    && slug
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !slug.starts_with('-')
                    && !slug.ends_with('-'),
                "slug",
                "must be 3 to 40 lowercase letters, digits and inner dashes",
            );
        }
        if let Some(region) = &self.region {
            v.check(
                REGIONS.contains(&region.as_str()),
                "region",
                "must be one of us-east, us-west, eu-central, eu-west, ap-southeast",
            );
        }
        if let Some(url) = &self.avatar_url {
            v.check(
                url.len() <= 2048
                    && !url.chars().any(|c| c <= ' ' || c == '\u{7f}')
                    && url::Url::parse(url)
                        .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some()),
                "avatar_url",
                "must be an https URL of at most 2048 characters",
            );
        }
    }
}

/// Changes the account's name, time zone, slug, region or avatar.
///
/// Requires `account:write`. A slug another account has: 409 `slug_taken`.
#[utoipa::path(patch, path = "/v1/account/me", tag = "account",
    request_body(content = Option<UpdateMeRequest>),
    responses((status = 200, body = AccountMeResponse),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_me(
    State(state): State<AppState>,
    auth: Require<AccountWrite>,
    ValidatedJson(body): ValidatedJson<UpdateMeRequest>,
) -> Result<Json<AccountMeResponse>, ApiError> {
    let p = &auth.principal;
    let settings = AccountSettings {
        slug: body.slug.clone(),
        timezone: body.timezone.clone(),
        region: body.region.clone(),
        avatar_url: body.avatar_url.clone(),
    };
    state
        .accounts
        .update_settings(&p.account_id, body.name.as_deref(), &settings)
        .await
        .map_err(|e| match e {
            common::StoreError::Conflict => {
                ApiError::conflict("slug_taken", "Another account uses this slug.")
            }
            other => other.into(),
        })?;
    record(
        &state,
        p,
        "account.updated",
        json!({"fields": changed_fields(&body)}),
    )
    .await;
    me(&state, p).await.map(Json)
}

fn changed_fields(b: &UpdateMeRequest) -> Vec<&'static str> {
    [
        ("name", b.name.is_some()),
        ("timezone", b.timezone.is_some()),
        ("slug", b.slug.is_some()),
        ("region", b.region.is_some()),
        ("avatar_url", b.avatar_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect()
}

async fn record(state: &AppState, p: &Principal, action: &'static str, data: serde_json::Value) {
    let target = Some(p.actor.id().to_owned());
    state.record(Entry::by(p, action, target, data)).await;
}

// ---------------------------------------------------------------------------------------------
// Two-factor authentication (signed-in users only)

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…`
    pub otpauth_url: String,
    /// The otpauth URL as a QR code: `data:image/svg+xml;base64,…`
    pub qr_code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    #[schema(pattern = "^[0-9]{6}$")]
    /// A 6-digit code from the authenticator app.
    pub code: String,
}

impl Validate for TotpCode {
    fn validate(&self, v: &mut Violations) {
        v.check(
            self.code.trim().len() == 6 && self.code.trim().bytes().all(|b| b.is_ascii_digit()),
            "code",
            "must be 6 digits",
        );
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes; shown only now. Each replaces a TOTP code once.
    pub recovery_codes: Vec<String>,
}

/// Starts TOTP enrolment: a new secret, its otpauth URL and QR code. MFA is not on until
/// `POST /v1/account/2fa/totp/verify` confirms a code. Needs a fresh step-up (a password
/// sign-in within the step-up window counts): whoever holds a stolen token must not be able to
/// lock the account's owner out with their own authenticator.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/account/2fa/totp", tag = "account",
    responses((status = 200, body = TotpEnrolment),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn enrol_totp(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let (user_id, _) = principal.user()?;
    principal.require_step_up(&state.auth)?;
    let user = state.identity.user(user_id).await?;
    if user.mfa_enabled() {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "Two-factor authentication is already on; disable it first to enrol a new app.",
        ));
    }
    let e = state.identity.enrol_totp(&user).await?;
    Ok(Json(TotpEnrolment {
        secret: e.secret,
        otpauth_url: e.otpauth_url,
        qr_code: e.qr_code,
    }))
}

/// Turns MFA on with a code from the newly enrolled app; answers the ten recovery codes.
/// Needs a fresh step-up.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/account/2fa/totp/verify", tag = "account",
    request_body = TotpCode,
    responses((status = 200, body = RecoveryCodes),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn activate_totp(
    State(state): State<AppState>,
    principal: Principal,
    ValidatedJson(body): ValidatedJson<TotpCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let (user_id, _) = principal.user()?;
    principal.require_step_up(&state.auth)?;
    let user = state.identity.user(user_id).await?;
    if user.totp_pending_enc.is_none() {
        return Err(ApiError::conflict(
            "no_enrolment",
            "Start with POST /v1/account/2fa/totp.",
        ));
    }
    let codes = state
        .identity
        .activate_totp(&user, &body.code)
        .await
        .map_err(ApiError::from)?;
    record(&state, &principal, "auth.mfa_enabled", json!({})).await;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turns MFA off (and voids the recovery codes). Needs a fresh step-up.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(delete, path = "/v1/account/2fa/totp", tag = "account",
    responses((status = 204),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn disable_totp(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    let (user_id, _) = principal.user()?;
    principal.require_step_up(&state.auth)?;
    state.identity.store.disable_totp(user_id).await?;
    record(&state, &principal, "auth.mfa_disabled", json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes with ten new ones (the old ones stop working). Needs MFA on and a
/// fresh step-up.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/account/2fa/recovery-codes", tag = "account",
    responses((status = 200, body = RecoveryCodes),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let (user_id, _) = principal.user()?;
    principal.require_step_up(&state.auth)?;
    let user = state.identity.user(user_id).await?;
    if !user.mfa_enabled() {
        return Err(ApiError::conflict(
            "mfa_not_enabled",
            "Turn on two-factor authentication first.",
        ));
    }
    let (codes, hashes) = crate::identity::new_recovery_codes()?;
    state
        .identity
        .store
        .replace_recovery_codes(user_id, &hashes, state.clock.now_ms())
        .await?;
    record(
        &state,
        &principal,
        "auth.recovery_codes_regenerated",
        json!({}),
    )
    .await;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}
