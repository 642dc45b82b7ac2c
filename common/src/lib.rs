//! Shared foundations of Driftstack: typed, prefixed ids; the database handle that runs one SQL text
//! on SQLite or PostgreSQL; the store error every store maps its failures into; the clock; the
//! sealing of secrets at rest ([`crypto::SecretBox`]); and the egress policy and resolver that
//! browsers, webhook deliveries and URL checks share; and the hot path's phase spans ([`phase!`]).
//!
//! This crate holds no business logic and knows nothing of HTTP or browsers.

pub mod clock;
pub mod crypto;
pub mod db;
pub mod egress;
pub mod ids;
pub mod outbox;
pub mod phase;

pub use clock::Clock;
pub use db::{Backend, Db, StoreError};
