//! The delivery log an account reads: deliveries with their status, filters, one delivery with
//! its attempts, and counts by status.

use common::{
    StoreError,
    clock::Millis,
    ids::{AccountId, DeliveryId, WebhookEndpointId},
};

use super::WebhookStore;

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

/// Filters of the delivery log.
#[derive(Default, Debug)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<WebhookEndpointId>,
    pub event_type: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

impl WebhookStore {
    pub async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        starting_after: Option<&DeliveryId>,
        limit: i64,
    ) -> Result<(Vec<DeliveryRow>, bool), StoreError> {
        let cursor = starting_after.map(DeliveryId::as_str).unwrap_or("dlv_~");
        // Optional filters as `($n IS NULL OR column = $n)` keep one static SQL text.
        let rows: Vec<DeliveryRow> = self
            .db
            .fetch_all(
                select_deliveries!(
                    "WHERE account_id = $1 AND id < $2 \
                 AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR endpoint_id = $4) \
                 AND ($5 IS NULL OR event_type = $5) AND ($6 IS NULL OR created_at >= $6) \
                 AND ($7 IS NULL OR created_at < $7) ORDER BY id DESC LIMIT $8"
                ),
                &common::args![
                    account.as_str(),
                    cursor,
                    filter.status.map(DeliveryStatus::as_str),
                    filter.endpoint_id.as_ref().map(WebhookEndpointId::as_str),
                    filter.event_type.as_deref(),
                    filter.since,
                    filter.until,
                    limit + 1
                ],
            )
            .await?;
        Ok(common::db::split_page(rows, limit))
    }

    pub async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<(DeliveryRow, Vec<AttemptRow>), StoreError> {
        let row: DeliveryRow = self
            .db
            .fetch_one(
                select_deliveries!("WHERE account_id = $1 AND id = $2"),
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
        let attempts: Vec<AttemptRow> = self
            .db
            .fetch_all(
                "SELECT attempt, started_at, duration_ms, status_code, error, response_headers, \
                 response_excerpt \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
                &common::args![id.as_str()],
            )
            .await?;
        Ok((row, attempts))
    }

    /// Counts by status, for the invariant events in = delivered + dead + pending (+ failed).
    pub async fn counts(&self, account: &AccountId) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = self.db.fetch_all("SELECT status, COUNT(*) FROM webhook_deliveries WHERE account_id = $1 GROUP BY status", &common::args![account.as_str()]).await?;
        Ok(rows)
    }
}
