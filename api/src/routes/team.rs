//! The team: invitations by email with a role, acceptance by a signed-in user, the member list,
//! role changes and removal. Owner-level changes (granting, changing or removing the owner role)
//! are for owners only, and an account always keeps an owner. Role changes and removals need a
//! fresh step-up from dashboard users.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use common::{clock::rfc3339, ids::UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    audit::Entry,
    auth::Principal,
    error::{ApiError, Problem},
    extract::{ListParams, Validate, ValidatedJson, ValidatedQuery, Violations, parse_path_id},
    mail::Template,
    permissions::{TeamRead, TeamWrite},
    routes::Page,
    state::AppState,
    store::team::{Invite, Member, NewInvite, TeamRefusal},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invite, list_invites))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
}

/// How long an invitation can be accepted.
const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
pub const ROLES: &[&str] = &["owner", "admin", "developer", "viewer"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `owner` (owners only), `admin`, `developer` or `viewer`.
    #[schema(pattern = "^(owner|admin|developer|viewer)$")]
    pub role: String,
}

impl Validate for CreateInviteRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            crate::service::accounts::normalize_email(&self.email).is_ok(),
            "email",
            "is not an email address",
        );
        v.check(
            ROLES.contains(&self.role.as_str()),
            "role",
            "must be owner, admin, developer or viewer",
        );
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    /// The token from the invitation mail.
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
}

impl Validate for AcceptInviteRequest {
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
pub struct UpdateMemberRequest {
    /// `owner`, `admin`, `developer` or `viewer`.
    #[schema(pattern = "^(owner|admin|developer|viewer)$")]
    pub role: String,
}

impl Validate for UpdateMemberRequest {
    fn validate(&self, v: &mut Violations) {
        v.check(
            ROLES.contains(&self.role.as_str()),
            "role",
            "must be owner, admin, developer or viewer",
        );
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveMemberParams {
    /// Also revoke the API keys this member created in the account (default false: keys belong
    /// to the account and keep working, so automation does not break when someone leaves).
    pub revoke_keys: Option<bool>,
}

impl Validate for RemoveMemberParams {
    fn validate(&self, _: &mut Violations) {}
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InviteResponse {
    /// `inv_…`
    pub id: String,
    pub email: String,
    #[schema(pattern = "^(owner|admin|developer|viewer)$")]
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// Who invited (`usr_…` or `key_…`).
    pub invited_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    /// True when this answer re-sent a pending invitation (new link, new expiry).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resent: bool,
}

impl InviteResponse {
    fn new(i: Invite, now: i64, resent: bool) -> Self {
        InviteResponse {
            status: i.status(now).to_owned(),
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            accepted_at: i.accepted_at.map(rfc3339),
            resent,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    /// `usr_…`
    pub user_id: String,
    pub email: String,
    pub name: String,
    #[schema(pattern = "^(owner|admin|developer|viewer)$")]
    pub role: String,
    pub joined_at: String,
    pub mfa_enabled: bool,
}

impl From<Member> for MemberResponse {
    fn from(m: Member) -> Self {
        MemberResponse {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: rfc3339(m.joined_at),
            mfa_enabled: m.mfa_enabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedInvite {
    /// The account you joined; send it as `X-Account-Id` to act in it.
    pub account_id: String,
    #[schema(pattern = "^(owner|admin|developer|viewer)$")]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedMember {
    pub user_id: String,
    /// API keys the member created that were revoked (with `revoke_keys=true`).
    pub api_keys_revoked: u64,
    /// API keys the member created that keep working.
    pub api_keys_kept: Vec<String>,
}

fn refusal(e: TeamRefusal) -> ApiError {
    match e {
        TeamRefusal::AlreadyMember => ApiError::conflict(
            "already_member",
            "This person is already a member of the account.",
        ),
        TeamRefusal::LastOwner => ApiError::conflict(
            "last_owner",
            "The account must keep at least one owner; make someone else owner first.",
        ),
        TeamRefusal::NotFound => ApiError::not_found("member"),
        TeamRefusal::Store(e) => e.into(),
    }
}

fn owner_required() -> ApiError {
    ApiError::forbidden(
        "owner_required",
        "Only a signed-in owner can grant, change or remove the owner role; API keys never act \
         as owners.",
    )
}

/// Owner-level team changes (granting the owner role, changing or removing an owner, inviting
/// an owner) need an owner's own dashboard sign-in with a fresh step-up. API keys never qualify,
/// whatever their scopes: a key an admin created must not make its creator an owner.
fn require_owner(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    if p.dashboard.as_ref().is_none_or(|d| d.role != "owner") {
        return Err(owner_required());
    }
    p.require_step_up(&state.auth)
}

/// Invites someone by email (mail with a link, valid 7 days). Inviting an email with a pending
/// invitation re-sends it with a new link and expiry.
///
/// Requires `team:write`. Inviting an owner: a signed-in owner after a fresh step-up (never an
/// API key; 403 `owner_required`). An existing member: 409
/// `already_member`.
#[utoipa::path(post, path = "/v1/team/invites", tag = "team",
    request_body = CreateInviteRequest,
    responses((status = 201, body = InviteResponse),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_invite(
    State(state): State<AppState>,
    auth: Require<TeamWrite>,
    ValidatedJson(body): ValidatedJson<CreateInviteRequest>,
) -> Result<(StatusCode, Json<InviteResponse>), ApiError> {
    let p = auth.principal;
    if body.role == "owner" {
        require_owner(&state, &p)?;
    }
    let email = crate::service::accounts::normalize_email(&body.email)
        .map_err(|_| ApiError::invalid("email", "is not an email address"))?;
    let (token, hash) = crate::identity::new_token("dsinv_")?;
    let now = state.clock.now_ms();
    let (invite, resent) = state
        .team
        .invite(&NewInvite {
            account: &p.account_id,
            email: &email,
            role: &body.role,
            token_hash: &hash,
            by: p.actor.id(),
            now,
            expires_at: now + INVITE_TTL_MS,
        })
        .await
        .map_err(refusal)?;
    let account = state.accounts.get(&p.account_id).await?;
    let link = format!("{}/accept-invite?token={token}", state.public_url);
    state.mailer.send(Template::Invite.render(
        &email,
        &[
            ("account", &account.name),
            ("role", &body.role),
            ("link", &link),
        ],
    ));
    let action = if resent {
        "team.invite.resent"
    } else {
        "team.invite.created"
    };
    state
        .record(Entry::by(
            &p,
            action,
            Some(invite.id.clone()),
            json!({"email": email, "role": body.role}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(InviteResponse::new(invite, now, resent)),
    ))
}

/// Lists the account's invitations, newest first.
///
/// Requires `team:read`.
#[utoipa::path(get, path = "/v1/team/invites", tag = "team",
    params(ListParams),
    responses((status = 200, body = Page<InviteResponse>)),
    security(("bearer" = [])))]
pub async fn list_invites(
    State(state): State<AppState>,
    auth: Require<TeamRead>,
    ValidatedQuery(params): ValidatedQuery<ListParams>,
) -> Result<Json<Page<InviteResponse>>, ApiError> {
    let cursor: Option<common::ids::InviteId> = params.cursor()?;
    let (rows, has_more) = state
        .team
        .list_invites(
            &auth.principal.account_id,
            cursor.as_ref().map(|c| c.as_str()),
            params.limit(),
        )
        .await?;
    let now = state.clock.now_ms();
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|i| InviteResponse::new(i, now, false))
            .collect(),
        has_more,
    }))
}

/// Revokes a pending invitation (its link stops working).
///
/// Requires `team:write`.
#[utoipa::path(delete, path = "/v1/team/invites/{id}", tag = "team",
    params(("id" = String, Path, description = "`inv_…`")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke_invite(
    State(state): State<AppState>,
    auth: Require<TeamWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: common::ids::InviteId = parse_path_id(&id)?;
    let p = auth.principal;
    state
        .team
        .revoke_invite(&p.account_id, id.as_str(), state.clock.now_ms())
        .await
        .map_err(|e| match e {
            common::StoreError::NotFound => ApiError::not_found("pending invite"),
            other => other.into(),
        })?;
    state
        .record(Entry::by(
            &p,
            "team.invite.revoked",
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation as the signed-in user it was sent to (the emails must match). An
/// invitation for someone else, or an unknown token: 404. Expired, revoked or used: 410.
///
/// Requires `user`: a signed-in dashboard user (`Bearer dsat_…`), not an API key.
#[utoipa::path(post, path = "/v1/team/invites/accept", tag = "team",
    request_body = AcceptInviteRequest,
    responses((status = 200, body = AcceptedInvite),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn accept_invite(
    State(state): State<AppState>,
    principal: Principal,
    ValidatedJson(body): ValidatedJson<AcceptInviteRequest>,
) -> Result<Json<AcceptedInvite>, ApiError> {
    let (user_id, _) = principal.user()?;
    let user = state.identity.user(user_id).await?;
    let invite = state
        .team
        .invite_by_token(&crate::apikey::hash(&body.token))
        .await?
        .filter(|i| i.email == user.email)
        .ok_or_else(|| ApiError::not_found("invite"))?;
    let now = state.clock.now_ms();
    let gone = |code: &'static str, what: &str| {
        ApiError::new(
            StatusCode::GONE,
            code,
            format!("This invitation {what}; ask for a new one."),
        )
    };
    match invite.status(now) {
        "expired" => return Err(gone("invite_expired", "has expired")),
        "revoked" => return Err(gone("invite_revoked", "was revoked")),
        "accepted" => return Err(gone("invite_used", "was used already")),
        _ => {}
    }
    state
        .team
        .accept(&invite, user_id, now)
        .await
        .map_err(|e| match e {
            TeamRefusal::NotFound => gone("invite_used", "is no longer valid"),
            other => refusal(other),
        })?;
    let account = common::ids::AccountId::from_trusted(invite.account_id.clone());
    state
        .record(Entry {
            account_id: Some(account),
            actor: user_id.to_string(),
            action: "team.invite.accepted",
            target: Some(invite.id.clone()),
            ip: None,
            user_agent: None,
            data: json!({"role": invite.role}),
        })
        .await;
    Ok(Json(AcceptedInvite {
        account_id: invite.account_id,
        role: invite.role,
    }))
}

/// Lists the account's members, oldest first.
///
/// Requires `team:read`.
#[utoipa::path(get, path = "/v1/team/members", tag = "team",
    responses((status = 200, body = Page<MemberResponse>)),
    security(("bearer" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    auth: Require<TeamRead>,
) -> Result<Json<Page<MemberResponse>>, ApiError> {
    let members = state.team.members(&auth.principal.account_id).await?;
    Ok(Json(Page {
        data: members.into_iter().map(Into::into).collect(),
        has_more: false,
    }))
}

/// The member a sensitive change is about (after a fresh step-up); another account's member,
/// or a non-member, is a 404.
async fn member_to_change(
    state: &AppState,
    p: &Principal,
    raw_id: &str,
) -> Result<(UserId, Member), ApiError> {
    p.require_step_up(&state.auth)?;
    let user: UserId = parse_path_id(raw_id)?;
    let member = state
        .team
        .member(&p.account_id, &user)
        .await
        .map_err(|_| ApiError::not_found("member"))?;
    Ok((user, member))
}

/// Changes a member's role. The last owner cannot be demoted (409 `last_owner`); only owners
/// grant or take away the owner role, signed in to the dashboard (API keys never act as owners:
/// 403 `owner_required`). Needs a fresh step-up.
///
/// Requires `team:write`.
#[utoipa::path(patch, path = "/v1/team/members/{user_id}", tag = "team",
    params(("user_id" = String, Path, description = "`usr_…`")),
    request_body = UpdateMemberRequest,
    responses((status = 200, body = MemberResponse),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_member(
    State(state): State<AppState>,
    auth: Require<TeamWrite>,
    Path(user_id): Path<String>,
    ValidatedJson(body): ValidatedJson<UpdateMemberRequest>,
) -> Result<Json<MemberResponse>, ApiError> {
    let p = auth.principal;
    let (user, member) = member_to_change(&state, &p, &user_id).await?;
    if member.role == "owner" || body.role == "owner" {
        require_owner(&state, &p)?;
    }
    state
        .team
        .set_role(&p.account_id, &user, &body.role)
        .await
        .map_err(refusal)?;
    state
        .record(Entry::by(
            &p,
            "team.member.role_changed",
            Some(user.to_string()),
            json!({"from": member.role, "to": body.role}),
        ))
        .await;
    let member = state.team.member(&p.account_id, &user).await?;
    Ok(Json(member.into()))
}

/// Removes a member: their dashboard access to this account ends at once. API keys they created
/// keep working unless `revoke_keys=true` (the answer lists them either way). Removing an owner
/// is for signed-in owners only (never an API key); the last owner cannot be removed. Needs a
/// fresh step-up.
///
/// Requires `team:write`.
#[utoipa::path(delete, path = "/v1/team/members/{user_id}", tag = "team",
    params(("user_id" = String, Path, description = "`usr_…`"), RemoveMemberParams),
    responses((status = 200, body = RemovedMember),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: Require<TeamWrite>,
    Path(user_id): Path<String>,
    ValidatedQuery(params): ValidatedQuery<RemoveMemberParams>,
) -> Result<Json<RemovedMember>, ApiError> {
    let p = auth.principal;
    let (user, member) = member_to_change(&state, &p, &user_id).await?;
    if member.role == "owner" {
        require_owner(&state, &p)?;
    }
    let keys = state.team.keys_created_by(&p.account_id, &user).await?;
    let revoke = params.revoke_keys.unwrap_or(false);
    let revoked = state
        .team
        .remove(&p.account_id, &user, revoke, state.clock.now_ms())
        .await
        .map_err(refusal)?;
    if revoke {
        for k in &keys {
            if let Ok(id) = k.parse() {
                state.auth.forget_key(&id);
            }
        }
    }
    state
        .record(Entry::by(
            &p,
            "team.member.removed",
            Some(user.to_string()),
            json!({"role": member.role, "api_keys_revoked": revoked}),
        ))
        .await;
    Ok(Json(RemovedMember {
        user_id: user.to_string(),
        api_keys_revoked: revoked,
        api_keys_kept: if revoke { Vec::new() } else { keys },
    }))
}
