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

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use common::{
    Clock,
    ids::{AccountId, ApiKeyId, UserId},
};

use crate::{
    apikey::{self, KeyMode},
    error::ApiError,
    permissions::Scopes,
    state::AppState,
    store::keys::{ApiKey, KeyStore},
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
}

struct Cached {
    key: ApiKey,
    tier: String,
    fetched: Instant,
}

pub struct AuthService {
    keys: KeyStore,
    clock: Clock,
    cache: Mutex<HashMap<String, Cached>>,
}

impl AuthService {
    pub fn new(keys: KeyStore, clock: Clock) -> Self {
        Self {
            keys,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Resolves the `Authorization: Bearer …` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| {
            ApiError::unauthorized(
                "Send an API key in the header `Authorization: Bearer ds_live_…`.",
            )
        })?;
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

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The idempotency middleware may already have resolved the caller.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = state.auth.authenticate(&parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
