//! Driftstack's webhooks: the event catalog, Standard Webhooks signing, the fan-out of outbox events into per-endpoint deliveries, and the at-least-once
//! dispatcher with an exponential retry schedule, a dead-letter queue and replay.
//!
//! This crate depends on no other domain crate: events reach it through the outbox table, which
//! every crate writes with `common::insert_event!` inside its own transactions.

pub mod catalog;
pub mod dispatcher;
pub mod schedule;
pub mod signing;
pub mod store;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use store::WebhookStore;
