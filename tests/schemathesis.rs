//! The API fuzzing gate: Schemathesis against the committed `openapi.json` and the running
//! binary (embedded runner, real Chromium), once with an API key and once with a dashboard token
//! of a signed-in user: every phase (coverage, fuzzing, stateful links) and every check — no
//! server errors, documented status codes and content types, responses matching their schemas,
//! invalid data and missing required headers refused, schema-valid data accepted. The last one is
//! off only for the operations `tests/schemathesis.toml` lists, each with its reason (WebSocket
//! upgrades, DNS-dependent egress rules, unknown link tokens, URL parsing). The session commands
//! are left out: a page that never loads or never shows a selector is answered with a documented
//! 502/504, which the fuzzer would count as a server error. `tests/schemathesis_hooks.py` gives
//! every well-formed `Idempotency-Key` a unique suffix, as a real client would.

mod support;

use support::{Backend, Env};

#[test]
fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let tool = std::env::var("DRIFTSTACK_SCHEMATHESIS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/driftstack/schemathesis-venv/bin/schemathesis",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&tool).exists(),
        "schemathesis is not installed: run scripts/test (it prepares {tool})"
    );
    let mut env = Env::new(Backend::Sqlite);
    // Few, short sessions: fuzzing creates some.
    let tiers = env.dir.path().join("tiers.json");
    std::fs::write(
        &tiers,
        r#"{"self_hosted": {"display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": 2, "max_session_seconds": 60,
            "idle_timeout_seconds": 5, "monthly_sessions": null, "monthly_session_minutes": null,
            "rate_limit_per_second": 100000, "rate_limit_burst": 100000, "max_profiles": 20,
            "max_profile_state_bytes": 1048576}}"#,
    )
    .expect("tiers");
    env.set("DRIFTSTACK_TIERS_FILE", &tiers.display().to_string());
    env.set("DRIFTSTACK_AUTH_IP_PER_MINUTE", "1000000");
    let s = env.start();

    // A dashboard token of a signed-up user (role owner of a new account), taken first: the
    // fuzzing below uses up the per-address budget of sign-up mails.
    let token = dashboard_token(&s, &env);
    assert!(token.starts_with("dsat_"), "{token}");

    // With an API key (every scope).
    let report = fuzz(&tool, &s.base, s.key(), &[]);
    assert!(report.contains("passed"), "{report}");

    // With the dashboard token. Logging out would end the token mid-run, so that one operation
    // is left to tests/identity.rs.
    let report = fuzz(
        &tool,
        &s.base,
        &token,
        &["--exclude-path", "/v1/auth/logout"],
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!s.log().contains("panicked"), "a panic in the server log");
}

/// Runs Schemathesis with `credential` as the bearer token; fails the test on any finding.
fn fuzz(tool: &str, base: &str, credential: &str, extra: &[&str]) -> String {
    let auth = format!("Authorization: Bearer {credential}");
    let out = std::process::Command::new(tool)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
        .args([
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
            "run",
            concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"),
            "--url",
            base,
            "-H",
            &auth,
            // Their 502/504 answers are documented upstream failures of the page, not ours (the
            // bad-input corpus in tests/resilience.rs covers these routes).
            "--exclude-path-regex",
            "^/v1/sessions/\\{id\\}/(navigate|wait|actions|capture)$",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--no-color",
        ])
        .args(extra)
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// Signs a user up through the API, verifies the address from the outbox and signs in.
fn dashboard_token(s: &support::Server, env: &Env) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let email = "fuzz@example.com";
        let password = "a long and unusual passphrase 7";
        let post =
            |path: &str, body: serde_json::Value| s.send(s.http.post(s.url(path)).json(&body));
        let r = post(
            "/v1/auth/signup",
            serde_json::json!({"email": email, "password": password}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text());
        let data = env.dir.path().join("data");
        let mut mail = None;
        support::eventually(std::time::Duration::from_secs(10), async || {
            mail = support::mail::to(&data, email).into_iter().last();
            mail.is_some()
        })
        .await;
        let mail = mail.expect("verification mail");
        let r = post(
            "/v1/auth/verify-email",
            serde_json::json!({"token": mail.token(), "password": password}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post(
            "/v1/auth/login",
            serde_json::json!({"email": email, "password": password}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    })
}
