//! API keys. Only the SHA-256 digest of a key is stored; the plain key exists once, in the answer
//! to the request that created it.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, ApiKeyId},
    on_db,
};

use common::outbox::NewEvent;

use crate::{apikey::KeyMode, permissions::Scopes};

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub account_id: AccountId,
    pub name: String,
    pub mode: KeyMode,
    pub last4: String,
    pub scopes: Scopes,
    /// The user or key that created it (an id string), if known.
    pub created_by: Option<String>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub rotated_to: Option<ApiKeyId>,
    pub last_used_at: Option<Millis>,
}

impl ApiKey {
    /// Whether the key authenticates at `now`.
    pub fn is_usable(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    account_id: String,
    name: String,
    mode: String,
    last4: String,
    scopes: String,
    created_by: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rotated_to: Option<String>,
    last_used_at: Option<i64>,
}

impl From<KeyRow> for ApiKey {
    fn from(r: KeyRow) -> Self {
        ApiKey {
            id: ApiKeyId::from_trusted(r.id),
            account_id: AccountId::from_trusted(r.account_id),
            name: r.name,
            mode: KeyMode::parse(&r.mode).unwrap_or(KeyMode::Test),
            last4: r.last4,
            scopes: Scopes::from_stored(&r.scopes),
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            rotated_to: r.rotated_to.map(ApiKeyId::from_trusted),
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Clone)]
pub struct KeyStore {
    db: Db,
}

/// The pieces of a key that are stored.
pub struct NewKey<'a> {
    pub name: &'a str,
    pub mode: KeyMode,
    pub last4: &'a str,
    pub hash: &'a str,
    pub scopes: Scopes,
    pub created_by: Option<&'a str>,
    pub expires_at: Option<Millis>,
    pub now: Millis,
}

// The query texts are spelled out in full because sqlx wants `&'static str`.
macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, name, mode, last4, scopes, created_by, created_at, ",
            "expires_at, revoked_at, rotated_to, last_used_at FROM api_keys ",
            $tail
        )
    };
}

/// The INSERT of a new key with every value bound, for a pool or a transaction.
macro_rules! insert_key {
    ($id:expr, $account:expr, $new:expr) => {
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, mode, last4, key_hash, scopes, \
             created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($id.as_str())
        .bind($account.as_str())
        .bind($new.name)
        .bind($new.mode.as_str())
        .bind($new.last4)
        .bind($new.hash)
        .bind($new.scopes.to_stored())
        .bind($new.created_by)
        .bind($new.now)
        .bind($new.expires_at)
    };
}

impl KeyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(&self, account: &AccountId, new: NewKey<'_>) -> Result<ApiKey, StoreError> {
        let id = ApiKeyId::generate();
        let event = NewEvent::new(
            account,
            "api_key.created",
            serde_json::json!({"key_id": id, "name": new.name}),
            new.now,
        );
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            insert_key!(&id, account, &new).execute(&mut *tx).await?;
            common::insert_event!(event).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(ApiKey {
            id,
            account_id: account.clone(),
            name: new.name.to_owned(),
            mode: new.mode,
            last4: new.last4.to_owned(),
            scopes: new.scopes,
            created_by: new.created_by.map(str::to_owned),
            created_at: new.now,
            expires_at: new.expires_at,
            revoked_at: None,
            rotated_to: None,
            last_used_at: None,
        })
    }

    pub async fn get(&self, account: &AccountId, id: &ApiKeyId) -> Result<ApiKey, StoreError> {
        let row: KeyRow = self
            .db
            .fetch_one(
                select_keys!("WHERE account_id = $1 AND id = $2"),
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    /// One page of the account's keys, newest first.
    pub async fn list(
        &self,
        account: &AccountId,
        starting_after: Option<&ApiKeyId>,
        limit: i64,
    ) -> Result<(Vec<ApiKey>, bool), StoreError> {
        // Ids sort by creation time; "newest first" pages move towards smaller ids.
        let cursor = starting_after.map(ApiKeyId::as_str).unwrap_or("key_~");
        let (rows, more) = self
            .db
            .fetch_page::<KeyRow>(
                select_keys!("WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
                account.as_str(),
                cursor,
                limit,
            )
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), more))
    }

    /// The key with this digest and its account's tier, whatever its state.
    pub async fn find_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            tier: String,
            #[sqlx(flatten)]
            key: KeyRow,
        }
        let row: Option<Row> = self
            .db
            .fetch_optional(
                "SELECT a.tier, k.id, k.account_id, k.name, k.mode, k.last4, k.scopes, \
                 k.created_by, k.created_at, k.expires_at, k.revoked_at, k.rotated_to, \
                 k.last_used_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                 WHERE k.key_hash = $1",
                &common::args![hash],
            )
            .await?;
        Ok(row.map(|r| (r.key.into(), r.tier)))
    }

    pub async fn touch(&self, id: &ApiKeyId, now: Millis) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
                &common::args![id.as_str(), now],
            )
            .await?;
        Ok(())
    }

    /// Revokes the key at once. Revoking a revoked key changes nothing and is not an error.
    pub async fn revoke(
        &self,
        account: &AccountId,
        id: &ApiKeyId,
        now: Millis,
    ) -> Result<ApiKey, StoreError> {
        let event = NewEvent::new(
            account,
            "api_key.revoked",
            serde_json::json!({"key_id": id}),
            now,
        );
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE api_keys SET revoked_at = $3 \
                 WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.get(account, id).await
    }

    /// Replaces `old` with a new key in one transaction: the new key is inserted, the old one keeps
    /// working until `old_expires_at` (or its own earlier expiry) and points at its successor.
    /// Returns `NotFound` if `old` is missing or no longer usable at `new.now`.
    pub async fn rotate(
        &self,
        account: &AccountId,
        old: &ApiKeyId,
        new: NewKey<'_>,
        old_expires_at: Millis,
    ) -> Result<ApiKey, StoreError> {
        let id = ApiKeyId::generate();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE api_keys SET rotated_to = $3, \
                 expires_at = CASE WHEN expires_at IS NULL OR expires_at > $4 THEN $4 \
                 ELSE expires_at END \
                 WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $5)",
            )
            .bind(account.as_str())
            .bind(old.as_str())
            .bind(id.as_str())
            .bind(old_expires_at)
            .bind(new.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            insert_key!(&id, account, &new)
            .execute(&mut *tx)
            .await?;
            let event = NewEvent::new(
                account,
                "api_key.rotated",
                serde_json::json!({"key_id": old, "replaced_by": id, "name": new.name}),
                new.now,
            );
            common::insert_event!(event).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        self.get(account, &id).await
    }
}
