//! The calling account: who you are and what you may do.

use axum::{Json, extract::State};
use common::clock::rfc3339;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Actor,
    error::{ApiError, Problem},
    permissions::{AccountRead, Require, Scope},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me))
}

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
    let p = auth.principal;
    let account = state.accounts.get(&p.account_id).await?;
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
    Ok(Json(AccountMeResponse {
        id: account.id.to_string(),
        name: account.name,
        tier: account.tier,
        created_at: rfc3339(account.created_at),
        actor,
        scopes: p.scopes.iter().collect(),
        memberships,
    }))
}
