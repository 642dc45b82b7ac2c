//! The application layer: what the API does, whichever way a request arrived (a route, the admin
//! CLI, a background task). Each service takes the state and a principal, applies the plan's
//! rules, talks to the stores and the runner, and writes the audit entry; handlers only parse,
//! call and map. Services never see HTTP requests or responses.

pub mod accounts;
pub mod connect;
pub mod keys;
pub mod sessions;
pub mod usage;
