//! The dispatcher's side: leasing due deliveries (the only cross-account query), giving a lease
//! back, and recording finished attempts with what they do to their delivery and endpoint.

use common::{
    Backend, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, DeliveryId, WebhookEndpointId},
    on_db,
};

use super::WebhookStore;
use super::outbox::INSERT_CHUNK;

/// A delivery leased to a dispatcher, with what it needs to send it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub attempts: i32,
    pub base_attempt: i32,
    pub event_id: String,
    pub event_type: String,
    pub account_id: String,
    pub data: String,
    pub event_created_at: i64,
    pub endpoint_id: String,
    pub url: String,
    pub secret_enc: Vec<u8>,
    pub old_secret_enc: Option<Vec<u8>>,
    pub old_secret_expires_at: Option<i64>,
    pub failing_since: Option<i64>,
}

/// What happened to one attempt.
pub struct AttemptRecord {
    pub started_at: Millis,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The receiver's response headers, one `name: value` per line, at most 2 KiB.
    pub response_headers: Option<String>,
    pub response_excerpt: Option<String>,
}

/// An endpoint that was just disabled (its owners are told).
#[derive(Clone, Debug)]
pub struct Disabled {
    pub account_id: AccountId,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub reason: &'static str,
}

/// One finished attempt, ready to be recorded.
pub struct Outcome {
    pub claimed: Claimed,
    pub attempt: AttemptRecord,
    pub next: Next,
    pub disable: Option<&'static str>,
}

/// Where the delivery goes after an attempt.
pub enum Next {
    Delivered,
    Retry { at: Millis },
    Dead,
}

impl WebhookStore {
    /// Gives a leased delivery back: claimable again from `at`, its attempts untouched.
    pub async fn release(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE webhook_deliveries SET lease_until = $2, lease_token = NULL WHERE id = $1",
                &common::args![id, at],
            )
            .await?;
        Ok(())
    }

    /// Leases up to `limit` due deliveries of enabled endpoints until `lease_until`, and reads
    /// what is needed to send them (two statements, whatever the batch size).
    pub async fn claim(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let token = DeliveryId::generate().to_string();
        // Claiming is one UPDATE; the dialects differ only in the lock clause, so that on
        // PostgreSQL concurrent dispatchers skip each other's rows (SQLite has one writer).
        macro_rules! claim_sql {
            ($lock:literal) => {
                concat!(
                    "UPDATE webhook_deliveries SET lease_until = $2, lease_token = $4 WHERE id IN ( ",
                    "SELECT d.id FROM webhook_deliveries d ",
                    "JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = TRUE ",
                    "WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= $1 ",
                    "AND (d.lease_until IS NULL OR d.lease_until < $1) ",
                    "ORDER BY d.next_attempt_at LIMIT $3 ",
                    $lock,
                    ")"
                )
            };
        }
        let sql = match self.db.backend() {
            Backend::Postgres => claim_sql!("FOR UPDATE OF d SKIP LOCKED"),
            Backend::Sqlite => claim_sql!(""),
        };
        self.db
            .execute(sql, &common::args![now, lease_until, limit, &token])
            .await?;
        let claimed: Vec<Claimed> = self
            .db
            .fetch_all(
                "SELECT d.id, d.attempts, d.base_attempt, d.event_id, d.event_type, d.account_id, \
                 v.data, v.created_at AS event_created_at, d.endpoint_id, e.url, e.secret_enc, \
                 e.old_secret_enc, e.old_secret_expires_at, e.failing_since \
                 FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.lease_token = $1",
                &common::args![&token],
            )
            .await?;
        Ok(claimed)
    }

    /// Records attempts and moves their deliveries on, all in one transaction. A success clears
    /// the endpoint's failure streak; a failure starts one; `disable` turns the endpoint off.
    /// Returns the endpoints this call disabled, with the reason.
    pub async fn finish_attempts(
        &self,
        outcomes: &[Outcome],
        now: Millis,
    ) -> Result<Vec<Disabled>, StoreError> {
        let mut disabled = Vec::new();
        if outcomes.is_empty() {
            return Ok(disabled);
        }
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            // Attempts: many rows per statement.
            for chunk in outcomes.chunks(INSERT_CHUNK) {
                let rows = (0..chunk.len())
                    .map(|r| {
                        let b = r * 8;
                        format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, \
                     status_code, error, response_headers, response_excerpt) VALUES {rows}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for o in chunk {
                    q = q
                        .bind(o.claimed.id.as_str())
                        .bind(o.claimed.attempts + 1)
                        .bind(o.attempt.started_at)
                        .bind(o.attempt.duration_ms)
                        .bind(o.attempt.status_code)
                        .bind(o.attempt.error.as_deref())
                        .bind(o.attempt.response_headers.as_deref())
                        .bind(o.attempt.response_excerpt.as_deref());
                }
                q.execute(&mut *tx).await?;
            }
            for o in outcomes {
                let (status, next_at, delivered_at) = match o.next {
                    Next::Delivered => ("delivered", now, Some(now)),
                    Next::Retry { at } => ("failed", at, None),
                    Next::Dead => ("dead", now, None),
                };
                let claimed = &o.claimed;
                let attempt = &o.attempt;
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, \
                     next_attempt_at = $3, lease_until = NULL, lease_token = NULL, \
                     last_status_code = $4, delivered_at = COALESCE($5, delivered_at), \
                     updated_at = $6 WHERE id = $1",
                )
                .bind(&claimed.id)
                .bind(status)
                .bind(next_at)
                .bind(attempt.status_code)
                .bind(delivered_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // Only touch the endpoint when its streak changes, to keep batches cheap.
                if delivered_at.is_some() && claimed.failing_since.is_some() {
                    sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                        .bind(&claimed.endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                } else if delivered_at.is_none() && claimed.failing_since.is_none() {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                    )
                    .bind(&claimed.endpoint_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(reason) = o.disable {
                    let changed = sqlx::query(
                        "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, updated_at = $3 \
                         WHERE id = $1 AND enabled = TRUE",
                    )
                    .bind(&claimed.endpoint_id)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 1 {
                        disabled.push(Disabled {
                            account_id: AccountId::from_trusted(claimed.account_id.clone()),
                            endpoint_id: WebhookEndpointId::from_trusted(claimed.endpoint_id.clone()),
                            url: claimed.url.clone(),
                            reason,
                        });
                        let event = common::outbox::NewEvent::new(
                            &AccountId::from_trusted(claimed.account_id.clone()),
                            "webhook.endpoint_disabled",
                            serde_json::json!({"endpoint_id": claimed.endpoint_id, "message": reason}),
                            now,
                        );
                        common::insert_event!(event).execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(disabled)
    }
}
