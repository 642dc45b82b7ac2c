//! Billing: the account's plan and billing state, Stripe Checkout for the one-time trial pack and
//! the monthly subscriptions (priced from the tier table), the Stripe Billing Portal, and the
//! Stripe webhook that moves accounts between tiers. Off unless `STRIPE_SECRET_KEY` is set.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use billing::webhook::{self, Event, SignatureError};
use common::{clock::rfc3339, ids::AccountId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::Require;
use crate::{
    audit::Entry,
    error::{ApiError, Problem},
    extract::{Validate, ValidatedJson, Violations},
    permissions::{BillingRead, BillingWrite},
    state::AppState,
    store::billing::{Change, Handled},
    tiers::{self, Tier},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_billing))
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(stripe_webhook))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanBody {
    /// The tier name to pass as `plan` to checkout.
    pub id: String,
    pub display_name: String,
    pub price_cents: Option<u32>,
    /// `one_time` or `monthly`.
    pub billing: String,
    pub live_keys: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingResponse {
    /// Whether this deployment bills through Stripe.
    pub enabled: bool,
    /// The tier in force now.
    pub tier: String,
    /// The plan bought (`trial`, `starter`, `pro`), if any.
    pub plan: Option<String>,
    /// `paid` (trial pack), `active`, `past_due`, `canceled`… (Stripe's subscription status).
    pub status: Option<String>,
    pub current_period_end: Option<String>,
    /// Whether `POST /v1/billing/portal` can open the Stripe Billing Portal.
    pub portal_available: bool,
    /// The limits of the tier in force.
    pub limits: Tier,
    /// What the tier includes: `sessions`, `raw_cdp`, `profiles`, `webhooks`, `team`, and
    /// `live_keys` where live keys are allowed.
    pub features: Vec<&'static str>,
    /// What can be bought.
    pub plans: Vec<PlanBody>,
}

fn require_stripe(state: &AppState) -> Result<&billing::Stripe, ApiError> {
    state.stripe.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "billing_disabled",
            "Billing is not enabled on this deployment (no STRIPE_SECRET_KEY).",
        )
    })
}

fn stripe_error(e: billing::StripeFailure) -> ApiError {
    ApiError {
        source: Some(anyhow::anyhow!("{e}")),
        ..ApiError::new(
            StatusCode::BAD_GATEWAY,
            "stripe_unavailable",
            "Stripe did not accept the request; try again shortly.",
        )
    }
}

fn plans(state: &AppState) -> Vec<PlanBody> {
    state
        .tiers
        .names()
        .filter_map(|name| {
            let t = state.tiers.get(name)?;
            (t.billing != "none").then(|| PlanBody {
                id: name.to_owned(),
                display_name: t.display_name.clone(),
                price_cents: t.price_cents,
                billing: t.billing.clone(),
                live_keys: t.live_keys,
            })
        })
        .collect()
}

/// The account's plan, billing status, limits and what can be bought.
///
/// Requires `billing:read`.
#[utoipa::path(get, path = "/v1/billing", tag = "billing",
    responses((status = 200, body = BillingResponse)),
    security(("bearer" = [])))]
pub async fn get_billing(
    State(state): State<AppState>,
    auth: Require<BillingRead>,
) -> Result<Json<BillingResponse>, ApiError> {
    let row = state.billing.get(&auth.principal.account_id).await?;
    let limits = state
        .tiers
        .get(&row.tier)
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown tier {}", row.tier)))?;
    Ok(Json(BillingResponse {
        enabled: state.stripe.is_some(),
        portal_available: state.stripe.is_some() && row.stripe_customer_id.is_some(),
        tier: row.tier,
        plan: row.billing_plan,
        status: row.billing_status,
        current_period_end: row.billing_period_end.map(rfc3339),
        features: ["sessions", "raw_cdp", "profiles", "webhooks", "team"]
            .into_iter()
            .chain(limits.live_keys.then_some("live_keys"))
            .collect(),
        limits,
        plans: plans(&state),
    }))
}

fn check_url(v: &mut Violations, field: &str, url: &str) {
    v.check(
        url.len() <= 2048
            && !url.chars().any(|c| c <= ' ' || c == '\u{7f}')
            && url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some()),
        field,
        "must be an http(s) URL of at most 2048 characters",
    );
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `trial` (the one-time trial pack), `starter` or `pro` (monthly).
    pub plan: String,
    /// Where Stripe sends the customer after paying.
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$"
    )]
    pub success_url: String,
    /// Where Stripe sends the customer if they give up.
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$"
    )]
    pub cancel_url: String,
    /// A Stripe promotion code id (`promo_…`). Without it, the customer can enter a code on the
    /// Checkout page.
    #[schema(pattern = "^promo_[A-Za-z0-9]{1,64}$")]
    pub promo_code: Option<String>,
}

impl Validate for CheckoutRequest {
    fn validate(&self, v: &mut Violations) {
        check_url(v, "success_url", &self.success_url);
        check_url(v, "cancel_url", &self.cancel_url);
        if let Some(p) = &self.promo_code {
            v.check(
                (1..=255).contains(&p.len())
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "promo_code",
                "must be a Stripe promotion code id such as promo_…",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    /// Send the customer here to pay.
    pub checkout_url: String,
}

/// The account's Stripe customer, created on first need.
async fn customer(state: &AppState, account: &AccountId) -> Result<String, ApiError> {
    let stripe = require_stripe(state)?;
    if let Some(c) = state.billing.get(account).await?.stripe_customer_id {
        return Ok(c);
    }
    let email = state
        .accounts
        .owner_emails(account)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let created = stripe
        .create_customer(&email, account.as_str())
        .await
        .map_err(stripe_error)?;
    // Two racing requests may both create one; the first stored wins.
    Ok(state.billing.set_customer(account, &created).await?)
}

/// Starts a Stripe Checkout for a plan: the trial pack is a one-time payment, `starter` and `pro`
/// are monthly subscriptions. The tier changes when Stripe reports the payment (webhook), not
/// here. Needs a fresh step-up from dashboard users.
///
/// Requires `billing:write`. Billing off: 409 `billing_disabled`.
#[utoipa::path(post, path = "/v1/billing/checkout", tag = "billing",
    request_body = CheckoutRequest,
    responses((status = 200, body = CheckoutResponse),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn checkout(
    State(state): State<AppState>,
    auth: Require<BillingWrite>,
    ValidatedJson(body): ValidatedJson<CheckoutRequest>,
) -> Result<Json<CheckoutResponse>, ApiError> {
    let p = auth.principal;
    p.require_step_up(&state.auth)?;
    let stripe = require_stripe(&state)?;
    let tier = state
        .tiers
        .get(&body.plan)
        .filter(|t| t.billing != "none")
        .cloned()
        .ok_or_else(|| ApiError::invalid("plan", "is not a plan that can be bought"))?;
    let amount = tier
        .price_cents
        .ok_or_else(|| ApiError::invalid("plan", "has no price"))?;
    let customer = customer(&state, &p.account_id).await?;
    let url = stripe
        .checkout(&billing::Checkout {
            customer: &customer,
            plan: &body.plan,
            display_name: &tier.display_name,
            amount_cents: i64::from(amount),
            recurring: tier.billing == "monthly",
            success_url: &body.success_url,
            cancel_url: &body.cancel_url,
            promo_code: body.promo_code.as_deref(),
            account_id: p.account_id.as_str(),
        })
        .await
        .map_err(stripe_error)?;
    state
        .record(Entry::by(
            &p,
            "billing.checkout_started",
            None,
            json!({"plan": body.plan}),
        ))
        .await;
    Ok(Json(CheckoutResponse { checkout_url: url }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalRequest {
    /// Where the portal's back link goes.
    #[schema(
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://[^\\x00-\\x20\\x7f]+$"
    )]
    pub return_url: String,
}

impl Validate for PortalRequest {
    fn validate(&self, v: &mut Violations) {
        check_url(v, "return_url", &self.return_url);
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalResponse {
    pub portal_url: String,
}

/// Opens the Stripe Billing Portal (invoices, payment method, cancel). Needs a fresh step-up
/// from dashboard users.
///
/// Requires `billing:write`. No Stripe customer yet: 409 `no_billing_customer`.
#[utoipa::path(post, path = "/v1/billing/portal", tag = "billing",
    request_body = PortalRequest,
    responses((status = 200, body = PortalResponse),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn portal(
    State(state): State<AppState>,
    auth: Require<BillingWrite>,
    ValidatedJson(body): ValidatedJson<PortalRequest>,
) -> Result<Json<PortalResponse>, ApiError> {
    let p = auth.principal;
    p.require_step_up(&state.auth)?;
    let stripe = require_stripe(&state)?;
    let customer = state
        .billing
        .get(&p.account_id)
        .await?
        .stripe_customer_id
        .ok_or_else(|| {
            ApiError::conflict(
                "no_billing_customer",
                "This account has not bought anything yet; start with POST /v1/billing/checkout.",
            )
        })?;
    let url = stripe
        .portal(&customer, &body.return_url)
        .await
        .map_err(stripe_error)?;
    state
        .record(Entry::by(&p, "billing.portal_opened", None, json!({})))
        .await;
    Ok(Json(PortalResponse { portal_url: url }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// True when this event id was handled before (nothing changed).
    pub duplicate: bool,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// What an event means for an account, if anything.
async fn change_for(state: &AppState, event: &Event) -> Result<Option<Change>, ApiError> {
    let o = &event.data.object;
    let by_meta = text(o, &["metadata", "account_id"]).and_then(|a| a.parse::<AccountId>().ok());
    let account = match by_meta {
        Some(a) => Some(a),
        None => match text(o, &["customer"]) {
            Some(c) => state.billing.account_by_customer(c).await?,
            None => None,
        },
    };
    let Some(account) = account else {
        return Ok(None);
    };
    let plan = text(o, &["metadata", "plan"])
        .filter(|p| state.tiers.get(p).is_some())
        .map(str::to_owned);
    let period_end = o
        .get("current_period_end")
        .or_else(|| o.pointer("/items/data/0/current_period_end"))
        .and_then(Value::as_i64)
        .map(|s| s * 1000);
    let change =
        |tier: Option<String>, status: &str, subscription: Option<Option<String>>| Change {
            account: account.clone(),
            tier,
            plan: plan.clone(),
            status: Some(status.to_owned()),
            subscription,
            period_end,
        };
    Ok(match event.kind.as_str() {
        "checkout.session.completed" => {
            let paid = text(o, &["payment_status"])
                .is_none_or(|s| s == "paid" || s == "no_payment_required");
            match (text(o, &["mode"]), paid) {
                (Some("payment"), true) => Some(change(plan.clone(), "paid", None)),
                (Some("subscription"), true) => Some(change(
                    plan.clone(),
                    "active",
                    Some(text(o, &["subscription"]).map(str::to_owned)),
                )),
                _ => None,
            }
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            let status = text(o, &["status"]).unwrap_or("unknown");
            let sub = Some(text(o, &["id"]).map(str::to_owned));
            match status {
                "active" | "trialing" => Some(change(plan.clone(), status, sub)),
                "canceled" | "unpaid" | "incomplete_expired" => {
                    Some(change(Some(tiers::TRIAL.to_owned()), status, sub))
                }
                other => Some(change(None, other, sub)),
            }
        }
        "customer.subscription.deleted" => Some(change(
            Some(tiers::TRIAL.to_owned()),
            "canceled",
            Some(None),
        )),
        "invoice.payment_failed" => Some(change(None, "past_due", None)),
        _ => None,
    })
}

/// Stripe's webhook: verifies `Stripe-Signature` (5-minute tolerance, constant-time) and applies
/// `checkout.session.completed`, `customer.subscription.created|updated|deleted` and
/// `invoice.payment_failed` once per event id. Tier changes take effect at once, emit
/// `billing.subscription_changed` and are audited.
///
/// Requires `none`: no credential; the Stripe signature authenticates it.
#[utoipa::path(post, path = "/v1/billing/stripe/webhook", tag = "billing",
    request_body(content = Object, description = "A Stripe event, as Stripe sends it"),
    params(("Stripe-Signature" = Option<String>, Header, description = "t=…,v1=… (without it: 400)")),
    responses((status = 200, body = WebhookAck),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
)]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let secret = state
        .config
        .stripe_webhook_secret
        .as_ref()
        .filter(|_| state.stripe.is_some())
        .ok_or_else(|| ApiError::not_found("route"))?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = state.clock.now_ms() / 1000;
    webhook::verify(&body, header, secret.expose(), now).map_err(|e| {
        let detail = match e {
            SignatureError::Malformed => "The Stripe-Signature header is missing or malformed.",
            SignatureError::Stale => "The signature's timestamp is more than 5 minutes off.",
            SignatureError::Mismatch => "The signature does not match.",
        };
        ApiError::bad_request("invalid_signature", detail)
    })?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_event", "The body is not a Stripe event."))?;
    let change = change_for(&state, &event).await?;
    let handled = state
        .billing
        .apply(
            &event.id,
            &event.kind,
            change.as_ref(),
            state.clock.now_ms(),
        )
        .await?;
    if let (Handled::Applied(tier_change), Some(c)) = (&handled, &change) {
        state.auth.forget_account(&c.account);
        state
            .record(Entry {
                account_id: Some(c.account.clone()),
                actor: "stripe".into(),
                action: "billing.updated",
                target: Some(event.id.clone()),
                ip: None,
                user_agent: None,
                data: json!({
                    "event": event.kind, "status": c.status,
                    "tier_from": tier_change.as_ref().map(|t| &t.0),
                    "tier_to": tier_change.as_ref().map(|t| &t.1),
                }),
            })
            .await;
        if tier_change.is_some() {
            state.dispatcher_wake();
        }
    }
    Ok(Json(WebhookAck {
        received: true,
        duplicate: handled == Handled::Duplicate,
    }))
}
