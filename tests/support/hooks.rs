//! A webhook receiver on loopback for the end-to-end tests: answers 200 and keeps every
//! delivery's headers and body, repeats included.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};

/// One delivery: its headers and raw body.
pub type Delivery = (HeaderMap, Vec<u8>);

/// What arrived, in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Delivery>>>);

impl Seen {
    /// Every delivery as (headers, raw body).
    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The `webhook-id` of every delivery.
    pub fn ids(&self) -> Vec<String> {
        self.all()
            .iter()
            .filter_map(|(h, _)| h.get("webhook-id")?.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// Every delivery's body as JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.all()
            .iter()
            .filter_map(|(_, b)| serde_json::from_slice(b).ok())
            .collect()
    }
}

/// Starts a receiver; answers its `/hook` URL and what it sees.
pub async fn receiver() -> (String, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                if let Ok(mut v) = s.0.lock() {
                    v.push((headers, body.to_vec()));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}
