//! The delivery log (each delivery with its attempts) and replay: one delivery, or every
//! delivery of a status since a time.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub attempt: i32,
    pub started_at: String,
    pub duration_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why there was no usable answer (timeout, refused connection, egress rules…).
    pub error: Option<String>,
    /// The receiver's response headers, `name: value` per line (at most 2 KiB).
    pub response_headers: Option<String>,
    /// The start of the receiver's answer (at most 2 KiB).
    pub response_excerpt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// `dlv_…`
    pub id: String,
    /// Also the `webhook-id` header, the same on every attempt and replay.
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// `pending`, `failed` (a retry is scheduled), `delivered` or `dead` (dead-letter queue).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i32>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    /// Every attempt, oldest first (on `GET /v1/webhooks/deliveries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptResponse>>,
}

impl DeliveryResponse {
    fn new(d: DeliveryRow, attempts: Option<Vec<AttemptRow>>) -> Self {
        let waiting = d.status == "pending" || d.status == "failed";
        DeliveryResponse {
            id: d.id,
            event_id: d.event_id,
            endpoint_id: d.endpoint_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: waiting.then(|| rfc3339(d.next_attempt_at)),
            last_status_code: d.last_status_code,
            delivered_at: d.delivered_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
            attempt_log: attempts.map(|list| {
                list.into_iter()
                    .map(|a| AttemptResponse {
                        attempt: a.attempt,
                        started_at: rfc3339(a.started_at),
                        duration_ms: a.duration_ms,
                        status_code: a.status_code,
                        error: a.error,
                        response_headers: a.response_headers,
                        response_excerpt: a.response_excerpt,
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `failed`, `delivered` or `dead`.
    pub status: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339; deliveries created at or after.
    pub since: Option<String>,
    /// RFC 3339; deliveries created before.
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub starting_after: Option<String>,
}

impl Validate for DeliveryQuery {
    fn validate(&self, v: &mut Violations) {
        if let Some(s) = &self.status {
            v.check(
                DeliveryStatus::parse(s).is_some(),
                "status",
                "must be pending, failed, delivered or dead",
            );
        }
        if let Some(e) = &self.endpoint_id {
            v.check(
                e.parse::<WebhookEndpointId>().is_ok(),
                "endpoint_id",
                "is not an endpoint id",
            );
        }
        for (field, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(t) = value {
                v.check(
                    parse_rfc3339(t).is_some(),
                    field,
                    "must be an RFC 3339 time",
                );
            }
        }
        ListParams {
            limit: self.limit,
            starting_after: None,
        }
        .validate(v);
    }
}

/// The delivery log, newest first, with filters.
///
/// Requires `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "webhooks", params(DeliveryQuery),
    responses((status = 200, body = Page<DeliveryResponse>),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Require<WebhooksRead>,
    ValidatedQuery(q): ValidatedQuery<DeliveryQuery>,
) -> Result<Json<Page<DeliveryResponse>>, ApiError> {
    let list = ListParams {
        limit: q.limit,
        starting_after: q.starting_after.clone(),
    };
    let cursor: Option<DeliveryId> = list.cursor()?;
    let filter = DeliveryFilter {
        status: q.status.as_deref().and_then(DeliveryStatus::parse),
        endpoint_id: q.endpoint_id.as_deref().and_then(|e| e.parse().ok()),
        event_type: q.event_type.clone(),
        since: q.since.as_deref().and_then(parse_rfc3339),
        until: q.until.as_deref().and_then(parse_rfc3339),
    };
    let (rows, has_more) = state
        .webhooks
        .deliveries(
            &auth.principal.account_id,
            &filter,
            cursor.as_ref(),
            list.limit(),
        )
        .await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|d| DeliveryResponse::new(d, None))
            .collect(),
        has_more,
    }))
}

/// One delivery with every attempt (status, latency, answer excerpt, error).
///
/// Requires `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhooks/deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 200, body = DeliveryResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    auth: Require<WebhooksRead>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let id: DeliveryId = parse_path_id(&id)?;
    let (d, attempts) = state
        .webhooks
        .delivery(&auth.principal.account_id, &id)
        .await
        .map_err(not_found("delivery"))?;
    Ok(Json(DeliveryResponse::new(d, Some(attempts))))
}

/// Sends a delivery again: same event, same `webhook-id`, signed now, with a fresh retry schedule.
///
/// Requires `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 202, body = DeliveryResponse),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryResponse>), ApiError> {
    let id: DeliveryId = parse_path_id(&id)?;
    let d = state
        .webhooks
        .replay(&auth.principal.account_id, &id, state.clock.now_ms())
        .await
        .map_err(not_found("delivery"))?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.delivery.replayed",
            Some(id.to_string()),
            json!({}),
        ))
        .await;
    Ok((StatusCode::ACCEPTED, Json(DeliveryResponse::new(d, None))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only this endpoint's deliveries.
    pub endpoint_id: Option<String>,
    /// Which to resend: `failed` and/or `dead` (default both). Delivered ones never are.
    #[schema(value_type = Option<Vec<ReplayStatus>>)]
    pub status: Option<Vec<String>>,
    /// RFC 3339; deliveries created at or after.
    #[schema(format = DateTime)]
    pub since: String,
    /// RFC 3339; deliveries created before. Default: now.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// A delivery status that can be replayed.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used; the field is validated as a string.
pub enum ReplayStatus {
    Failed,
    Dead,
}

impl Validate for ReplayRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(e) = &self.endpoint_id {
            v.check(
                e.parse::<WebhookEndpointId>().is_ok(),
                "endpoint_id",
                "is not an endpoint id",
            );
        }
        for (i, s) in self.status.iter().flatten().enumerate() {
            v.check(
                s == "failed" || s == "dead",
                &format!("status[{i}]"),
                "must be failed or dead",
            );
        }
        v.check(
            parse_rfc3339(&self.since).is_some(),
            "since",
            "must be an RFC 3339 time",
        );
        if let Some(u) = &self.until {
            v.check(
                parse_rfc3339(u).is_some(),
                "until",
                "must be an RFC 3339 time",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResponse {
    /// Deliveries queued again.
    pub replayed: u64,
}

/// Resends every failed and/or dead delivery created in `[since, until)`; a delivery that
/// succeeded, on any attempt, is never resent.
///
/// Requires `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhooks/replay", tag = "webhooks",
    request_body = ReplayRequest,
    responses((status = 202, body = ReplayResponse),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn replay_many(
    State(state): State<AppState>,
    auth: Require<WebhooksWrite>,
    ValidatedJson(body): ValidatedJson<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayResponse>), ApiError> {
    let now = state.clock.now_ms();
    let since = parse_rfc3339(&body.since)
        .ok_or_else(|| ApiError::invalid("since", "must be an RFC 3339 time"))?;
    let until = body
        .until
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(now + 1);
    let statuses: Vec<DeliveryStatus> = match &body.status {
        Some(list) => list
            .iter()
            .filter_map(|s| DeliveryStatus::parse(s))
            .collect(),
        None => vec![DeliveryStatus::Failed, DeliveryStatus::Dead],
    };
    let endpoint: Option<WebhookEndpointId> =
        body.endpoint_id.as_deref().and_then(|e| e.parse().ok());
    let replayed = state
        .webhooks
        .replay_many(
            &auth.principal.account_id,
            endpoint.as_ref(),
            &statuses,
            since,
            until,
            now,
        )
        .await?;
    state.dispatcher_wake();
    state
        .record(Entry::by(
            &auth.principal,
            "webhook.deliveries.replayed",
            endpoint.as_ref().map(ToString::to_string),
            json!({"replayed": replayed}),
        ))
        .await;
    Ok((StatusCode::ACCEPTED, Json(ReplayResponse { replayed })))
}
