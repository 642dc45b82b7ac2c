//! Stripe stand-ins on loopback: `localstripe` (PyPI, in the venv `scripts/test` prepares) for
//! customers, and a small fake for what localstripe lacks (Checkout Sessions, the Billing
//! Portal), answering in Stripe's documented shape and recording every request it gets.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::post,
};
use serde_json::{Value, json};

/// localstripe, bound to 127.0.0.1 on a free port; killed on drop.
pub struct LocalStripe {
    pub url: String,
    child: Child,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalStripe {
    pub fn start() -> LocalStripe {
        let python = std::env::var("DRIFTSTACK_LOCALSTRIPE_PYTHON").unwrap_or_else(|_| {
            format!(
                "{}/.cache/driftstack/localstripe-venv/bin/python",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        assert!(
            std::path::Path::new(&python).exists(),
            "localstripe is not installed: run scripts/test (it prepares {python})"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = Command::new(python)
            .args([
                "-c",
                "import sys; from aiohttp import web; from localstripe.server import app; \
                 web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start localstripe");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "localstripe did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        LocalStripe {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

/// One request the fake received: path and form fields.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub form: Vec<(String, String)>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct FakeState {
    localstripe: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
}

pub struct FakeStripe {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(state: &FakeState, path: &str, body: &[u8]) -> Vec<(String, String)> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    if let Ok(mut s) = state.seen.lock() {
        s.push(Seen {
            path: path.to_owned(),
            form: form.clone(),
        });
    }
    form
}

async fn customers(
    State(s): State<FakeState>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    record(&s, "/v1/customers", &body);
    let mut req = s
        .http
        .post(format!("{}/v1/customers", s.localstripe))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_vec());
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        req = req.header("authorization", auth);
    }
    match req.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = r.text().await.unwrap_or_default();
            (status, [("content-type", "application/json")], text)
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            [("content-type", "application/json")],
            json!({"error": {"message": e.to_string()}}).to_string(),
        ),
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const CHECKOUT_SESSION: &str = r#"{
  "id": "cs_test_a1b2c3", "object": "checkout.session", "adaptive_pricing": null,
  "after_expiration": null, "allow_promotion_codes": null, "amount_subtotal": 299,
  "amount_total": 299,
  "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
  "billing_address_collection": null, "cancel_url": null, "client_reference_id": null,
  "client_secret": null, "collected_information": null, "consent": null,
  "consent_collection": null, "created": 0, "currency": "usd", "currency_conversion": null,
  "custom_fields": [],
  "custom_text": {"after_submit": null, "shipping_address": null, "submit": null,
                  "terms_of_service_acceptance": null},
  "customer": null, "customer_creation": null, "customer_details": null, "customer_email": null,
  "discounts": [], "expires_at": 0, "invoice": null, "invoice_creation": null,
  "livemode": false, "locale": null, "metadata": {}, "mode": "payment", "payment_intent": null,
  "payment_link": null, "payment_method_collection": "always",
  "payment_method_configuration_details": null, "payment_method_options": {},
  "payment_method_types": ["card"], "payment_status": "unpaid", "permissions": null,
  "phone_number_collection": {"enabled": false}, "presentment_details": null,
  "recovered_from": null, "redirect_on_completion": null, "return_url": null,
  "saved_payment_method_options": null, "setup_intent": null,
  "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
  "status": "open", "submit_type": null, "subscription": null, "success_url": null,
  "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
  "ui_mode": "hosted", "url": "https://checkout.stripe.test/c/pay/cs_test_a1b2c3",
  "wallet_options": null
}"#;

async fn checkout_sessions(State(s): State<FakeState>, body: Bytes) -> impl IntoResponse {
    let form = record(&s, "/v1/checkout/sessions", &body);
    let mode = field(&form, "mode").unwrap_or("payment").to_owned();
    let now = 1_764_000_000;
    // Stripe's documented Checkout Session object.
    let mut session: Value = serde_json::from_str(CHECKOUT_SESSION).unwrap_or_default();
    session["created"] = json!(now);
    session["expires_at"] = json!(now + 86400);
    session["mode"] = json!(mode);
    for f in [
        "cancel_url",
        "success_url",
        "client_reference_id",
        "customer",
    ] {
        session[f] = json!(field(&form, f));
    }
    ([("content-type", "application/json")], session.to_string())
}

async fn portal_sessions(State(s): State<FakeState>, body: Bytes) -> impl IntoResponse {
    let form = record(&s, "/v1/billing_portal/sessions", &body);
    // Stripe's documented Billing Portal Session object.
    let session = json!({
        "id": "bps_test_1", "object": "billing_portal.session", "configuration": "bpc_test_1",
        "created": 1_764_000_000, "customer": field(&form, "customer"), "customer_account": null,
        "flow": null, "livemode": false, "locale": null, "on_behalf_of": null,
        "return_url": field(&form, "return_url"),
        "url": "https://billing.stripe.test/p/session/test_1"
    });
    ([("content-type", "application/json")], session.to_string())
}

impl FakeStripe {
    pub async fn start(localstripe: &str) -> FakeStripe {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            localstripe: localstripe.to_owned(),
            seen: seen.clone(),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/v1/customers", post(customers))
            .route("/v1/checkout/sessions", post(checkout_sessions))
            .route("/v1/billing_portal/sessions", post(portal_sessions))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake stripe");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { url, seen, task }
    }

    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|s| s.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default()
    }
}

/// A Stripe event signed as Stripe would sign it.
pub fn signed_event(secret: &str, timestamp: i64, event: &Value) -> (String, String) {
    use hmac::{Hmac, Mac};
    let body = event.to_string();
    let mut mac =
        <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, format!("t={timestamp},v1={hex}"))
}
