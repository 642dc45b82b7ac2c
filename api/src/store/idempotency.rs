//! Idempotency records: the first response to a `(account, Idempotency-Key)` pair, kept 24 hours.

use common::{Db, StoreError, clock::Millis, ids::AccountId};

/// How long a stored response is replayed.
pub const RETENTION_MS: Millis = 24 * 60 * 60 * 1000;
/// A request still marked in flight after this long is taken to have died with its server.
pub const ABANDONED_AFTER_MS: Millis = 10 * 60 * 1000;

/// What to do with a request that carries an idempotency key.
#[derive(Debug)]
pub enum Begin {
    /// First time seen: run it, then `complete` or `abandon`.
    Started,
    /// Seen with the same body: send this stored response.
    Replay {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// Seen with a different body.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

#[derive(sqlx::FromRow)]
struct Row {
    request_hash: String,
    response_status: Option<i32>,
    response_type: Option<String>,
    response_body: Option<Vec<u8>>,
    created_at: i64,
}

#[derive(Clone)]
pub struct IdempotencyStore {
    db: Db,
}

impl IdempotencyStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn begin(
        &self,
        account: &AccountId,
        key: &str,
        request_hash: &str,
        now: Millis,
    ) -> Result<Begin, StoreError> {
        // Two rounds at most: the second follows the removal of an expired or abandoned record.
        for _ in 0..2 {
            let inserted = self
                .db
                .execute(
                    "INSERT INTO idempotency_keys (account_id, idem_key, request_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, idem_key) DO NOTHING",
                    &common::args![account.as_str(), key, request_hash, now],
                )
                .await?;
            if inserted == 1 {
                return Ok(Begin::Started);
            }
            let row: Option<Row> = self.db.fetch_optional("SELECT request_hash, response_status, response_type, response_body, created_at \
                     FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2", &common::args![account.as_str(), key]).await?;
            let Some(row) = row else { continue };
            let expired = row.created_at + RETENTION_MS <= now;
            let abandoned =
                row.response_status.is_none() && row.created_at + ABANDONED_AFTER_MS <= now;
            if expired || abandoned {
                self.delete_if_created_at(account, key, row.created_at)
                    .await?;
                continue;
            }
            if row.request_hash != request_hash {
                return Ok(Begin::Mismatch);
            }
            return Ok(match row.response_status {
                None => Begin::InFlight,
                Some(status) => Begin::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    content_type: row.response_type,
                    body: row.response_body.unwrap_or_default(),
                },
            });
        }
        Ok(Begin::InFlight)
    }

    pub async fn complete(
        &self,
        account: &AccountId,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE idempotency_keys SET response_status = $3, response_type = $4, \
                 response_body = $5 WHERE account_id = $1 AND idem_key = $2",
                &common::args![account.as_str(), key, i32::from(status), content_type, body],
            )
            .await?;
        Ok(())
    }

    /// Forgets an in-flight record so that a retry runs the request again (after a server error).
    pub async fn abandon(&self, account: &AccountId, key: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2 \
                 AND response_status IS NULL",
                &common::args![account.as_str(), key],
            )
            .await?;
        Ok(())
    }

    async fn delete_if_created_at(
        &self,
        account: &AccountId,
        key: &str,
        created_at: Millis,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM idempotency_keys WHERE account_id = $1 AND idem_key = $2 \
                 AND created_at = $3",
                &common::args![account.as_str(), key, created_at],
            )
            .await?;
        Ok(())
    }

    /// Removes records past their retention; returns how many.
    pub async fn purge(&self, now: Millis) -> Result<u64, StoreError> {
        let n = self
            .db
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at <= $1",
                &common::args![now - RETENTION_MS],
            )
            .await?;
        Ok(n)
    }
}
