//! Issuing API keys: the plan decides the mode (live keys need a paid tier), a key never gets
//! scopes its creator lacks, and every key issued is audited. Only the digest is stored; the plain
//! key is returned once.

use serde_json::json;

use crate::{
    apikey::{self, KeyMode},
    audit::Entry,
    auth::Principal,
    error::ApiError,
    permissions::Scopes,
    state::AppState,
    store::keys::{ApiKey, NewKey},
};

/// What a new key should be; `None` fields take the defaults (the plan's mode, the creator's
/// scopes).
pub struct KeyRequest<'a> {
    pub name: &'a str,
    pub mode: Option<KeyMode>,
    pub scopes: Option<Scopes>,
    pub expires_at: Option<i64>,
}

/// Issues a key for the principal's account, created by the principal; returns the record and
/// the plain key.
pub async fn issue(
    state: &AppState,
    principal: &Principal,
    request: KeyRequest<'_>,
) -> Result<(ApiKey, String), ApiError> {
    let tier = state
        .tiers
        .get(&principal.tier)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", principal.tier)))?;
    let mode = request.mode.unwrap_or(if tier.live_keys {
        KeyMode::Live
    } else {
        KeyMode::Test
    });
    if mode == KeyMode::Live && !tier.live_keys {
        return Err(ApiError::forbidden(
            "live_keys_require_paid_tier",
            "Live keys need a paid plan; this account can create `test` keys.",
        ));
    }
    let scopes = request.scopes.unwrap_or(principal.scopes);
    if !scopes.is_subset_of(principal.scopes) {
        return Err(ApiError::forbidden(
            "scope_escalation",
            "A key cannot be given scopes its creator does not have.",
        ));
    }
    let now = state.clock.now_ms();
    let (key, secret) = mint(
        state,
        principal,
        request.name,
        mode,
        scopes,
        request.expires_at,
        now,
    )
    .await?;
    state
        .record(Entry::by(
            principal,
            "api_key.created",
            Some(key.id.to_string()),
            json!({"name": request.name, "mode": mode.as_str(), "scopes": scopes.to_stored()}),
        ))
        .await;
    Ok((key, secret))
}

/// Generates a key and stores its digest; returns the record and the plain key.
async fn mint(
    state: &AppState,
    principal: &Principal,
    name: &str,
    mode: KeyMode,
    scopes: Scopes,
    expires_at: Option<i64>,
    now: i64,
) -> Result<(ApiKey, String), ApiError> {
    let secret = apikey::generate(mode)?;
    let hash = apikey::hash(&secret);
    let last4 = apikey::last4(&secret);
    let key = state
        .keys
        .insert(
            &principal.account_id,
            NewKey {
                name,
                mode,
                last4: &last4,
                hash: &hash,
                scopes,
                created_by: Some(principal.actor.id()),
                expires_at,
                now,
            },
        )
        .await?;
    Ok((key, secret))
}
