//! The outbox: recording events, and fanning new events out into one pending delivery per
//! endpoint that wants them.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{DeliveryId, WebhookEndpointId},
    on_db,
};

use super::WebhookStore;
use super::endpoints::{Endpoint, EndpointRow, select_endpoints};

impl WebhookStore {
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
}

/// Deliveries inserted by one statement during fan-out (6 parameters each).
pub(super) const INSERT_CHUNK: usize = 100;

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
