//! Driftstack's HTTP API and its application layer. Read top-down (docs/ARCHITECTURE.md):
//! `serve`/`app` (composition and router) → `routes` (parse, call, map) → `service` (what the
//! API does: admission, keys, usage, access to a browser) → `state` (the stores and engines) →
//! the domain crates. `routing` sends session commands to the node that runs the session;
//! `auth`, `permissions`, `extract` and `error` are the edges every route shares.
//!
//! Domain crates (`runner`, `profiles`, `webhooks`) never see HTTP types; this crate converts.

pub mod apikey;
pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod cluster_keys;
pub mod config;
pub mod dashboard;
pub mod deprecation;
pub mod error;
pub mod extract;
pub mod identity;
pub mod mail;
pub mod mcp;
pub mod middleware;
pub mod node;
pub mod openapi;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod routes;
pub mod routing;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod spool;
pub mod state;
pub mod store;
pub mod tiers;
pub mod usage;

pub use app::{app, openapi_json, router_parts};
pub use serve::{build_state, open_database, serve};
