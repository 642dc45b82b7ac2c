//! SQL for the tables the API crate owns: accounts, users and memberships, API keys, and
//! idempotency records. Handlers never see SQL; these stores never see HTTP. Every tenant-owned
//! query takes the account id first.

pub mod accounts;
pub mod billing;
pub mod deprecated_calls;
pub mod idempotency;
pub mod keys;
pub mod live_links;
pub mod team;
