//! One module per resource, each exposing its routes to the OpenAPI router.

pub mod account;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod cdp;
pub mod docs;
pub mod fingerprint;
pub mod keys;
pub mod live;
pub mod live_links;
pub mod live_page;
pub mod profiles;
pub mod sessions;
pub mod socket;
pub mod system;
pub mod team;
pub mod usage;
pub mod webhooks;

use serde::Serialize;
use utoipa::ToSchema;

/// A page of a cursor-paginated list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Whether another page follows; fetch it with `starting_after` = the last id of this one.
    pub has_more: bool,
}
