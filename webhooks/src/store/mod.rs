//! SQL for endpoints, the outbox fan-out, deliveries and attempts. Tenant-facing reads take the
//! account id first; the dispatcher's claim is the only cross-account query, and it hands out
//! leases rather than rows to read at leisure.

mod deliveries;
mod dispatch;
mod endpoints;
mod outbox;
mod replay;

pub use deliveries::{AttemptRow, DeliveryFilter, DeliveryRow, DeliveryStatus};
pub use dispatch::{AttemptRecord, Claimed, Disabled, Next, Outcome};
pub use endpoints::{Endpoint, EndpointPatch};

use common::Db;

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
}
