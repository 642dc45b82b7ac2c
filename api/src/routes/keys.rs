//! API keys: create (the secret is shown once), list, get, revoke, and rotate with a grace period
//! during which the old key keeps working.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use common::{clock::rfc3339, ids::ApiKeyId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    apikey::{self, KeyMode},
    audit::Entry,
    error::{ApiError, Problem},
    extract::{ListParams, Validate, ValidatedJson, ValidatedQuery, Violations, parse_path_id},
    permissions::{KeysRead, KeysWrite, Scope},
    routes::Page,
    service,
    state::AppState,
    store::keys::{ApiKey, NewKey},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(get_key, revoke_key))
        .routes(routes!(rotate_key))
}

/// Default grace period of a rotated key.
pub const DEFAULT_GRACE_SECONDS: u32 = 24 * 60 * 60;
/// Longest grace period a rotation may ask for.
pub const MAX_GRACE_SECONDS: u32 = 7 * 24 * 60 * 60;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label for people, 1–100 characters. Default `API key`.
    pub name: Option<String>,
    /// `live` (needs a paid or self-hosted tier) or `test`. Default: `live` where the tier allows it.
    pub mode: Option<KeyMode>,
    /// Permissions of the key; default all of the creator's. Never more than the creator has.
    #[schema(min_items = 1)]
    pub scopes: Option<Vec<Scope>>,
    /// Days until the key stops working by itself, 1–3650. Default: never.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

fn validate_name(name: Option<&str>, v: &mut Violations) {
    if let Some(name) = name {
        let len = name.chars().count();
        v.check(
            (1..=100).contains(&len),
            "name",
            "must be 1 to 100 characters",
        );
        v.check(
            !name.chars().any(char::is_control),
            "name",
            "must not contain control characters",
        );
    }
}

impl Validate for CreateApiKeyRequest {
    fn validate(&self, v: &mut Violations) {
        validate_name(self.name.as_deref(), v);
        if let Some(days) = self.expires_in_days {
            v.check(
                (1..=3650).contains(&days),
                "expires_in_days",
                "must be between 1 and 3650",
            );
        }
        if self.scopes.as_ref().is_some_and(Vec::is_empty) {
            v.add("scopes", "must name at least one scope");
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// How long the old key keeps working, 0–604800 seconds (7 days). Default 86400 (24 hours);
    /// 0 stops it at once (after a leak).
    #[schema(maximum = 604800)]
    pub grace_seconds: Option<u32>,
}

impl Validate for RotateApiKeyRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(g) = self.grace_seconds {
            v.check(
                g <= MAX_GRACE_SECONDS,
                "grace_seconds",
                "must be between 0 and 604800",
            );
        }
    }
}

/// The state of a key at the time of the answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    /// Works until `expires_at` (for example during a rotation's grace period).
    Expiring,
    Expired,
    Revoked,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    /// `key_…`
    pub id: String,
    pub name: String,
    pub mode: KeyMode,
    /// `ds_live_` or `ds_test_`.
    pub prefix: &'static str,
    /// The last four characters of the key.
    pub last4: String,
    pub scopes: Vec<Scope>,
    pub status: KeyStatus,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The key that replaced this one by rotation.
    pub rotated_to: Option<String>,
    /// The key itself: present only in the answer that created it. Store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyResponse {
    fn new(key: ApiKey, now: i64, secret: Option<String>) -> Self {
        let status = match (key.revoked_at, key.expires_at) {
            (Some(_), _) => KeyStatus::Revoked,
            (None, Some(t)) if t <= now => KeyStatus::Expired,
            (None, Some(_)) => KeyStatus::Expiring,
            (None, None) => KeyStatus::Active,
        };
        ApiKeyResponse {
            id: key.id.to_string(),
            name: key.name,
            mode: key.mode,
            prefix: key.mode.prefix(),
            last4: key.last4,
            scopes: key.scopes.iter().collect(),
            status,
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
            rotated_to: key.rotated_to.map(|id| id.to_string()),
            key: secret,
        }
    }
}

/// Creates a key and shows it once.
///
/// Requires `keys:write`.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    request_body(content = Option<CreateApiKeyRequest>),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 hours")),
    responses((status = 201, body = ApiKeyResponse),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    auth: Require<KeysWrite>,
    ValidatedJson(body): ValidatedJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    let principal = auth.principal;
    principal.require_step_up(&state.auth)?;
    let now = state.clock.now_ms();
    let (key, secret) = service::keys::issue(
        &state,
        &principal,
        service::keys::KeyRequest {
            name: body.name.as_deref().unwrap_or("API key"),
            mode: body.mode,
            scopes: body
                .scopes
                .as_ref()
                .map(|list| list.iter().copied().collect()),
            expires_at: body
                .expires_in_days
                .map(|d| now + i64::from(d) * 86_400_000),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyResponse::new(key, now, Some(secret))),
    ))
}

/// Lists the account's keys, newest first. Secrets are never listed.
///
/// Requires `keys:read`.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    params(ListParams),
    responses((status = 200, body = Page<ApiKeyResponse>),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    auth: Require<KeysRead>,
    ValidatedQuery(params): ValidatedQuery<ListParams>,
) -> Result<Json<Page<ApiKeyResponse>>, ApiError> {
    let cursor: Option<ApiKeyId> = params.cursor()?;
    let (keys, has_more) = state
        .keys
        .list(&auth.principal.account_id, cursor.as_ref(), params.limit())
        .await?;
    let now = state.clock.now_ms();
    Ok(Json(Page {
        data: keys
            .into_iter()
            .map(|k| ApiKeyResponse::new(k, now, None))
            .collect(),
        has_more,
    }))
}

/// One key.
///
/// Requires `keys:read`.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "`key_…`")),
    responses((status = 200, body = ApiKeyResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_key(
    State(state): State<AppState>,
    auth: Require<KeysRead>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let id: ApiKeyId = parse_path_id(&id)?;
    let key = state
        .keys
        .get(&auth.principal.account_id, &id)
        .await
        .map_err(|e| not_found_key(e.into()))?;
    Ok(Json(ApiKeyResponse::new(key, state.clock.now_ms(), None)))
}

/// Revokes a key: it stops working at once, on every node within 30 seconds and on the node that
/// answered immediately. The key stays on record: `GET /v1/api-keys/{id}` and the list answer it
/// with `status: "revoked"` and `revoked_at`.
///
/// Requires `keys:write`.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "`key_…`")),
    responses((status = 200, body = ApiKeyResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    auth: Require<KeysWrite>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    auth.principal.require_step_up(&state.auth)?;
    let id: ApiKeyId = parse_path_id(&id)?;
    let now = state.clock.now_ms();
    let key = state
        .keys
        .revoke(&auth.principal.account_id, &id, now)
        .await
        .map_err(|e| not_found_key(e.into()))?;
    state.auth.forget_key(&id);
    state
        .record(Entry::by(
            &auth.principal,
            "api_key.revoked",
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok(Json(ApiKeyResponse::new(key, now, None)))
}

/// Replaces a key with a new one (shown once, same name, mode and scopes). The old key keeps
/// working for `grace_seconds` (default 24 hours), then stops.
///
/// Requires `keys:write`, and every scope of the key being rotated (403 `scope_escalation`
/// otherwise).
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys",
    params(("id" = String, Path, description = "`key_…`"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 hours")),
    request_body(content = Option<RotateApiKeyRequest>),
    responses((status = 201, body = ApiKeyResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The key is revoked, expired or already rotated (`key_not_active`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    auth: Require<KeysWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<RotateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    auth.principal.require_step_up(&state.auth)?;
    let id: ApiKeyId = parse_path_id(&id)?;
    let account = &auth.principal.account_id;
    let old = state
        .keys
        .get(account, &id)
        .await
        .map_err(|e| not_found_key(e.into()))?;
    // The new secret carries the old key's scopes: the caller must hold them all, as creating
    // such a key would require.
    if !old.scopes.is_subset_of(auth.principal.scopes) {
        return Err(ApiError::forbidden(
            "scope_escalation",
            "A key can be rotated only by a credential holding every scope of that key.",
        ));
    }
    let now = state.clock.now_ms();
    if !old.is_usable(now) || old.rotated_to.is_some() {
        return Err(ApiError::conflict(
            "key_not_active",
            "Only a key that still works, and was not rotated already, can be rotated (rotate \
             its successor instead).",
        ));
    }
    let grace = body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    let secret = apikey::generate(old.mode)?;
    let hash = apikey::hash(&secret);
    let last4 = apikey::last4(&secret);
    let new = NewKey {
        name: &old.name,
        mode: old.mode,
        last4: &last4,
        hash: &hash,
        scopes: old.scopes,
        created_by: Some(auth.principal.actor.id()),
        expires_at: old.expires_at,
        now,
    };
    let key = state
        .keys
        .rotate(account, &id, new, now + i64::from(grace) * 1000)
        .await
        .map_err(|e| not_found_key(e.into()))?;
    state.auth.forget_key(&id);
    state
        .record(Entry::by(
            &auth.principal,
            "api_key.rotated",
            Some(id.to_string()),
            json!({"new_key": key.id, "grace_seconds": grace}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyResponse::new(key, now, Some(secret))),
    ))
}

fn not_found_key(err: ApiError) -> ApiError {
    if err.status == StatusCode::NOT_FOUND {
        ApiError::not_found("API key")
    } else {
        err
    }
}
