//! Accounts: create one with its owner (sign-up, the admin CLI, the first start), create a key
//! for an account from the CLI, switch an account's tier; the default tier and the one email
//! normalisation every route uses.

use common::ids::AccountId;

use crate::{
    apikey::KeyMode,
    auth::{Actor, Principal},
    permissions::{Scope, Scopes},
    service::{self, keys::KeyRequest},
    state::AppState,
    store::accounts::NewAccount,
    tiers,
};

/// What the first start created.
pub struct Bootstrapped {
    pub email: String,
    pub account_id: AccountId,
    pub key: String,
    /// A one-time dashboard sign-in link (24 hours).
    pub sign_in_link: String,
}

/// On an empty database, creates the owner account (`DRIFTSTACK_OWNER_EMAIL`) and one key with
/// every scope. Returns `None` when any account already exists.
pub async fn bootstrap_owner(state: &AppState) -> anyhow::Result<Option<Bootstrapped>> {
    if state.accounts.count().await? > 0 {
        return Ok(None);
    }
    let tier = default_tier(state);
    let email = state.config.owner_email.clone();
    let account_id = create_account(state, &email, None, tier).await?;
    let key = create_key(state, &email, "Owner key", None, None).await?;
    let (_, user) = state.accounts.find_by_member_email(&email).await?;
    // Longer than a mailed magic link: the owner may read the log a while after the start.
    let token = state
        .identity
        .issue_link(
            crate::identity::LinkKind::Magic,
            &user,
            crate::identity::VERIFY_TTL,
        )
        .await?;
    Ok(Some(Bootstrapped {
        sign_in_link: format!("{}/magic-link?token={token}", state.public_url),
        email,
        account_id,
        key,
    }))
}

/// `self_hosted` unless billing is on, when new accounts start on the trial tier.
pub fn default_tier(state: &AppState) -> &'static str {
    if state.config.billing_enabled() {
        tiers::TRIAL
    } else {
        tiers::SELF_HOSTED
    }
}

pub async fn create_account(
    state: &AppState,
    email: &str,
    password: Option<&str>,
    tier: &str,
) -> anyhow::Result<AccountId> {
    let email = normalize_email(email)?;
    if state.tiers.get(tier).is_none() {
        let known: Vec<&str> = state.tiers.names().collect();
        anyhow::bail!("unknown tier `{tier}` (known: {})", known.join(", "));
    }
    let password_hash = match password {
        Some(p) => {
            crate::password::check_rules(p).map_err(|m| anyhow::anyhow!("password {m}"))?;
            Some(crate::password::hash(p)?)
        }
        None => None,
    };
    let name = email.split('@').next().unwrap_or("account").to_owned();
    let (account, _user) = state
        .accounts
        .create_with_owner(NewAccount {
            name: &name,
            tier,
            email: &email,
            password_hash: password_hash.as_deref(),
            now: state.clock.now_ms(),
        })
        .await
        .map_err(|e| match e {
            common::StoreError::Conflict => anyhow::anyhow!("a user with email {email} exists"),
            other => anyhow::Error::new(other),
        })?;
    Ok(account.id)
}

/// Creates a key for the oldest account of the user with this email; returns the plain key.
pub async fn create_key(
    state: &AppState,
    email: &str,
    name: &str,
    mode: Option<KeyMode>,
    scopes: Option<Vec<String>>,
) -> anyhow::Result<String> {
    let email = normalize_email(email)?;
    let (account, user) = state
        .accounts
        .find_by_member_email(&email)
        .await
        .map_err(|_| anyhow::anyhow!("no account has a member with email {email}"))?;
    let scopes = match scopes {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|s| {
                    Scope::parse(s.trim()).ok_or_else(|| anyhow::anyhow!("unknown scope `{s}`"))
                })
                .collect::<anyhow::Result<Scopes>>()?,
        ),
    };
    let principal = Principal {
        account_id: account.id,
        actor: Actor::User(user),
        scopes: Scopes::all(),
        tier: account.tier,
        key_mode: None,
        dashboard: None,
    };
    let request = KeyRequest {
        name,
        mode,
        scopes,
        expires_at: None,
    };
    let tier = principal.tier.clone();
    let (_, secret) = service::keys::issue(state, &principal, request)
        .await
        .map_err(|e| match e.code {
            "live_keys_require_paid_tier" => anyhow::anyhow!("tier `{tier}` allows only test keys"),
            _ => anyhow::anyhow!("could not create the key: {}", e.detail),
        })?;
    Ok(secret)
}

pub async fn set_tier(state: &AppState, email: &str, tier: &str) -> anyhow::Result<()> {
    let email = normalize_email(email)?;
    if state.tiers.get(tier).is_none() {
        anyhow::bail!("unknown tier `{tier}`");
    }
    let (account, _) = state
        .accounts
        .find_by_member_email(&email)
        .await
        .map_err(|_| anyhow::anyhow!("no account has a member with email {email}"))?;
    state.accounts.set_tier(&account.id, tier).await?;
    Ok(())
}

/// Trims and lowercases an email and checks its rough shape.
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
        });
    if !valid {
        anyhow::bail!("`{email}` is not an email address");
    }
    Ok(email)
}
