//! The events outbox: the one INSERT every crate uses to record an event *in the same
//! transaction* as the change that caused it, so an event is never lost nor invented.
//! The `webhooks` crate owns everything after that (fan-out to endpoints, delivery, replay).

use serde_json::Value;

use crate::{
    clock::Millis,
    ids::{AccountId, EventId},
};

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: EventId,
    pub account_id: AccountId,
    /// A type from the catalog, e.g. `session.created`.
    pub kind: &'static str,
    pub data: Value,
    pub created_at: Millis,
}

impl NewEvent {
    pub fn new(account_id: &AccountId, kind: &'static str, data: Value, now: Millis) -> Self {
        NewEvent {
            id: EventId::generate(),
            account_id: account_id.clone(),
            kind,
            data,
            created_at: now,
        }
    }
}

/// `sqlx::query` inserting `$event` into the outbox, ready for `.execute(&mut *tx)`.
#[macro_export]
macro_rules! insert_event {
    ($event:expr) => {
        sqlx::query(
            "INSERT INTO webhook_events (id, account_id, type, data, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($event.id.as_str())
        .bind($event.account_id.as_str())
        .bind($event.kind)
        .bind($event.data.to_string())
        .bind($event.created_at)
    };
}
