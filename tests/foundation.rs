//! End-to-end tests of the foundation against the real binary, on SQLite and PostgreSQL:
//! system routes, problem+json shapes, the API key lifecycle, idempotency, the admin CLI,
//! configuration errors and graceful shutdown.

mod support;

use serde_json::{Value, json};
use support::{Backend, Env};

on_both_backends!(
    system_routes,
    problem_shapes,
    key_lifecycle_with_grace_and_revocation,
    key_listing_pages_and_isolation,
    idempotent_creates,
    admin_cli_and_tiers,
    first_start_prints_a_key_once_and_shutdown_is_clean,
);

async fn system_routes(backend: Backend) {
    let mut env = Env::new(backend);
    env.set("METRICS_TOKEN", "metrics-secret-token");
    let s = env.start();

    let r = s.get("", "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert!(
        r.header("x-request-id")
            .is_some_and(|id| id.starts_with("req_"))
    );

    let r = s.get("", "/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["database"], "ok");

    let r = s.get("", "/v1/version").await;
    assert_eq!(r.json()["version"], env!("CARGO_PKG_VERSION"));

    let r = s.get("", "/openapi.json").await;
    assert_eq!(r.status, 200);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json at the repository root");
    assert_eq!(
        r.text(),
        committed,
        "the served spec differs from openapi.json"
    );

    // The API reference works offline: Scalar is served by the binary, nothing from a CDN.
    let r = s.get("", "/docs/").await;
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("data-url=\"/openapi.json\""), "{page}");
    assert!(page.contains("src=\"/docs/scalar.js\""), "{page}");
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "{page}"
    );
    let csp = r.header("content-security-policy").unwrap_or("").to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let script = s.get("", "/docs/scalar.js").await;
    assert_eq!(script.status, 200);
    assert!(script.text().len() > 1_000_000, "the whole vendored bundle");

    // Metrics: a wrong or missing token is refused; the right one gets Prometheus text.
    s.get("", "/metrics").await.assert_problem(403, "forbidden");
    s.get("wrong", "/metrics")
        .await
        .assert_problem(403, "forbidden");
    let r = s.get("metrics-secret-token", "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("http_requests_total"), "{}", r.text());
    drop(s);

    // Without METRICS_TOKEN the route does not exist.
    env.vars.remove("METRICS_TOKEN");
    let s = env.start();
    s.get("anything", "/metrics")
        .await
        .assert_problem(404, "not_found");
}

async fn problem_shapes(backend: Backend) {
    let mut env = Env::new(backend);
    // A small limit, so the over-limit body below fits in the socket buffers and the client
    // is not cut off mid-upload when the server answers early.
    env.set("DRIFTSTACK_MAX_BODY_BYTES", "4096");
    let s = env.start();
    let key = s.key().to_owned();

    // 401: no credential, a malformed one, a well-formed unknown one.
    s.get("", "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");
    s.get("nonsense", "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");
    let unknown = api::apikey::generate(api::apikey::KeyMode::Live).expect("key");
    s.get(&unknown, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");
    // The last character changed (to another one: a key may itself end in `x`).
    let swap = if key.ends_with('x') { 'y' } else { 'x' };
    let typo = format!("{}{swap}", &key[..key.len() - 1]);
    s.get(&typo, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");

    // 403: a key without the scope.
    let r = s
        .post(
            &key,
            "/v1/api-keys",
            json!({"name": "reader", "scopes": ["account:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let reader = r.json()["key"].as_str().expect("key").to_owned();
    let doc = s
        .get(&reader, "/v1/api-keys")
        .await
        .assert_problem(403, "missing_permission");
    assert!(
        doc["detail"]
            .as_str()
            .is_some_and(|d| d.contains("keys:read"))
    );

    // 404 for unknown routes and unknown objects; 405 with Allow.
    s.get(&key, "/v1/nothing-here")
        .await
        .assert_problem(404, "not_found");
    let missing = format!("/v1/api-keys/key_{}", "0".repeat(32));
    s.get(&key, &missing).await.assert_problem(404, "not_found");
    let r = s.send(s.http.put(s.url("/healthz"))).await;
    r.assert_problem(405, "method_not_allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));

    // 413: a body over DRIFTSTACK_MAX_BODY_BYTES.
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(8 * 1024));
    let r = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    r.assert_problem(413, "payload_too_large");

    // 415: not JSON.
    let r = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&key)
                .body("name=x"),
        )
        .await;
    r.assert_problem(415, "unsupported_media_type");

    // 400: malformed JSON.
    let r = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    r.assert_problem(400, "malformed_json");

    // 422: field errors name the field.
    let doc = s
        .post(&key, "/v1/api-keys", json!({"name": 7}))
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["name"].is_string(), "{doc}");
    let doc = s
        .post(&key, "/v1/api-keys", json!({"scopes": ["sessions:fly"]}))
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["scopes[0]"].is_string(), "{doc}");
    let doc = s
        .post(&key, "/v1/api-keys", json!({"nmae": "typo"}))
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["nmae"].is_string(), "{doc}");
    let doc = s
        .post(
            &key,
            "/v1/api-keys",
            json!({"name": "", "expires_in_days": 0}),
        )
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["name"].is_string() && doc["errors"]["expires_in_days"].is_string());
    let doc = s
        .get(&key, "/v1/api-keys?limit=500")
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["limit"].is_string());
    let doc = s
        .get(&key, "/v1/api-keys?limit=abc")
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["limit"].is_string(), "{doc}");
    let doc = s.get(&key, "/v1/api-keys/ses_../../etc/passwd").await;
    assert!(doc.status == 404 || doc.status == 422, "{}", doc.text());
    let doc = s
        .get(&key, "/v1/api-keys/sess_123")
        .await
        .assert_problem(422, "validation_failed");
    assert!(doc["errors"]["id"].is_string());

    // Nothing above may have made the server log a panic.
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

async fn key_lifecycle_with_grace_and_revocation(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let owner = s.key().to_owned();

    let r = s.post(&owner, "/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let old_key = created["key"].as_str().expect("secret").to_owned();
    let old_id = created["id"].as_str().expect("id").to_owned();
    assert!(old_key.starts_with("ds_live_"));
    assert_eq!(created["last4"], &old_key[old_key.len() - 4..]);
    assert_eq!(created["status"], "active");

    // Shown once: later reads never include the secret.
    let r = s.get(&owner, &format!("/v1/api-keys/{old_id}")).await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("key").is_none());
    assert!(!r.text().contains(&old_key));

    // The new key authenticates.
    let r = s.get(&old_key, "/v1/account/me").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["actor"]["id"], old_id.as_str());

    // Rotate: a new key now; the old one keeps working through the grace period.
    let r = s
        .post(&owner, &format!("/v1/api-keys/{old_id}/rotate"), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rotated = r.json();
    let new_key = rotated["key"].as_str().expect("secret").to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(s.get(&new_key, "/v1/account/me").await.status, 200);
    assert_eq!(s.get(&old_key, "/v1/account/me").await.status, 200);
    let old = s
        .get(&owner, &format!("/v1/api-keys/{old_id}"))
        .await
        .json();
    assert_eq!(old["status"], "expiring");
    assert_eq!(old["rotated_to"], rotated["id"]);

    // 23 hours later the old key still works; after 24 hours it stops.
    env.advance_clock(23 * 3600);
    assert_eq!(s.get(&old_key, "/v1/account/me").await.status, 200);
    env.advance_clock(3600 + 1);
    s.get(&old_key, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(s.get(&new_key, "/v1/account/me").await.status, 200);
    let old = s
        .get(&owner, &format!("/v1/api-keys/{old_id}"))
        .await
        .json();
    assert_eq!(old["status"], "expired");
    // An expired key cannot be rotated again.
    s.post(&owner, &format!("/v1/api-keys/{old_id}/rotate"), json!({}))
        .await
        .assert_problem(409, "key_not_active");

    // Rotation with no grace (after a leak) stops the old key at once.
    let new_id = rotated["id"].as_str().expect("id").to_owned();
    let r = s
        .post(
            &owner,
            &format!("/v1/api-keys/{new_id}/rotate"),
            json!({"grace_seconds": 0}),
        )
        .await;
    assert_eq!(r.status, 201);
    let third_key = r.json()["key"].as_str().expect("secret").to_owned();
    s.get(&new_key, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");
    s.post(
        &owner,
        &format!("/v1/api-keys/{new_id}/rotate"),
        json!({"grace_seconds": 604801}),
    )
    .await
    .assert_problem(422, "validation_failed");

    // Revoke: stops at once, even though the key was just used (and cached).
    let third_id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(s.get(&third_key, "/v1/account/me").await.status, 200);
    let r = s.delete(&owner, &format!("/v1/api-keys/{third_id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "revoked");
    s.get(&third_key, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");

    // A key can only be given scopes its creator has.
    let r = s
        .post(
            &owner,
            "/v1/api-keys",
            json!({"name": "k", "scopes": ["keys:write", "keys:read"]}),
        )
        .await;
    let limited = r.json()["key"].as_str().expect("secret").to_owned();
    s.post(
        &limited,
        "/v1/api-keys",
        json!({"scopes": ["sessions:write"]}),
    )
    .await
    .assert_problem(403, "scope_escalation");
    let r = s.post(&limited, "/v1/api-keys", json!({})).await;
    assert_eq!(r.status, 201);
    let scopes: Vec<Value> = r.json()["scopes"].as_array().cloned().unwrap_or_default();
    assert_eq!(scopes, vec![json!("keys:read"), json!("keys:write")]);

    // Expiry by `expires_in_days`.
    let r = s
        .post(&owner, "/v1/api-keys", json!({"expires_in_days": 1}))
        .await;
    let short = r.json()["key"].as_str().expect("secret").to_owned();
    assert_eq!(s.get(&short, "/v1/account/me").await.status, 200);
    env.advance_clock(86_400 + 1);
    s.get(&short, "/v1/account/me")
        .await
        .assert_problem(401, "unauthorized");

    // The database holds no plain key.
    drop(s);
    assert_no_plain_keys(&env, &[&old_key, &new_key, &third_key, &limited, &owner]).await;
}

async fn assert_no_plain_keys(env: &Env, keys: &[&str]) {
    let dump = match env.backend {
        Backend::Sqlite => {
            let mut all = Vec::new();
            let data = env.dir.path().join("data");
            for entry in std::fs::read_dir(&data).expect("data dir").flatten() {
                all.extend(std::fs::read(entry.path()).unwrap_or_default());
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Backend::Postgres => {
            let url = &env.pg.as_ref().expect("pg").url;
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT key_hash || ' ' || last4 FROM api_keys")
                    .fetch_all(&pool)
                    .await
                    .expect("select");
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
        }
    };
    for key in keys {
        assert!(!dump.contains(key), "a plain key is stored");
    }
}

async fn key_listing_pages_and_isolation(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let owner = s.key().to_owned();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s
            .post(&owner, "/v1/api-keys", json!({"name": format!("k{i}")}))
            .await;
        ids.push(r.json()["id"].as_str().expect("id").to_owned());
    }
    // Newest first, two per page, 6 keys in all (with the bootstrap key).
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/api-keys?limit=2&starting_after={c}"),
            None => "/v1/api-keys?limit=2".to_owned(),
        };
        let page = s.get(&owner, &path).await.json();
        let data = page["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 2);
        for k in &data {
            assert!(k.get("key").is_none(), "listing shows a secret");
            seen.push(k["id"].as_str().expect("id").to_owned());
        }
        if page["has_more"] != true {
            break;
        }
        cursor = seen.last().cloned();
    }
    assert_eq!(seen.len(), 6);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(&seen[..5], &newest_first[..]);

    // Another account sees none of them, and gets 404 (not 403) for each.
    env.cli(&["accounts", "create", "--email", "other@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "other@example.com"]);
    let page = s.get(&other, "/v1/api-keys").await.json();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    for id in &ids {
        s.get(&other, &format!("/v1/api-keys/{id}"))
            .await
            .assert_problem(404, "not_found");
        s.delete(&other, &format!("/v1/api-keys/{id}"))
            .await
            .assert_problem(404, "not_found");
        s.post(&other, &format!("/v1/api-keys/{id}/rotate"), json!({}))
            .await
            .assert_problem(404, "not_found");
    }
    assert_eq!(
        s.get(&owner, &format!("/v1/api-keys/{}", ids[0]))
            .await
            .status,
        200
    );
}

async fn idempotent_creates(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let post = |idem: &str, body: Value| {
        s.http
            .post(s.url("/v1/api-keys"))
            .bearer_auth(&key)
            .header("idempotency-key", idem)
            .json(&body)
    };
    let first = s.send(post("create-1", json!({"name": "once"}))).await;
    assert_eq!(first.status, 201);
    let again = s.send(post("create-1", json!({"name": "once"}))).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json(), "a replay answers the same body");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // The stored answer holds the new key: it is sealed at rest, never plaintext.
    if backend == Backend::Sqlite {
        let secret = first.json()["key"].as_str().expect("key").to_owned();
        let db = std::fs::read(env.dir.path().join("data/driftstack.db")).unwrap_or_default();
        let wal = std::fs::read(env.dir.path().join("data/driftstack.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the new key is stored in plaintext"
            );
        }
    }
    let page = s.get(&key, "/v1/api-keys").await.json();
    assert_eq!(
        page["data"].as_array().map(Vec::len),
        Some(2),
        "only one key was created"
    );

    // Same key, different body.
    s.send(post("create-1", json!({"name": "twice"})))
        .await
        .assert_problem(422, "idempotency_key_reused");

    // Errors are replayed too (a 422 stays a 422).
    let bad = s.send(post("create-2", json!({"name": ""}))).await;
    bad.assert_problem(422, "validation_failed");
    let bad_again = s.send(post("create-2", json!({"name": ""}))).await;
    assert_eq!(bad_again.status, 422);
    assert_eq!(bad_again.header("idempotent-replayed"), Some("true"));

    // Keys are per account: another account may use the same idempotency key.
    env.cli(&["accounts", "create", "--email", "second@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "second@example.com"]);
    let r = s
        .send(
            s.http
                .post(s.url("/v1/api-keys"))
                .bearer_auth(&other)
                .header("idempotency-key", "create-1")
                .json(&json!({"name": "theirs"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["name"], "theirs");

    // An over-long key is refused.
    s.send(post(&"k".repeat(256), json!({})))
        .await
        .assert_problem(422, "validation_failed");

    // After 24 hours the key may be used afresh.
    env.advance_clock(24 * 3600 + 1);
    let fresh = s.send(post("create-1", json!({"name": "twice"}))).await;
    assert_eq!(fresh.status, 201);
    assert!(fresh.header("idempotent-replayed").is_none());
}

async fn admin_cli_and_tiers(backend: Backend) {
    let env = Env::new(backend);
    env.cli(&["migrate"]);
    let account = env.cli(&[
        "accounts",
        "create",
        "--email",
        "Trial@Example.com",
        "--tier",
        "trial",
        "--password",
        "long enough password",
    ]);
    assert!(account.starts_with("acct_"), "{account}");
    // Trial accounts get test keys and cannot have live ones.
    let err = env
        .command(&[
            "keys",
            "create",
            "--email",
            "trial@example.com",
            "--mode",
            "live",
        ])
        .output()
        .expect("run");
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("only test keys"));
    let test_key = env.cli(&[
        "keys",
        "create",
        "--email",
        "trial@example.com",
        "--scopes",
        "account:read,keys:write,keys:read",
    ]);
    assert!(test_key.starts_with("ds_test_"), "{test_key}");

    // Duplicate email, unknown tier and a short password are refused with a message.
    for args in [
        vec!["accounts", "create", "--email", "trial@example.com"],
        vec![
            "accounts",
            "create",
            "--email",
            "x@example.com",
            "--tier",
            "platinum",
        ],
        vec![
            "accounts",
            "create",
            "--email",
            "y@example.com",
            "--password",
            "short",
        ],
        vec!["keys", "create", "--email", "nobody@example.com"],
        vec![
            "keys",
            "create",
            "--email",
            "trial@example.com",
            "--scopes",
            "root",
        ],
    ] {
        let out = env.command(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    }

    let s = env.start();
    assert!(s.bootstrap_key.is_none(), "accounts exist: no bootstrap");
    let me = s.get(&test_key, "/v1/account/me").await.json();
    assert_eq!(me["tier"], "trial");
    assert_eq!(me["id"], account.as_str());
    s.post(&test_key, "/v1/api-keys", json!({"mode": "live"}))
        .await
        .assert_problem(403, "live_keys_require_paid_tier");
    let r = s.post(&test_key, "/v1/api-keys", json!({})).await;
    assert_eq!(r.json()["mode"], "test");

    // Upgrading the tier through the CLI allows live keys (after the key cache expires or at
    // once on a fresh server).
    env.cli(&[
        "accounts",
        "set-tier",
        "--email",
        "trial@example.com",
        "--tier",
        "pro",
    ]);
    drop(s);
    let s = env.start();
    let r = s
        .post(&test_key, "/v1/api-keys", json!({"mode": "live"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.json()["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("ds_live_"))
    );
    let me = s.get(&test_key, "/v1/account/me").await.json();
    assert_eq!(me["tier"], "pro");
}

async fn first_start_prints_a_key_once_and_shutdown_is_clean(backend: Backend) {
    let env = Env::new(backend);
    let s = env.start();
    let key = s.key().to_owned();
    assert!(s.stdout.iter().any(|l| l.contains("owner@localhost")));
    assert_eq!(s.get(&key, "/v1/account/me").await.status, 200);
    let status = s.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");

    // Restart on the same database: no new owner, the old key still works.
    let s = env.start();
    assert!(s.bootstrap_key.is_none(), "{:?}", s.stdout);
    assert_eq!(s.get(&key, "/v1/account/me").await.status, 200);
    let log_path = s.log_path.clone();
    let status = s.terminate();
    assert!(status.success());
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("shut down cleanly"), "{log}");
}
