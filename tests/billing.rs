//! End-to-end tests of billing against the real binary: customers created in `localstripe`,
//! Checkout and Billing Portal requests checked field by field at a loopback fake answering in
//! Stripe's documented shape, and Stripe webhooks signed in the test (valid, wrong secret, stale,
//! replayed) moving the account between tiers — on SQLite and PostgreSQL. Also: billing off.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, pages, stripe};

on_both_backends!(
    checkout_portal_and_webhooks_move_the_account_between_tiers,
    billing_off,
);

const WEBHOOK_SECRET: &str = "whsec_test_driftstack";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn deliver(s: &Server, secret: &str, at: i64, event: &Value) -> support::Reply {
    let (body, header) = stripe::signed_event(secret, at, event);
    s.send(
        s.http
            .post(s.url("/v1/billing/stripe/webhook"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

async fn billing(s: &Server, key: &str) -> Value {
    let r = s.get(key, "/v1/billing").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn checkout_portal_and_webhooks_move_the_account_between_tiers(backend: Backend) {
    let site = pages::start().await;
    let local = stripe::LocalStripe::start();
    let fake = stripe::FakeStripe::start(&local.url).await;
    let mut env = Env::new(backend);
    env.set("STRIPE_SECRET_KEY", "sk_test_driftstack");
    env.set("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET);
    env.set("STRIPE_API_BASE", &fake.url);
    let s = env.start();
    let key = s.key().to_owned();
    let account = s.get(&key, "/v1/account/me").await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.post(
        &key,
        "/v1/webhooks/endpoints",
        json!({"url": site.url("/hook")}),
    )
    .await;

    // With billing on, a new account starts on the trial tier, nothing bought.
    let b = billing(&s, &key).await;
    assert_eq!(b["enabled"], true);
    assert_eq!(b["tier"], "trial");
    assert_eq!(b["portal_available"], false);
    let plans: Vec<&str> = b["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(plans, ["pro", "starter", "trial"]);
    s.post(
        &key,
        "/v1/billing/portal",
        json!({"return_url": "https://app.example/billing"}),
    )
    .await
    .assert_problem(409, "no_billing_customer");

    // Bad input.
    let r = s
        .post(
            &key,
            "/v1/billing/checkout",
            json!({"plan": "self_hosted", "success_url": "ftp://x", "cancel_url": "https://a.example/c"}),
        )
        .await;
    let p = r.assert_problem(422, "validation_failed");
    assert!(p["errors"]["success_url"].is_string(), "{p}");
    s.post(
        &key,
        "/v1/billing/checkout",
        json!({"plan": "self_hosted", "success_url": "https://a.example/s", "cancel_url": "https://a.example/c"}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // A subscription checkout: the customer is created (in localstripe) on first need.
    let r = s
        .post(
            &key,
            "/v1/billing/checkout",
            json!({"plan": "starter", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.log());
    assert_eq!(
        r.json()["checkout_url"],
        "https://checkout.stripe.test/c/pay/cs_test_a1b2c3"
    );
    let created = fake.requests("/v1/customers");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].field("email"), Some("owner@localhost"));
    assert_eq!(
        created[0].field("metadata[account_id]"),
        Some(account.as_str())
    );
    let sent = fake.requests("/v1/checkout/sessions");
    let c = &sent[0];
    let customer = c.field("customer").expect("customer").to_owned();
    assert!(customer.starts_with("cus_"), "{customer}");
    assert_eq!(c.field("mode"), Some("subscription"));
    assert_eq!(c.field("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(
        c.field("line_items[0][price_data][unit_amount]"),
        Some("3900")
    );
    assert_eq!(
        c.field("line_items[0][price_data][recurring][interval]"),
        Some("month")
    );
    assert_eq!(
        c.field("line_items[0][price_data][product_data][name]"),
        Some("Starter")
    );
    assert_eq!(c.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(c.field("metadata[plan]"), Some("starter"));
    assert_eq!(c.field("metadata[account_id]"), Some(account.as_str()));
    assert_eq!(
        c.field("subscription_data[metadata][plan]"),
        Some("starter")
    );
    assert_eq!(c.field("success_url"), Some("https://app.example/ok"));
    assert_eq!(c.field("cancel_url"), Some("https://app.example/cancel"));
    assert_eq!(c.field("allow_promotion_codes"), Some("true"));
    // The customer really exists in localstripe.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/customers/{customer}", local.url))
        .bearer_auth("sk_test_driftstack")
        .send()
        .await
        .expect("localstripe");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["email"], "owner@localhost");

    // The trial pack: a one-time payment, with a promotion code; the same customer.
    let r = s
        .post(
            &key,
            "/v1/billing/checkout",
            json!({"plan": "trial", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel", "promo_code": "promo_launch"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = fake.requests("/v1/checkout/sessions");
    let c = &sent[1];
    assert_eq!(c.field("mode"), Some("payment"));
    assert_eq!(c.field("customer"), Some(customer.as_str()));
    assert_eq!(
        c.field("line_items[0][price_data][unit_amount]"),
        Some("299")
    );
    assert_eq!(
        c.field("line_items[0][price_data][recurring][interval]"),
        None
    );
    assert_eq!(
        c.field("discounts[0][promotion_code]"),
        Some("promo_launch")
    );
    assert_eq!(
        fake.requests("/v1/customers").len(),
        1,
        "the customer is reused"
    );

    // Stripe reports the subscription: the tier changes at once.
    let completed = json!({
        "id": "evt_1", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_a1b2c3", "object": "checkout.session",
            "mode": "subscription", "payment_status": "paid", "customer": customer,
            "subscription": "sub_123",
            "metadata": {"account_id": account, "plan": "starter"}}}
    });
    // Wrong secret, stale and missing signatures change nothing.
    deliver(&s, "whsec_wrong", now(), &completed)
        .await
        .assert_problem(400, "invalid_signature");
    deliver(&s, WEBHOOK_SECRET, now() - 301, &completed)
        .await
        .assert_problem(400, "invalid_signature");
    s.send(
        s.http
            .post(s.url("/v1/billing/stripe/webhook"))
            .body(completed.to_string()),
    )
    .await
    .assert_problem(400, "invalid_signature");
    assert_eq!(billing(&s, &key).await["tier"], "trial");
    let r = deliver(&s, WEBHOOK_SECRET, now(), &completed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], false);
    let b = billing(&s, &key).await;
    assert_eq!(b["tier"], "starter");
    assert_eq!(b["plan"], "starter");
    assert_eq!(b["status"], "active");
    assert_eq!(b["portal_available"], true);
    assert_eq!(b["limits"]["max_concurrent_sessions"], 5);
    assert_eq!(
        s.get(&key, "/v1/account/me").await.json()["tier"],
        "starter"
    );
    // Replayed: acknowledged, nothing changes.
    let r = deliver(&s, WEBHOOK_SECRET, now(), &completed).await;
    assert_eq!(r.json()["duplicate"], true);

    // Payment trouble keeps the tier; the end of the subscription goes back to the trial tier.
    let updated = json!({
        "id": "evt_2", "type": "customer.subscription.updated",
        "data": {"object": {"id": "sub_123", "object": "subscription", "customer": customer,
            "status": "past_due", "current_period_end": 1_900_000_000,
            "metadata": {"account_id": account, "plan": "starter"}}}
    });
    assert_eq!(
        deliver(&s, WEBHOOK_SECRET, now(), &updated).await.status,
        200
    );
    let b = billing(&s, &key).await;
    assert_eq!(
        (b["tier"].as_str(), b["status"].as_str()),
        (Some("starter"), Some("past_due"))
    );
    assert_eq!(b["current_period_end"], "2030-03-17T17:46:40.000Z");
    let failed = json!({
        "id": "evt_3", "type": "invoice.payment_failed",
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer}}
    });
    assert_eq!(
        deliver(&s, WEBHOOK_SECRET, now(), &failed).await.status,
        200
    );
    let deleted = json!({
        "id": "evt_4", "type": "customer.subscription.deleted",
        "data": {"object": {"id": "sub_123", "object": "subscription", "customer": customer,
            "status": "canceled", "metadata": {}}}
    });
    assert_eq!(
        deliver(&s, WEBHOOK_SECRET, now(), &deleted).await.status,
        200
    );
    let b = billing(&s, &key).await;
    assert_eq!(
        (b["tier"].as_str(), b["status"].as_str()),
        (Some("trial"), Some("canceled"))
    );
    // An event of a type we do not act on is acknowledged.
    let other = json!({"id": "evt_5", "type": "charge.refunded", "data": {"object": {}}});
    assert_eq!(deliver(&s, WEBHOOK_SECRET, now(), &other).await.status, 200);

    // The portal.
    let r = s
        .post(
            &key,
            "/v1/billing/portal",
            json!({"return_url": "https://app.example/billing"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["portal_url"],
        "https://billing.stripe.test/p/session/test_1"
    );
    let p = &fake.requests("/v1/billing_portal/sessions")[0];
    assert_eq!(p.field("customer"), Some(customer.as_str()));
    assert_eq!(p.field("return_url"), Some("https://app.example/billing"));

    // Tier changes were announced and audited.
    let announced = eventually(Duration::from_secs(10), async || {
        let d = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .json();
        d["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["event_type"] == "billing.subscription_changed")
            .count()
            == 2
    })
    .await;
    assert!(announced, "two billing.subscription_changed events");
    let audit = s
        .get(&key, "/v1/audit-log?action=billing.&limit=100")
        .await
        .json();
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"billing.updated"), "{actions:?}");
    assert!(actions.contains(&"billing.checkout_started"), "{actions:?}");
    assert!(actions.contains(&"billing.portal_opened"), "{actions:?}");
    let text = audit.to_string();
    assert!(!text.contains("sk_test_driftstack") && !text.contains(WEBHOOK_SECRET));
}

async fn billing_off(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let b = billing(&s, &key).await;
    assert_eq!(b["enabled"], false);
    assert_eq!(b["tier"], "self_hosted");
    assert_eq!(b["limits"]["max_concurrent_sessions"], Value::Null);
    s.post(
        &key,
        "/v1/billing/checkout",
        json!({"plan": "starter", "success_url": "https://a.example/s", "cancel_url": "https://a.example/c"}),
    )
    .await
    .assert_problem(409, "billing_disabled");
    let r = deliver(&s, WEBHOOK_SECRET, now(), &json!({"id": "evt_1"})).await;
    r.assert_problem(404, "not_found");
}
