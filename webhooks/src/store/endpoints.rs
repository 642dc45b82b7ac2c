//! Endpoints: their rows, and creating, reading, listing, changing, deleting them and rotating
//! their signing secrets, always within one account.

use common::{
    StoreError,
    clock::Millis,
    ids::{AccountId, WebhookEndpointId},
};

use super::WebhookStore;

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: WebhookEndpointId,
    pub account_id: AccountId,
    pub url: String,
    pub description: String,
    /// Event types it wants; empty means all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret_enc: Vec<u8>,
    pub old_secret_enc: Option<Vec<u8>>,
    pub old_secret_expires_at: Option<Millis>,
    pub failing_since: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Endpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EndpointRow {
    id: String,
    account_id: String,
    url: String,
    description: String,
    event_types: String,
    enabled: bool,
    disabled_reason: Option<String>,
    secret_enc: Vec<u8>,
    old_secret_enc: Option<Vec<u8>>,
    old_secret_expires_at: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<EndpointRow> for Endpoint {
    fn from(r: EndpointRow) -> Self {
        Endpoint {
            id: WebhookEndpointId::from_trusted(r.id),
            account_id: AccountId::from_trusted(r.account_id),
            url: r.url,
            description: r.description,
            event_types: r
                .event_types
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            secret_enc: r.secret_enc,
            old_secret_enc: r.old_secret_enc,
            old_secret_expires_at: r.old_secret_expires_at,
            failing_since: r.failing_since,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! select_endpoints {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, url, description, event_types, enabled, disabled_reason, ",
            "secret_enc, old_secret_enc, old_secret_expires_at, failing_since, created_at, ",
            "updated_at FROM webhook_endpoints ",
            $tail
        )
    };
}

pub(super) use select_endpoints;

/// Fields of an endpoint to change; `None` keeps the current value.
#[derive(Default)]
pub struct EndpointPatch<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a [String]>,
    pub enabled: Option<bool>,
}

impl WebhookStore {
    pub async fn create_endpoint(
        &self,
        account: &AccountId,
        url: &str,
        description: &str,
        event_types: &[String],
        secret_enc: &[u8],
        now: Millis,
    ) -> Result<Endpoint, StoreError> {
        let id = WebhookEndpointId::generate();
        self.db.execute("INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, \
                 enabled, secret_enc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $7)", &common::args![id.as_str(), account.as_str(), url, description, event_types.join(" ").as_str(), secret_enc, now]).await?;
        self.endpoint(account, &id).await
    }

    pub async fn endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<Endpoint, StoreError> {
        let row: EndpointRow = self
            .db
            .fetch_one(
                select_endpoints!("WHERE account_id = $1 AND id = $2"),
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    pub async fn endpoints(
        &self,
        account: &AccountId,
        starting_after: Option<&WebhookEndpointId>,
        limit: i64,
    ) -> Result<(Vec<Endpoint>, bool), StoreError> {
        let cursor = starting_after
            .map(WebhookEndpointId::as_str)
            .unwrap_or("whe_~");
        let (rows, more) = self
            .db
            .fetch_page::<EndpointRow>(
                select_endpoints!("WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
                account.as_str(),
                cursor,
                limit,
            )
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), more))
    }

    /// Changes the given fields; `enabled: true` also clears a failure streak.
    pub async fn update_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        patch: EndpointPatch<'_>,
        now: Millis,
    ) -> Result<Endpoint, StoreError> {
        let EndpointPatch {
            url,
            description,
            event_types,
            enabled,
        } = patch;
        let current = self.endpoint(account, id).await?;
        let types = event_types
            .map(|t| t.join(" "))
            .unwrap_or_else(|| current.event_types.join(" "));
        let enabled_now = enabled.unwrap_or(current.enabled);
        let reason = if enabled_now {
            None
        } else {
            current
                .disabled_reason
                .clone()
                .or(Some("disabled by the account".into()))
        };
        let failing = if enabled == Some(true) {
            None
        } else {
            current.failing_since
        };
        self.db
            .execute(
                "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, \
                 enabled = $6, disabled_reason = $7, failing_since = $8, updated_at = $9 \
                 WHERE account_id = $1 AND id = $2",
                &common::args![
                    account.as_str(),
                    id.as_str(),
                    url.unwrap_or(&current.url),
                    description.unwrap_or(&current.description),
                    types.as_str(),
                    enabled_now,
                    reason.as_deref(),
                    failing,
                    now
                ],
            )
            .await?;
        self.endpoint(account, id).await
    }

    pub async fn delete_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        let n = self
            .db
            .execute(
                "DELETE FROM webhook_endpoints WHERE account_id = $1 AND id = $2",
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Installs a new secret; the old one keeps signing until `old_expires_at`.
    pub async fn rotate_secret(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
        new_secret_enc: &[u8],
        old_expires_at: Millis,
        now: Millis,
    ) -> Result<Endpoint, StoreError> {
        let n = self.db.execute("UPDATE webhook_endpoints SET old_secret_enc = secret_enc, old_secret_expires_at = $4, \
                 secret_enc = $3, updated_at = $5 WHERE account_id = $1 AND id = $2", &common::args![account.as_str(), id.as_str(), new_secret_enc, old_expires_at, now]).await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.endpoint(account, id).await
    }
}
