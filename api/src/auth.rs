//! Authentication: resolves the bearer credential of a request into a [`Principal`]
//! (account, actor, permissions). API keys are checked offline for format and checksum first, so
//! garbage never costs a database round trip; valid-looking keys are looked up by SHA-256 digest
//! and cached for a short time. Revoking or rotating a key drops it from this node's cache at once;
//! other nodes see the change within [`CACHE_TTL`]. Expiry is checked on every request against the
//! clock, cached or not.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header};
use common::{
    Clock,
    ids::{AccountId, ApiKeyId, UserId},
};

use crate::{
    apikey::{self, KeyMode},
    error::ApiError,
    identity::Identity,
    permissions::Scopes,
    store::{
        accounts::AccountStore,
        keys::{ApiKey, KeyStore},
    },
};

/// How long a resolved key is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX_ENTRIES: usize = 50_000;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    User(UserId),
}

impl Actor {
    pub fn id(&self) -> &str {
        match self {
            Actor::ApiKey(id) => id.as_str(),
            Actor::User(id) => id.as_str(),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account_id: AccountId,
    pub actor: Actor,
    pub scopes: Scopes,
    /// The account's tier when the credential was resolved.
    pub tier: String,
    /// Set when the caller is an API key.
    pub key_mode: Option<KeyMode>,
    /// Set when the caller is a signed-in dashboard user.
    pub dashboard: Option<DashboardAuth>,
}

/// A dashboard sign-in behind a request.
#[derive(Clone, Debug)]
pub struct DashboardAuth {
    pub session_id: String,
    /// When the person last verified themselves (password or MFA).
    pub step_up_at: Option<common::clock::Millis>,
    pub role: String,
}

impl Principal {
    /// Sensitive actions by a dashboard user need a verification within the step-up window
    /// (`POST /v1/auth/mfa/step-up`); API keys are governed by their scopes alone.
    pub fn require_step_up(&self, auth: &AuthService) -> Result<(), ApiError> {
        let Some(d) = &self.dashboard else {
            return Ok(());
        };
        let window = i64::try_from(auth.step_up.as_millis()).unwrap_or(i64::MAX);
        let fresh = d
            .step_up_at
            .is_some_and(|at| auth.clock.now_ms() - at < window);
        if fresh {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "step_up_required",
                "This action needs a fresh verification: POST /v1/auth/mfa/step-up with your \
                 TOTP code (or a recovery code), or your password if MFA is off.",
            ))
        }
    }

    /// The signed-in user, for routes that only people (not API keys) can use.
    pub fn user(&self) -> Result<(&UserId, &DashboardAuth), ApiError> {
        match (&self.actor, &self.dashboard) {
            (Actor::User(id), Some(d)) => Ok((id, d)),
            _ => Err(ApiError::forbidden(
                "user_only",
                "This route is for signed-in dashboard users, not API keys.",
            )),
        }
    }
}

struct Cached {
    key: ApiKey,
    tier: String,
    fetched: Instant,
}

/// Resolves credentials: API keys (cached) and dashboard access tokens.
pub struct AuthService {
    keys: KeyStore,
    identity: Identity,
    accounts: AccountStore,
    clock: Clock,
    /// How long a dashboard verification counts as fresh for sensitive actions.
    step_up: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl AuthService {
    pub fn new(
        keys: KeyStore,
        identity: Identity,
        accounts: AccountStore,
        clock: Clock,
        step_up: Duration,
    ) -> Self {
        Self {
            keys,
            identity,
            accounts,
            clock,
            step_up,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Resolves the `Authorization: Bearer …` header: a dashboard access token or an API key.
    #[tracing::instrument(target = "phase", name = "phase", skip_all, fields(phase = "auth"))]
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| {
            ApiError::unauthorized(
                "Send an API key in the header `Authorization: Bearer ds_live_…`.",
            )
        })?;
        if token.starts_with(crate::identity::ACCESS_PREFIX) {
            return self.resolve_user(headers, token).await;
        }
        self.resolve_key(token).await
    }

    pub async fn resolve_key(&self, secret: &str) -> Result<Principal, ApiError> {
        let invalid = || ApiError::unauthorized("The API key is invalid, expired or revoked.");
        if apikey::check_format(secret).is_none() {
            return Err(invalid());
        }
        let hash = apikey::hash(secret);
        let now = self.clock.now_ms();
        let cached = {
            let cache = self.cache();
            cache
                .get(&hash)
                .filter(|c| c.fetched.elapsed() < CACHE_TTL)
                .map(|c| (c.key.clone(), c.tier.clone()))
        };
        let (key, tier) = match cached {
            Some(hit) => hit,
            None => {
                let (key, tier) = self.keys.find_by_hash(&hash).await?.ok_or_else(invalid)?;
                if key.is_usable(now)
                    && let Err(err) = self.keys.touch(&key.id, now).await
                {
                    tracing::warn!(error = %err, "could not record key use");
                }
                let mut cache = self.cache();
                if cache.len() >= CACHE_MAX_ENTRIES {
                    cache.clear();
                }
                cache.insert(
                    hash,
                    Cached {
                        key: key.clone(),
                        tier: tier.clone(),
                        fetched: Instant::now(),
                    },
                );
                (key, tier)
            }
        };
        if !key.is_usable(now) {
            return Err(invalid());
        }
        Ok(Principal {
            account_id: key.account_id.clone(),
            actor: Actor::ApiKey(key.id.clone()),
            scopes: key.scopes,
            tier,
            key_mode: Some(key.mode),
            dashboard: None,
        })
    }

    /// Drops a key from this node's cache (after revocation or rotation).
    pub fn forget_key(&self, id: &ApiKeyId) {
        self.cache().retain(|_, c| &c.key.id != id);
    }

    /// Drops every cached key of an account (after its tier changed).
    pub fn forget_account(&self, account: &AccountId) {
        self.cache().retain(|_, c| &c.key.account_id != account);
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl AuthService {
    /// Resolves a dashboard access token into the user acting on one of their accounts: the one named
    /// by `X-Account-Id` (which must be a membership), else their oldest membership. Their role in
    /// that account decides the permissions.
    async fn resolve_user(&self, headers: &HeaderMap, token: &str) -> Result<Principal, ApiError> {
        let invalid = || {
            ApiError::unauthorized(
                "The access token is invalid or expired; refresh it or sign in again.",
            )
        };
        let session = self
            .identity
            .resolve_access(token)
            .await?
            .ok_or_else(invalid)?;
        let user = UserId::from_trusted(session.user_id.clone());
        let memberships = self.accounts.memberships(&user).await?;
        let wanted = headers
            .get("x-account-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let membership = match wanted {
            Some(id) => memberships
                .iter()
                .find(|m| m.account_id.as_str() == id)
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "not_a_member",
                        "You are not a member of the account in X-Account-Id.",
                    )
                })?,
            None => memberships.first().ok_or_else(|| {
                ApiError::forbidden("not_a_member", "You are not a member of any account.")
            })?,
        };
        let account = self.accounts.get(&membership.account_id).await?;
        Ok(Principal {
            account_id: account.id,
            actor: Actor::User(user),
            scopes: crate::permissions::role_scopes(&membership.role),
            tier: account.tier,
            key_mode: None,
            dashboard: Some(DashboardAuth {
                session_id: session.session_id,
                step_up_at: session.step_up_at,
                role: membership.role.clone(),
            }),
        })
    }
}
