//! Webhook endpoints: add (the signing secret shown once), list, read, change, delete,
//! rotate the secret with a grace period, send a test event; and the event catalog.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// An `https` (or `http`) URL that is reachable under the egress rules.
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$"
    )]
    pub url: String,
    pub description: Option<String>,
    /// Event types to receive (see `GET /v1/webhooks/events`); empty or absent: all.
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$"
    )]
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Re-enable a disabled endpoint (or pause one).
    pub enabled: Option<bool>,
}

fn check_url(v: &mut Violations, url: &str) {
    let ok = url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.username().is_empty()
    });
    // The URL parser would quietly drop spaces and control characters; refuse them instead.
    let clean = !url.chars().any(|c| c <= ' ' || c == '\u{7f}');
    v.check(
        ok && clean && url.len() <= 2048,
        "url",
        "must be an http(s) URL without credentials, at most 2048 characters",
    );
}

fn check_types(v: &mut Violations, types: Option<&Vec<String>>) {
    for (i, t) in types.into_iter().flatten().enumerate() {
        v.check(
            catalog::is_known(t),
            &format!("event_types[{i}]"),
            "is not an event type of the catalog",
        );
    }
}

fn check_description(v: &mut Violations, d: Option<&String>) {
    if let Some(d) = d {
        v.check(
            d.chars().count() <= 500,
            "description",
            "must be at most 500 characters",
        );
    }
}

impl Validate for CreateEndpointRequest {
    fn validate(&self, v: &mut Violations) {
        check_url(v, &self.url);
        check_types(v, self.event_types.as_ref());
        check_description(v, self.description.as_ref());
    }
}

impl Validate for UpdateEndpointRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(url) = &self.url {
            check_url(v, url);
        }
        check_types(v, self.event_types.as_ref());
        check_description(v, self.description.as_ref());
    }
}

/// The egress rules apply to webhook targets as to browsers: a URL that resolves only to
/// refused addresses is refused now (and checked again at every delivery).
async fn check_egress(state: &AppState, url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url).map_err(|_| ApiError::invalid("url", "is not a URL"))?;
    let host = match parsed.host() {
        Some(h) => h.to_string(),
        None => return Err(ApiError::invalid("url", "must have a host")),
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    match common::egress::resolve(&state.egress, &host, port).await {
        Err(common::egress::Refusal::Denied { .. }) => Err(ApiError::invalid(
            "url",
            "resolves to a private, loopback or reserved address, which the egress rules refuse",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointResponse {
    /// `whe_…`
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Since when deliveries have been failing without a success in between.
    pub failing_since: Option<String>,
    /// While a rotated secret still signs too.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret (`whsec_…`): only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl EndpointResponse {
    fn new(e: Endpoint, now: i64, secret: Option<String>) -> Self {
        EndpointResponse {
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(rfc3339),
            previous_secret_expires_at: e.old_secret_expires_at.filter(|t| *t > now).map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            secret,
        }
    }
}

/// Adds an endpoint. Its signing secret is in this answer only.
///
/// Requires `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/endpoints", tag = "webhooks",
    request_body = CreateEndpointRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe for 24 hours")),
    responses((status = 201, body = EndpointResponse),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    ValidatedJson(body): ValidatedJson<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<EndpointResponse>), ApiError> {
    check_egress(&state, &body.url).await?;
    let secret = signing::generate_secret()?;
    let sealed = state.webhook_secrets.seal(&secret)?;
    let now = state.clock.now_ms();
    let endpoint = state
        .webhooks
        .create_endpoint(
            &auth.principal.account_id,
            &body.url,
            body.description.as_deref().unwrap_or(""),
            body.event_types.as_deref().unwrap_or(&[]),
            &sealed,
            now,
        )
        .await?;
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.endpoint.created",
            Some(endpoint.id.to_string()),
            json!({"url": redact_url(&body.url), "event_types": body.event_types}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(EndpointResponse::new(endpoint, now, Some(secret))),
    ))
}

/// Lists endpoints, newest first.
///
/// Requires `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/endpoints", tag = "webhooks", params(ListParams),
    responses((status = 200, body = Page<EndpointResponse>)), security(("bearer" = [])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    auth: Require<WebhooksRead>,
    ValidatedQuery(params): ValidatedQuery<ListParams>,
) -> Result<Json<Page<EndpointResponse>>, ApiError> {
    let cursor: Option<WebhookEndpointId> = params.cursor()?;
    let (rows, has_more) = state
        .webhooks
        .endpoints(&auth.principal.account_id, cursor.as_ref(), params.limit())
        .await?;
    let now = state.clock.now_ms();
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|e| EndpointResponse::new(e, now, None))
            .collect(),
        has_more,
    }))
}

/// One endpoint (without its secret).
///
/// Requires `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 200, body = EndpointResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    auth: Require<WebhooksRead>,
    Path(id): Path<String>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let id = endpoint_id(&id)?;
    let e = state
        .webhooks
        .endpoint(&auth.principal.account_id, &id)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(EndpointResponse::new(e, state.clock.now_ms(), None)))
}

/// Changes an endpoint's URL, description, event types, or enables/disables it.
///
/// Requires `webhooks:write`.
#[utoipa::path(patch, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "`whe_…`")),
    request_body(content = Option<UpdateEndpointRequest>),
    responses((status = 200, body = EndpointResponse),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<UpdateEndpointRequest>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let id = endpoint_id(&id)?;
    if let Some(url) = &body.url {
        check_egress(&state, url).await?;
    }
    let now = state.clock.now_ms();
    let e = state
        .webhooks
        .update_endpoint(
            &auth.principal.account_id,
            &id,
            EndpointPatch {
                url: body.url.as_deref(),
                description: body.description.as_deref(),
                event_types: body.event_types.as_deref(),
                enabled: body.enabled,
            },
            now,
        )
        .await
        .map_err(not_found("endpoint"))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.endpoint.updated",
            Some(id.to_string()),
            json!({
                "url": body.url.as_deref().map(redact_url),
                "event_types": body.event_types,
                "enabled": body.enabled
            }),
        ))
        .await;
    Ok(Json(EndpointResponse::new(e, now, None)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// Deletes an endpoint and its delivery log.
///
/// Requires `webhooks:write`.
#[utoipa::path(delete, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 200, body = Deleted),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = endpoint_id(&id)?;
    state
        .webhooks
        .delete_endpoint(&auth.principal.account_id, &id)
        .await
        .map_err(not_found("endpoint"))?;
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.endpoint.deleted",
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok(Json(Deleted {
        id: id.to_string(),
        deleted: true,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the old secret keeps signing too, 0–604800 s; default 86400 (24 h), 0 after a leak.
    #[schema(maximum = 604800)]
    pub grace_seconds: Option<u32>,
}

impl Validate for RotateSecretRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(g) = self.grace_seconds {
            v.check(
                g <= MAX_GRACE_SECONDS,
                "grace_seconds",
                "must be between 0 and 604800",
            );
        }
    }
}

/// Replaces the signing secret (shown once). During the grace period every message carries
/// both signatures, so receivers can switch without losing one.
///
/// Requires `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "`whe_…`")),
    request_body(content = Option<RotateSecretRequest>),
    responses((status = 200, body = EndpointResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<RotateSecretRequest>,
) -> Result<Json<EndpointResponse>, ApiError> {
    auth.principal.require_step_up(&state.auth)?;
    let id = endpoint_id(&id)?;
    let secret = signing::generate_secret()?;
    let sealed = state.webhook_secrets.seal(&secret)?;
    let now = state.clock.now_ms();
    let grace = i64::from(body.grace_seconds.unwrap_or(86_400)) * 1000;
    let e = state
        .webhooks
        .rotate_secret(&auth.principal.account_id, &id, &sealed, now + grace, now)
        .await
        .map_err(not_found("endpoint"))?;
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.endpoint.secret_rotated",
            Some(id.to_string()),
            json!({"grace_seconds": grace / 1000}),
        ))
        .await;
    Ok(Json(EndpointResponse::new(e, now, Some(secret))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The `webhook-id` the message carries.
    pub event_id: String,
    pub delivery_id: String,
}

/// Sends a `webhook.test` event to this endpoint only.
///
/// Requires `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "`whe_…`")),
    responses((status = 202, body = TestSent),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn send_test(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    let id = endpoint_id(&id)?;
    let account = &auth.principal.account_id;
    state
        .webhooks
        .endpoint(account, &id)
        .await
        .map_err(not_found("endpoint"))?;
    let event = NewEvent::new(
        account,
        "webhook.test",
        json!({"endpoint_id": id, "message": "A test event from Driftstack."}),
        state.clock.now_ms(),
    );
    let delivery = state.webhooks.record_for_endpoint(&event, &id).await?;
    state.dispatcher_wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            event_id: event.id.to_string(),
            delivery_id: delivery.to_string(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: &'static str,
    /// JSON Schema of the event's `data`.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventCatalog {
    pub data: Vec<EventTypeResponse>,
}

/// The event catalog: every type, what it means and the schema of its `data`. Every message is
/// `{id, type, created_at, account_id, data}`, signed per Standard Webhooks.
///
/// Requires `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/events", tag = "webhooks",
    responses((status = 200, body = EventCatalog)), security(("bearer" = [])))]
pub async fn event_catalog(_auth: Require<WebhooksRead>) -> Json<EventCatalog> {
    Json(EventCatalog {
        data: CATALOG
            .iter()
            .map(|e| EventTypeResponse {
                kind: e.name,
                description: e.description,
                schema: (e.schema)(),
            })
            .collect(),
    })
}
