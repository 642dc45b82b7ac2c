//! Webhooks: endpoints (secrets shown once, rotation with both secrets signing), the event
//! catalog, the delivery log with every attempt, and replay of one delivery or many.

mod deliveries;
mod endpoints;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use common::{
    clock::{parse_rfc3339, rfc3339},
    ids::{DeliveryId, WebhookEndpointId},
    outbox::NewEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use webhooks::{
    catalog::{self, CATALOG},
    signing,
    store::{AttemptRow, DeliveryFilter, DeliveryRow, DeliveryStatus, Endpoint, EndpointPatch},
};

use crate::extract::Require;
use crate::{
    audit::{Entry, redact_url},
    error::{ApiError, Problem},
    extract::{ListParams, Validate, ValidatedJson, ValidatedQuery, Violations, parse_path_id},
    permissions::{WebhooksRead, WebhooksWrite},
    routes::Page,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            endpoints::create_endpoint,
            endpoints::list_endpoints
        ))
        .routes(routes!(
            endpoints::get_endpoint,
            endpoints::update_endpoint,
            endpoints::delete_endpoint
        ))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::send_test))
        .routes(routes!(endpoints::event_catalog))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(deliveries::replay_delivery))
        .routes(routes!(deliveries::replay_many))
}

const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;

fn endpoint_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    parse_path_id(raw)
}

fn not_found(what: &'static str) -> impl Fn(common::StoreError) -> ApiError {
    move |e| match e {
        common::StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}
