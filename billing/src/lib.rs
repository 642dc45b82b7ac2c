//! Stripe, seen from Driftstack: creating customers, Checkout Sessions (the one-time trial pack
//! and monthly subscriptions, priced inline from the tier table) and Billing Portal sessions
//! through async-stripe, and verifying the signatures of Stripe's webhooks. This is the only crate
//! that builds async-stripe (a heavy dependency), so other changes never rebuild it. It knows
//! nothing of accounts or tiers beyond what callers pass in.

pub mod webhook;

use std::collections::HashMap;

use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionLineItemsPriceDataRecurring,
    CreateCheckoutSessionLineItemsPriceDataRecurringInterval, ProductData,
};
use stripe_shared::CheckoutSessionMode;

/// A Stripe call that failed.
#[derive(Debug, thiserror::Error)]
#[error("Stripe: {0}")]
pub struct StripeFailure(pub String);

/// What to sell in a Checkout Session.
pub struct Checkout<'a> {
    pub customer: &'a str,
    /// Tier name, also stored in the session's and subscription's metadata.
    pub plan: &'a str,
    pub display_name: &'a str,
    pub amount_cents: i64,
    /// Monthly subscription (true) or one-time payment (false).
    pub recurring: bool,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// A promotion code id (`promo_…`); without it, customers may type one on the page.
    pub promo_code: Option<&'a str>,
    pub account_id: &'a str,
}

#[derive(Clone)]
pub struct Stripe {
    client: stripe::Client,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stripe([redacted])")
    }
}

fn failure(e: impl std::fmt::Display) -> StripeFailure {
    StripeFailure(e.to_string())
}

impl Stripe {
    /// A client with `secret_key`, talking to `api_base` when given (a fake Stripe in tests;
    /// `http://127.0.0.1:PORT/`).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, StripeFailure> {
        let mut builder = stripe::ClientBuilder::new(secret_key);
        if let Some(base) = api_base {
            let base = if base.ends_with('/') {
                base.to_owned()
            } else {
                format!("{base}/")
            };
            builder = builder.url(base);
        }
        Ok(Stripe {
            client: builder.build().map_err(failure)?,
        })
    }

    /// Creates a customer for an account; returns its id (`cus_…`).
    pub async fn create_customer(
        &self,
        email: &str,
        account_id: &str,
    ) -> Result<String, StripeFailure> {
        let metadata = HashMap::from([("account_id".to_owned(), account_id.to_owned())]);
        let customer = stripe_core::customer::CreateCustomer::new()
            .email(email)
            .metadata(metadata)
            .send(&self.client)
            .await
            .map_err(failure)?;
        Ok(customer.id.to_string())
    }

    /// Creates a Checkout Session; returns the URL to send the customer to.
    pub async fn checkout(&self, c: &Checkout<'_>) -> Result<String, StripeFailure> {
        let metadata = HashMap::from([
            ("account_id".to_owned(), c.account_id.to_owned()),
            ("plan".to_owned(), c.plan.to_owned()),
        ]);
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD);
        price.unit_amount = Some(c.amount_cents);
        price.product_data = Some(ProductData::new(c.display_name));
        if c.recurring {
            price.recurring = Some(CreateCheckoutSessionLineItemsPriceDataRecurring::new(
                CreateCheckoutSessionLineItemsPriceDataRecurringInterval::Month,
            ));
        }
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let mut req = CreateCheckoutSession::new()
            .customer(c.customer)
            .mode(if c.recurring {
                CheckoutSessionMode::Subscription
            } else {
                CheckoutSessionMode::Payment
            })
            .line_items(vec![item])
            .success_url(c.success_url)
            .cancel_url(c.cancel_url)
            .client_reference_id(c.account_id)
            .metadata(metadata.clone());
        if c.recurring {
            let mut data =
                stripe_checkout::checkout_session::CreateCheckoutSessionSubscriptionData::new();
            data.metadata = Some(metadata);
            req = req.subscription_data(data);
        }
        req = match c.promo_code {
            Some(code) => {
                let mut d = CreateCheckoutSessionDiscounts::new();
                d.promotion_code = Some(code.to_owned());
                req.discounts(vec![d])
            }
            None => req.allow_promotion_codes(true),
        };
        let session = req.send(&self.client).await.map_err(failure)?;
        session
            .url
            .ok_or_else(|| StripeFailure("the Checkout Session has no URL".into()))
    }

    /// Creates a Billing Portal session; returns its URL.
    pub async fn portal(&self, customer: &str, return_url: &str) -> Result<String, StripeFailure> {
        let session = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(failure)?;
        Ok(session.url)
    }
}
