//! Replay: queueing an account's deliveries again (one, or every failed or dead one in a time
//! range), same event and `webhook-id`, with a fresh retry schedule.

use common::{
    StoreError,
    clock::Millis,
    ids::{AccountId, DeliveryId, WebhookEndpointId},
};

use super::WebhookStore;
use super::deliveries::{DeliveryRow, DeliveryStatus};

impl WebhookStore {
    /// Queues a delivery again (same event, same `webhook-id`), with a fresh retry schedule.
    pub async fn replay(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Millis,
    ) -> Result<DeliveryRow, StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', base_attempt = attempts, \
                 next_attempt_at = $3, lease_until = NULL, lease_token = NULL, updated_at = $3 \
                 WHERE account_id = $1 AND id = $2",
                &common::args![account.as_str(), id.as_str(), now],
            )
            .await?;
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
        let n = self
            .db
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', base_attempt = attempts, \
                 next_attempt_at = $6, lease_until = NULL, lease_token = NULL, updated_at = $6 \
                 WHERE account_id = $1 AND ($2 IS NULL OR endpoint_id = $2) \
                 AND ((status = 'failed' AND $3) OR (status = 'dead' AND $4)) \
                 AND created_at >= $5 AND created_at < $7",
                &common::args![
                    account.as_str(),
                    endpoint.map(WebhookEndpointId::as_str),
                    failed,
                    dead,
                    since,
                    now,
                    until
                ],
            )
            .await?;
        Ok(n)
    }
}
