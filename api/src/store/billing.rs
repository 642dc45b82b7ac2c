//! The billing columns of `accounts` (Stripe customer and subscription, status, plan, period)
//! and the record of Stripe events already handled, so a re-delivered event changes nothing.

use common::{
    Db, StoreError, clock::Millis, db::BeginWrite, ids::AccountId, on_db, outbox::NewEvent,
};
use serde_json::json;

#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct BillingRow {
    pub tier: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub billing_status: Option<String>,
    pub billing_plan: Option<String>,
    pub billing_period_end: Option<i64>,
}

/// What a Stripe event does to an account.
#[derive(Clone, Debug)]
pub struct Change {
    pub account: AccountId,
    /// The new tier, if it changes.
    pub tier: Option<String>,
    pub plan: Option<String>,
    pub status: Option<String>,
    /// `Some(None)` clears the subscription.
    pub subscription: Option<Option<String>>,
    pub period_end: Option<Millis>,
}

/// The outcome of handling an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Seen before: nothing changed.
    Duplicate,
    /// Recorded; `Some((from, to))` when the tier changed.
    Applied(Option<(String, String)>),
}

#[derive(Clone)]
pub struct BillingStore {
    db: Db,
}

impl BillingStore {
    pub fn new(db: Db) -> Self {
        BillingStore { db }
    }

    pub async fn get(&self, account: &AccountId) -> Result<BillingRow, StoreError> {
        self.db
            .fetch_one(
                "SELECT tier, stripe_customer_id, stripe_subscription_id, billing_status, \
                 billing_plan, billing_period_end FROM accounts WHERE id = $1",
                &common::args![account.as_str()],
            )
            .await
    }

    /// Stores the account's customer id unless one is already there; returns the one kept.
    pub async fn set_customer(
        &self,
        account: &AccountId,
        customer: &str,
    ) -> Result<String, StoreError> {
        self.db.execute("UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL", &common::args![account.as_str(), customer]).await?;
        self.get(account)
            .await?
            .stripe_customer_id
            .ok_or(StoreError::NotFound)
    }

    pub async fn account_by_customer(
        &self,
        customer: &str,
    ) -> Result<Option<AccountId>, StoreError> {
        let id: Option<String> = self
            .db
            .scalar_optional(
                "SELECT id FROM accounts WHERE stripe_customer_id = $1",
                &common::args![customer],
            )
            .await?;
        Ok(id.map(AccountId::from_trusted))
    }

    /// Records Stripe event `event_id` and applies `change`, once: a repeated id changes
    /// nothing. A tier change records `billing.subscription_changed` in the same transaction.
    pub async fn apply(
        &self,
        event_id: &str,
        event_type: &str,
        change: Option<&Change>,
        now: Millis,
    ) -> Result<Handled, StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let fresh = sqlx::query(
                "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(event_id)
            .bind(event_type)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                return Ok(Handled::Duplicate);
            }
            let mut tier_change = None;
            if let Some(c) = change {
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT tier FROM accounts WHERE id = $1",
                )
                .bind(c.account.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(current) = current else {
                    tx.commit().await?;
                    return Ok(Handled::Applied(None));
                };
                let (set_sub, sub) = match &c.subscription {
                    Some(s) => (true, s.clone()),
                    None => (false, None),
                };
                sqlx::query(
                    "UPDATE accounts SET tier = COALESCE($2, tier), \
                     billing_plan = COALESCE($3, billing_plan), \
                     billing_status = COALESCE($4, billing_status), \
                     stripe_subscription_id = CASE WHEN $5 THEN $6 ELSE stripe_subscription_id END, \
                     billing_period_end = COALESCE($7, billing_period_end) WHERE id = $1",
                )
                .bind(c.account.as_str())
                .bind(&c.tier)
                .bind(&c.plan)
                .bind(&c.status)
                .bind(set_sub)
                .bind(&sub)
                .bind(c.period_end)
                .execute(&mut *tx)
                .await?;
                if let Some(new) = c.tier.as_ref().filter(|t| **t != current) {
                    let event = NewEvent::new(
                        &c.account,
                        "billing.subscription_changed",
                        json!({"tier": new, "previous_tier": current, "status": c.status}),
                        now,
                    );
                    common::insert_event!(event).execute(&mut *tx).await?;
                    tier_change = Some((current, new.clone()));
                }
            }
            tx.commit().await?;
            Ok(Handled::Applied(tier_change))
        })
    }
}
