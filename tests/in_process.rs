//! The router in process, through `tower::ServiceExt::oneshot`: authentication, permissions,
//! problem mapping and the routing of session commands, without a server or a browser. Each
//! test builds the real state on a fresh SQLite file; the end-to-end suites cover behaviour.

mod support;

use std::{collections::HashMap, net::SocketAddr};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use common::ids::{AccountId, RunnerId, SessionId};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use support::TempDir;

struct App {
    state: api::state::AppState,
    _dir: TempDir,
}

/// The state of a node without browsers in use (`serving` off: nothing is started).
async fn app(extra: &[(&str, &str)]) -> App {
    let dir = TempDir::new("in-process");
    let mut vars: HashMap<String, String> = HashMap::from([
        (
            "DRIFTSTACK_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite:{}/db.sqlite?mode=rwc", dir.path().display()),
        ),
        (
            "DRIFTSTACK_MASTER_KEY".to_owned(),
            support::test_master_key(),
        ),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = api::config::Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let state = api::build_state(config, "http://127.0.0.1:9".into(), false)
        .await
        .expect("state");
    App { state, _dir: dir }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }

    fn is_problem(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            == Some("application/problem+json")
    }
}

impl App {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).expect("request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = api::app(self.state.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A new account with one member, and a key of `scopes` (all when `None`).
    async fn account(&self, email: &str, scopes: Option<&[&str]>) -> (AccountId, String) {
        let account =
            api::service::accounts::create_account(&self.state, email, None, "self_hosted")
                .await
                .expect("account");
        let key = api::service::accounts::create_key(
            &self.state,
            email,
            "test key",
            None,
            scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
        )
        .await
        .expect("key");
        (account, key)
    }

    /// A live (`starting`) session of `account` on runner `runner`, written as a runner would.
    async fn session_on(&self, account: &AccountId, runner: &RunnerId) -> SessionId {
        let id = SessionId::generate();
        let now = self.state.clock.now_ms();
        let admitted = self
            .state
            .sessions
            .insert_under_cap(
                &runner::store::NewSession {
                    id: &id,
                    account_id: account,
                    runner_id: runner,
                    options: &json!({}),
                    now,
                    expires_at: now + 60_000,
                    idle_timeout_ms: 60_000,
                    created_by: None,
                    source: None,
                },
                None,
            )
            .await
            .expect("insert");
        assert!(admitted);
        id
    }
}

#[tokio::test]
async fn no_credential_is_a_401_problem_and_a_garbage_key_too() {
    let app = app(&[]).await;
    let r = app.call(Method::GET, "/v1/sessions", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.is_problem());
    let r = app
        .call(Method::GET, "/v1/sessions", Some("ds_live_not-a-key"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.is_problem());
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = app(&[]).await;
    let r = app.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.is_problem());
    let r = app.call(Method::PUT, "/v1/sessions", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.is_problem());
}

#[tokio::test]
async fn a_read_only_key_cannot_start_or_drive_sessions() {
    let app = app(&[]).await;
    let (_, key) = app
        .account("reader@example.com", Some(&["sessions:read"]))
        .await;
    let r = app
        .call(Method::GET, "/v1/sessions", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .call(Method::POST, "/v1/sessions", Some(&key), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), Some("missing_permission"));
    assert_eq!(r.body["permission"], "sessions:write");
}

#[tokio::test]
async fn a_key_cannot_issue_a_key_with_more_than_it_has() {
    let app = app(&[]).await;
    let (_, key) = app
        .account("minter@example.com", Some(&["keys:write", "sessions:read"]))
        .await;
    let r = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"scopes": ["sessions:write"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), Some("scope_escalation"));
    // Within its own scopes it may.
    let r = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"scopes": ["sessions:read"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["scopes"], json!(["sessions:read"]));
}

#[tokio::test]
async fn bad_bodies_name_the_field_in_a_sentence() {
    let app = app(&[]).await;
    let (_, key) = app.account("typo@example.com", None).await;
    let r = app
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["errors"]["name"].is_string(), "{}", r.body);
    let r = app
        .call(
            Method::POST,
            "/v1/sessions",
            Some(&key),
            Some(json!({"viewport": {"width": 5, "height": 720}, "proxy": {"server": "ftp://x"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["errors"]["viewport.width"].is_string(), "{}", r.body);
    assert!(r.body["errors"]["proxy.server"].is_string(), "{}", r.body);
}

/// Every serde message a user can trigger reads as a sentence (dashboard bug 7: "Expires in -5"
/// showed `invalid value: integer -5, expected u32`).
#[tokio::test]
async fn type_errors_are_sentences_not_serde_text() {
    let app = app(&[]).await;
    let (_, key) = app.account("sentences@example.com", None).await;
    let cases = [
        (
            "/v1/api-keys",
            json!({"name": "k", "expires_in_days": -5}),
            "expires_in_days",
            "must be a whole number from 0 to 4294967295, not -5",
        ),
        (
            "/v1/api-keys",
            json!({"name": 5}),
            "name",
            "must be a string, not 5",
        ),
        (
            "/v1/sessions",
            json!({"viewport": {"width": "wide", "height": 720}}),
            "viewport.width",
            "must be a whole number",
        ),
        (
            "/v1/sessions",
            json!({"viewprot": {}}),
            "viewprot",
            "is not a field here",
        ),
        (
            "/v1/sessions",
            json!({"viewport": []}),
            "viewport",
            "must be an object, not a list",
        ),
    ];
    for (path, body, field, want) in cases {
        let r = app
            .call(Method::POST, path, Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        let text = r.body["errors"][field].as_str().unwrap_or_default();
        assert!(
            text.contains(want),
            "{body}: {field} says {text:?}; {}",
            r.body
        );
        for jargon in [
            "invalid value",
            "invalid type",
            "expected u",
            "struct ",
            " at line ",
        ] {
            assert!(!text.contains(jargon), "{body}: {text:?}");
        }
    }
}

#[tokio::test]
async fn admission_on_a_node_without_browsers_says_so() {
    let app = app(&[]).await;
    let (_, key) = app.account("early@example.com", None).await;
    let r = app
        .call(Method::POST, "/v1/sessions", Some(&key), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn a_session_on_another_runner_is_located_before_any_handler_runs() {
    let app = app(&[]).await;
    let (account, key) = app.account("owner@example.com", None).await;
    let (_, stranger) = app.account("stranger@example.com", None).await;
    let elsewhere = RunnerId::generate();
    let id = app.session_on(&account, &elsewhere).await;
    let navigate = json!({"url": "http://127.0.0.1:9/"});
    let path = format!("/v1/sessions/{id}/navigate");

    // Forwarding is off: the client is told which runner holds it. (A handler on this node,
    // which runs no browsers, would have answered 503.)
    let r = app
        .call(Method::POST, &path, Some(&key), Some(navigate.clone()))
        .await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{}", r.body);
    assert_eq!(r.code(), Some("session_on_another_node"));
    assert_eq!(r.body["runner_id"], elsewhere.as_str());

    // Another account learns nothing: the same 404 as an unknown id, no runner named.
    let r = app
        .call(Method::POST, &path, Some(&stranger), Some(navigate.clone()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(r.body.get("runner_id").is_none());
    let unknown = format!("/v1/sessions/{}/navigate", SessionId::generate());
    let r = app
        .call(Method::POST, &unknown, Some(&key), Some(navigate.clone()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

    // No credential: 401 before anything is located.
    let r = app.call(Method::POST, &path, None, Some(navigate)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // Reading it is answered by any node.
    let r = app
        .call(Method::GET, &format!("/v1/sessions/{id}"), Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["runner_id"], elsewhere.as_str());

    // The raw CDP socket: a bad connect token is refused before the session is located.
    let r = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/cdp?token=forged"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // A read-only key may not open it.
    let (_, reader) = app
        .account("viewer@example.com", Some(&["sessions:read"]))
        .await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/cdp"),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test]
async fn with_forwarding_on_a_session_whose_runner_is_gone_is_a_503_to_retry() {
    let token = "in-process-cluster-token-0123456789abcdef";
    let app = app(&[("DRIFTSTACK_CLUSTER_TOKEN", token)]).await;
    let (account, key) = app.account("cluster@example.com", None).await;
    // A runner the registry does not know (dead, or never registered): no address to send to.
    let id = app.session_on(&account, &RunnerId::generate()).await;
    let r = app
        .call(
            Method::POST,
            &format!("/v1/sessions/{id}/wait"),
            Some(&key),
            Some(json!({"ms": 10})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

/// A route in the deprecation table answers with `Deprecation`, `Sunset` and `Link`, and its
/// calls are counted per credential; other routes carry none of it.
#[tokio::test]
async fn a_deprecated_route_says_so_and_its_calls_are_counted() {
    static TABLE: &[api::deprecation::Deprecated] = &[api::deprecation::Deprecated {
        method: "GET",
        path: "/v1/version",
        since: 1_764_547_200,
        sunset: 1_780_272_000,
        instead: "nothing: a test entry",
    }];
    let mut app = app(&[]).await;
    app.state.deprecated = TABLE;
    let (_, key) = app.account("deprecated@example.com", None).await;
    for _ in 0..2 {
        let r = app.call(Method::GET, "/v1/version", Some(&key), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["deprecation"], "@1764547200");
        assert_eq!(r.headers["sunset"], "Mon, 01 Jun 2026 00:00:00 GMT");
        let link = r.headers["link"].to_str().expect("link");
        assert!(link.contains("rel=\"deprecation\""), "{link}");
        assert_eq!(r.body["api_version"], "1.0.0");
    }
    let anonymous = app.call(Method::GET, "/v1/version", None, None).await;
    assert!(anonymous.headers.contains_key("deprecation"));
    let fresh = app.call(Method::GET, "/v1/usage", Some(&key), None).await;
    assert!(
        !fresh.headers.contains_key("deprecation"),
        "only the deprecated route says so"
    );
    let counted = app
        .call(Method::GET, "/v1/usage/deprecated", Some(&key), None)
        .await;
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.body);
    let rows = counted.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{}", counted.body);
    assert_eq!(rows[0]["path"], "/v1/version");
    assert_eq!(rows[0]["calls"], 2);
    assert!(
        rows[0]["actor"].as_str().unwrap_or("").starts_with("key_"),
        "{}",
        counted.body
    );
}

/// The OpenAPI document marks a deprecated route's operation `deprecated: true`.
#[test]
fn the_openapi_document_marks_deprecated_operations() {
    let (_, mut doc) = api::app::router_parts();
    api::deprecation::mark(
        &mut doc,
        &[api::deprecation::Deprecated {
            method: "GET",
            path: "/v1/version",
            since: 0,
            sunset: 0,
            instead: "",
        }],
    );
    let doc = serde_json::to_value(&doc).expect("json");
    assert_eq!(doc["paths"]["/v1/version"]["get"]["deprecated"], true);
    assert!(doc["paths"]["/v1/usage"]["get"].get("deprecated").is_none());
}

/// A deprecated field is `deprecated: true` on its property in the OpenAPI document.
#[test]
fn the_openapi_document_marks_deprecated_fields() {
    let (_, mut doc) = api::app::router_parts();
    api::deprecation::mark_fields(
        &mut doc,
        &[api::deprecation::DeprecatedField {
            schema: "SessionResponse",
            field: "create_ms",
            since: 0,
            sunset: 0,
            instead: "",
        }],
    );
    let doc = serde_json::to_value(&doc).expect("json");
    let props = &doc["components"]["schemas"]["SessionResponse"]["properties"];
    assert_eq!(
        props["create_ms"]["deprecated"], true,
        "{}",
        props["create_ms"]
    );
    assert!(props["status"].get("deprecated").is_none());
}
