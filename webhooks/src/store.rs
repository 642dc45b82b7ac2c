//! SQL for endpoints, the outbox fan-out, deliveries and attempts. Tenant-facing reads take the
//! account id first; the dispatcher's claim is the only cross-account query, and it hands out
//! leases rather than rows to read at leisure.

use common::{
    Backend, Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, DeliveryId, WebhookEndpointId},
    on_db,
};

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
struct EndpointRow {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not attempted yet, or replayed.
    Pending,
    /// An attempt failed; another is scheduled.
    Failed,
    Delivered,
    /// Every attempt failed: in the dead-letter queue.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "failed" => DeliveryStatus::Failed,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub account_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub base_attempt: i32,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i32>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select_deliveries {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, event_id, endpoint_id, event_type, status, attempts, ",
            "base_attempt, next_attempt_at, last_status_code, delivered_at, created_at, updated_at ",
            "FROM webhook_deliveries ",
            $tail
        )
    };
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_headers: Option<String>,
    pub response_excerpt: Option<String>,
}

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

/// Filters of the delivery log.
#[derive(Default, Debug)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<WebhookEndpointId>,
    pub event_type: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

/// Fields of an endpoint to change; `None` keeps the current value.
#[derive(Default)]
pub struct EndpointPatch<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a [String]>,
    pub enabled: Option<bool>,
}

#[derive(Clone)]
pub struct WebhookStore {
    db: Db,
}

impl WebhookStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

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
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, \
                 enabled, secret_enc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $7)",
            )
            .bind(id.as_str())
            .bind(account.as_str())
            .bind(url)
            .bind(description)
            .bind(event_types.join(" "))
            .bind(secret_enc)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.endpoint(account, &id).await
    }

    pub async fn endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<Endpoint, StoreError> {
        let row: EndpointRow = on_db!(&self.db, pool => {
            sqlx::query_as(select_endpoints!("WHERE account_id = $1 AND id = $2"))
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_one(pool)
                .await
        })?;
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
        let rows: Vec<EndpointRow> = on_db!(&self.db, pool => {
            sqlx::query_as(select_endpoints!("WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"))
                .bind(account.as_str())
                .bind(cursor)
                .bind(limit + 1)
                .fetch_all(pool)
                .await
        })?;
        Ok(common::db::split_page(
            rows.into_iter().map(Into::into).collect(),
            limit,
        ))
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
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, \
                 enabled = $6, disabled_reason = $7, failing_since = $8, updated_at = $9 \
                 WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(url.unwrap_or(&current.url))
            .bind(description.unwrap_or(&current.description))
            .bind(types)
            .bind(enabled_now)
            .bind(reason)
            .bind(failing)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.endpoint(account, id).await
    }

    pub async fn delete_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookEndpointId,
    ) -> Result<(), StoreError> {
        let n = on_db!(&self.db, pool => {
            sqlx::query("DELETE FROM webhook_endpoints WHERE account_id = $1 AND id = $2")
                .bind(account.as_str())
                .bind(id.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
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
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE webhook_endpoints SET old_secret_enc = secret_enc, old_secret_expires_at = $4, \
                 secret_enc = $3, updated_at = $5 WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(new_secret_enc)
            .bind(old_expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.endpoint(account, id).await
    }

    /// Records an event in the outbox (for events that have no other change to ride with).
    pub async fn record(&self, event: &common::outbox::NewEvent) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            common::insert_event!(event).execute(pool).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Records an event for one endpoint only (a test message): the event skips fan-out and gets
    /// its single delivery at once. Returns the delivery id.
    pub async fn record_for_endpoint(
        &self,
        event: &common::outbox::NewEvent,
        endpoint: &WebhookEndpointId,
    ) -> Result<DeliveryId, StoreError> {
        let delivery = DeliveryId::generate();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            common::insert_event!(event).execute(&mut *tx).await?;
            sqlx::query("UPDATE webhook_events SET fanned_out = TRUE WHERE id = $1")
                .bind(event.id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, account_id, event_id, endpoint_id, event_type, \
                 status, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6)",
            )
            .bind(delivery.as_str())
            .bind(event.account_id.as_str())
            .bind(event.id.as_str())
            .bind(endpoint.as_str())
            .bind(event.kind)
            .bind(event.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(delivery)
    }

    /// Turns up to `limit` new events into deliveries for the endpoints that want them.
    /// Returns the number of events processed.
    pub async fn fan_out(&self, now: Millis, limit: i64) -> Result<usize, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Ev {
            id: String,
            account_id: String,
            #[sqlx(rename = "type")]
            kind: String,
        }
        // Per batch: endpoints read once per account; deliveries inserted and events marked
        // many rows per statement (the statements' placeholders are generated, never values).
        macro_rules! run {
            ($tx:expr, $select:expr) => {{
                let events: Vec<Ev> = sqlx::query_as($select)
                    .bind(limit)
                    .fetch_all(&mut *$tx)
                    .await?;
                let mut endpoints: std::collections::HashMap<String, Vec<Endpoint>> =
                    Default::default();
                let mut rows: Vec<(String, &Ev, String)> = Vec::new();
                for ev in &events {
                    if !endpoints.contains_key(&ev.account_id) {
                        let list: Vec<EndpointRow> = sqlx::query_as(select_endpoints!(
                            "WHERE account_id = $1 AND enabled = TRUE"
                        ))
                        .bind(&ev.account_id)
                        .fetch_all(&mut *$tx)
                        .await?;
                        endpoints.insert(
                            ev.account_id.clone(),
                            list.into_iter().map(Endpoint::from).collect(),
                        );
                    }
                    for ep in endpoints
                        .get(&ev.account_id)
                        .into_iter()
                        .flatten()
                        .filter(|e| e.wants(&ev.kind))
                    {
                        rows.push((DeliveryId::generate().to_string(), ev, ep.id.to_string()));
                    }
                }
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let sql = multi_row_insert(chunk.len());
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (id, ev, endpoint) in chunk {
                        q = q
                            .bind(id.as_str())
                            .bind(ev.account_id.as_str())
                            .bind(ev.id.as_str())
                            .bind(endpoint.as_str())
                            .bind(ev.kind.as_str())
                            .bind(now);
                    }
                    q.execute(&mut *$tx).await?;
                }
                for chunk in events.chunks(INSERT_CHUNK) {
                    let list = (1..=chunk.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql =
                        format!("UPDATE webhook_events SET fanned_out = TRUE WHERE id IN ({list})");
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for ev in chunk {
                        q = q.bind(ev.id.as_str());
                    }
                    q.execute(&mut *$tx).await?;
                }
                events.len()
            }};
        }
        let n = match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                let n = run!(
                    tx,
                    "SELECT id, account_id, type FROM webhook_events \
                                  WHERE fanned_out = FALSE ORDER BY id LIMIT $1"
                );
                tx.commit().await?;
                n
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                let n = run!(
                    tx,
                    "SELECT id, account_id, type FROM webhook_events \
                                  WHERE fanned_out = FALSE ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
                );
                tx.commit().await?;
                n
            }
        };
        Ok(n)
    }

    /// Gives a leased delivery back: claimable again from `at`, its attempts untouched.
    pub async fn release(&self, id: &str, at: Millis) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_until = $2, lease_token = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
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
        on_db!(&self.db, pool => {
            sqlx::query(sql)
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .bind(&token)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        let claimed: Vec<Claimed> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT d.id, d.attempts, d.base_attempt, d.event_id, d.event_type, d.account_id, \
                 v.data, v.created_at AS event_created_at, d.endpoint_id, e.url, e.secret_enc, \
                 e.old_secret_enc, e.old_secret_expires_at, e.failing_since \
                 FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.lease_token = $1",
            )
            .bind(&token)
            .fetch_all(pool)
            .await
        })?;
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

    pub async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        starting_after: Option<&DeliveryId>,
        limit: i64,
    ) -> Result<(Vec<DeliveryRow>, bool), StoreError> {
        let cursor = starting_after.map(DeliveryId::as_str).unwrap_or("dlv_~");
        // Optional filters as `($n IS NULL OR column = $n)` keep one static SQL text.
        let rows: Vec<DeliveryRow> = on_db!(&self.db, pool => {
            sqlx::query_as(select_deliveries!(
                "WHERE account_id = $1 AND id < $2 \
                 AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR endpoint_id = $4) \
                 AND ($5 IS NULL OR event_type = $5) AND ($6 IS NULL OR created_at >= $6) \
                 AND ($7 IS NULL OR created_at < $7) ORDER BY id DESC LIMIT $8"
            ))
            .bind(account.as_str())
            .bind(cursor)
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(filter.endpoint_id.as_ref().map(WebhookEndpointId::as_str))
            .bind(filter.event_type.as_deref())
            .bind(filter.since)
            .bind(filter.until)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
        })?;
        Ok(common::db::split_page(rows, limit))
    }

    pub async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<(DeliveryRow, Vec<AttemptRow>), StoreError> {
        let row: DeliveryRow = on_db!(&self.db, pool => {
            sqlx::query_as(select_deliveries!("WHERE account_id = $1 AND id = $2"))
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_one(pool)
                .await
        })?;
        let attempts: Vec<AttemptRow> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT attempt, started_at, duration_ms, status_code, error, response_headers, \
                 response_excerpt \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
            )
            .bind(id.as_str())
            .fetch_all(pool)
            .await
        })?;
        Ok((row, attempts))
    }

    /// Queues a delivery again (same event, same `webhook-id`), with a fresh retry schedule.
    pub async fn replay(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Millis,
    ) -> Result<DeliveryRow, StoreError> {
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', base_attempt = attempts, \
                 next_attempt_at = $3, lease_until = NULL, lease_token = NULL, updated_at = $3 \
                 WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(self.delivery(account, id).await?.0)
    }

    /// Queues again every delivery in `[since, until)` whose status is one of `statuses`
    /// (`failed` and/or `dead`), optionally of one endpoint. Returns how many.
    pub async fn replay_many(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookEndpointId>,
        statuses: &[DeliveryStatus],
        since: Millis,
        until: Millis,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let failed = statuses.contains(&DeliveryStatus::Failed);
        let dead = statuses.contains(&DeliveryStatus::Dead);
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', base_attempt = attempts, \
                 next_attempt_at = $6, lease_until = NULL, lease_token = NULL, updated_at = $6 \
                 WHERE account_id = $1 AND ($2 IS NULL OR endpoint_id = $2) \
                 AND ((status = 'failed' AND $3) OR (status = 'dead' AND $4)) \
                 AND created_at >= $5 AND created_at < $7",
            )
            .bind(account.as_str())
            .bind(endpoint.map(WebhookEndpointId::as_str))
            .bind(failed)
            .bind(dead)
            .bind(since)
            .bind(now)
            .bind(until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Counts by status, for the invariant events in = delivered + dead + pending (+ failed).
    pub async fn counts(&self, account: &AccountId) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM webhook_deliveries WHERE account_id = $1 GROUP BY status",
            )
            .bind(account.as_str())
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

/// Deliveries inserted by one statement during fan-out (6 parameters each).
const INSERT_CHUNK: usize = 100;

/// `INSERT INTO webhook_deliveries … VALUES (…), (…)` for `n` rows of 6 parameters.
fn multi_row_insert(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO webhook_deliveries (id, account_id, event_id, endpoint_id, event_type, \
         status, next_attempt_at, created_at, updated_at) VALUES ",
    );
    for row in 0..n {
        let b = row * 6;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, 'pending', ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 6,
            b + 6
        ));
    }
    sql
}
