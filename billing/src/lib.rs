//! Stripe, seen from Driftstack: creating customers, Checkout Sessions (the one-time trial pack
//! and monthly subscriptions, priced inline from the tier table) and Billing Portal sessions over
//! Stripe's form-encoded REST API, and verifying the signatures of Stripe's webhooks. Three calls
//! are all the service makes, so they are written here on the HTTP client the workspace already
//! builds, with every answer read to a bound ([`MAX_ANSWER_BYTES`]). It knows nothing of
//! accounts or tiers beyond what callers pass in.

pub mod webhook;

use std::time::Duration;

use serde::Deserialize;

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
    http: reqwest::Client,
    /// `https://api.stripe.com/` or a fake's base, with a trailing slash.
    base: String,
    secret_key: String,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stripe([redacted])")
    }
}

/// The largest answer read from Stripe: its objects are a few KiB; a peer answering more cannot
/// grow this process.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The fields of Stripe's objects this crate reads.
#[derive(Deserialize)]
struct Created {
    id: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Stripe {
    /// A client with `secret_key`, talking to `api_base` when given (a fake Stripe in tests;
    /// `http://127.0.0.1:PORT/`).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, StripeFailure> {
        let base = api_base.unwrap_or("https://api.stripe.com/");
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Driftstack-Billing/1")
            .build()
            .map_err(|e| StripeFailure(format!("client: {e}")))?;
        Ok(Stripe {
            http,
            base,
            secret_key: secret_key.to_owned(),
        })
    }

    /// POSTs form `fields` to `path` (`v1/…`) and reads the created object, at most
    /// [`MAX_ANSWER_BYTES`] of it.
    async fn create(
        &self,
        path: &str,
        fields: &[(String, String)],
    ) -> Result<Created, StripeFailure> {
        // Built before any await: the serializer is not `Send`.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.secret_key)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("stripe-version", "2025-09-30.clover")
            .body(form)
            .send()
            .await
            .map_err(|e| StripeFailure(format!("{path}: {}", transport_error(&e))))?;
        let status = answer.status();
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| StripeFailure(format!("{path}: {}", transport_error(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(StripeFailure(format!(
                    "{path}: the answer exceeds {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let why = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .map(|e| {
                    format!(
                        "{} ({})",
                        e.error.message.unwrap_or_default(),
                        e.error.kind.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "no error message".into());
            return Err(StripeFailure(format!("{path}: HTTP {status}: {why}")));
        }
        serde_json::from_slice(&body)
            .map_err(|_| StripeFailure(format!("{path}: the answer is not a Stripe object")))
    }

    /// Creates a customer for an account; returns its id (`cus_…`).
    pub async fn create_customer(
        &self,
        email: &str,
        account_id: &str,
    ) -> Result<String, StripeFailure> {
        let fields = [
            field("email", email),
            field("metadata[account_id]", account_id),
        ];
        self.create("v1/customers", &fields)
            .await?
            .id
            .ok_or_else(|| StripeFailure("the customer has no id".into()))
    }

    /// Creates a Checkout Session; returns the URL to send the customer to.
    pub async fn checkout(&self, c: &Checkout<'_>) -> Result<String, StripeFailure> {
        let mut fields = vec![
            field("customer", c.customer),
            field(
                "mode",
                if c.recurring {
                    "subscription"
                } else {
                    "payment"
                },
            ),
            field("line_items[0][quantity]", "1"),
            field("line_items[0][price_data][currency]", "usd"),
            field(
                "line_items[0][price_data][unit_amount]",
                &c.amount_cents.to_string(),
            ),
            field(
                "line_items[0][price_data][product_data][name]",
                c.display_name,
            ),
            field("success_url", c.success_url),
            field("cancel_url", c.cancel_url),
            field("client_reference_id", c.account_id),
            field("metadata[account_id]", c.account_id),
            field("metadata[plan]", c.plan),
        ];
        if c.recurring {
            fields.push(field(
                "line_items[0][price_data][recurring][interval]",
                "month",
            ));
            fields.push(field(
                "subscription_data[metadata][account_id]",
                c.account_id,
            ));
            fields.push(field("subscription_data[metadata][plan]", c.plan));
        }
        match c.promo_code {
            Some(code) => fields.push(field("discounts[0][promotion_code]", code)),
            None => fields.push(field("allow_promotion_codes", "true")),
        }
        self.create("v1/checkout/sessions", &fields)
            .await?
            .url
            .ok_or_else(|| StripeFailure("the Checkout Session has no URL".into()))
    }

    /// Creates a Billing Portal session; returns its URL.
    pub async fn portal(&self, customer: &str, return_url: &str) -> Result<String, StripeFailure> {
        let fields = [field("customer", customer), field("return_url", return_url)];
        self.create("v1/billing_portal/sessions", &fields)
            .await?
            .url
            .ok_or_else(|| StripeFailure("the portal session has no URL".into()))
    }
}

fn field(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// A transport error with its causes (the URL it names is the API base; no secret is in it).
fn transport_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A fake Stripe that answers 200 with a 1 GiB body and keeps writing: the client stops at
    /// its bound and hangs up; the answer is an error, not a gigabyte in memory.
    #[tokio::test]
    async fn a_hostile_stripe_cannot_grow_the_client() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}/", listener.local_addr().expect("addr"));
        let written = Arc::new(AtomicU64::new(0));
        let counted = written.clone();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            while counted.load(Ordering::Relaxed) < (1 << 30) {
                if conn.write_all(&chunk).await.is_err() {
                    break;
                }
                counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        let stripe = Stripe::new("sk_test_x", Some(&base)).expect("client");
        let err = stripe
            .create_customer("a@example.com", "acct_1")
            .await
            .expect_err("an oversized answer is an error");
        assert!(err.0.contains("exceeds"), "{err}");
        let sent = written.load(Ordering::Relaxed);
        assert!(sent < 64 << 20, "read {sent} bytes of a 1 GiB answer");
    }
}
