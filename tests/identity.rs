//! End-to-end tests of dashboard identity over HTTP against the real binary: signup and email
//! verification, login, refresh rotation with reuse detection, logout, TOTP enrolment with replay
//! protection and single-use recovery codes, the MFA challenge, step-up and its expiry on
//! sensitive routes, magic links, password reset (revoking every session), enumeration-safe
//! answers, the rate limits, account settings, SMTP delivery and the audit trail — on SQLite and
//! PostgreSQL. Mail is read from the file outbox.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Reply, Server, mail};

on_both_backends!(
    signup_verify_login_refresh_logout,
    totp_mfa_with_replay_protection_recovery_codes_and_step_up,
    magic_link_and_password_reset,
    enumeration_safe_answers_and_rate_limits,
    account_settings_and_user_only_routes,
    an_address_belongs_to_whoever_proves_it,
    step_up_by_password_is_throttled_and_mfa_enrolment_needs_it,
    the_otp_limit_holds_under_concurrent_attempts,
    the_dashboards_own_calls_are_not_billable_api_calls,
);

const PASSWORD: &str = "a long and unusual passphrase";

fn env(backend: Backend) -> Env {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_AUTH_IP_PER_MINUTE", "100000");
    env.set("DRIFTSTACK_PUBLIC_URL", "https://app.driftstack.test");
    env
}

fn data(env: &Env) -> std::path::PathBuf {
    env.dir.path().join("data")
}

async fn post(s: &Server, path: &str, body: Value) -> Reply {
    s.send(s.http.post(s.url(path)).json(&body)).await
}

async fn post_auth(s: &Server, token: &str, path: &str, body: Value) -> Reply {
    s.post(token, path, body).await
}

/// Waits for the `n`-th message to `to` (mail is sent off the request path).
async fn nth_mail(env: &Env, to: &str, n: usize) -> mail::Message {
    let dir = data(env);
    let ok = support::eventually(Duration::from_secs(10), async || {
        mail::to(&dir, to).len() >= n
    })
    .await;
    assert!(ok, "no mail #{n} to {to}: {:?}", mail::outbox(&dir));
    mail::to(&dir, to)[n - 1].clone()
}

async fn login(s: &Server, email: &str, password: &str) -> Value {
    let r = post(
        s,
        "/v1/auth/login",
        json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Signs up and verifies `email`; returns a signed-in token response.
async fn signed_up(s: &Server, env: &Env, email: &str) -> Value {
    let r = post(
        s,
        "/v1/auth/signup",
        json!({"email": email, "password": PASSWORD, "name": "Ada"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let m = nth_mail(env, email, 1).await;
    let r = post(
        s,
        "/v1/auth/verify-email",
        json!({"token": m.token(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["password_kept"], true);
    login(s, email, PASSWORD).await
}

fn token(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

/// Audit actions recorded so far, oldest first, straight from the database.
async fn audit_actions(env: &Env) -> Vec<String> {
    use sqlx::Connection;
    const Q: &str = "SELECT action FROM audit_log ORDER BY seq";
    match &env.pg {
        Some(pg) => {
            let mut c = sqlx::PgConnection::connect(&pg.url).await.expect("pg");
            sqlx::query_scalar(Q)
                .fetch_all(&mut c)
                .await
                .expect("audit")
        }
        None => {
            let url = format!("sqlite://{}", data(env).join("driftstack.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
            sqlx::query_scalar(Q)
                .fetch_all(&mut c)
                .await
                .expect("audit")
        }
    }
}

/// A TOTP code for `secret` at the server's time plus `steps` steps.
fn code(secret: &str, offset_seconds: i64, steps: i64) -> String {
    let t = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("secret"))
        .with_account_name("x")
        .build()
        .expect("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    t.generate((now + offset_seconds + steps * 30) as u64)
        .to_string()
}

async fn signup_verify_login_refresh_logout(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let email = "ada@example.com";

    // Bad input: field-level 422s (a common password, a short one, a bad email).
    for (body, field) in [
        (
            json!({"email": email, "password": "password123"}),
            "password",
        ),
        (json!({"email": email, "password": "short"}), "password"),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
    ] {
        let r = post(&s, "/v1/auth/signup", body).await;
        let p = r.assert_problem(422, "validation_failed");
        assert!(p["errors"][field].is_string(), "{p}");
    }

    let r = post(
        &s,
        "/v1/auth/signup",
        json!({"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let verify = nth_mail(&env, email, 1).await;
    assert!(verify.subject.contains("Verify"), "{verify:?}");
    assert!(
        verify
            .text
            .contains("https://app.driftstack.test/verify-email?token="),
        "{}",
        verify.text
    );
    // Not verified yet: the right password gets a clear 403.
    post(
        &s,
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .assert_problem(403, "email_not_verified");
    // A wrong password is refused and leaves the link usable.
    post(
        &s,
        "/v1/auth/verify-email",
        json!({"token": verify.token(), "password": "not the password"}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let r = post(
        &s,
        "/v1/auth/verify-email",
        json!({"token": verify.token(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["password_kept"], true);
    // A verification link works once.
    post(
        &s,
        "/v1/auth/verify-email",
        json!({"token": verify.token(), "password": PASSWORD}),
    )
    .await
    .assert_problem(400, "invalid_token");

    let t = login(&s, email, PASSWORD).await;
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].as_i64().is_some_and(|s| s == 900));
    assert!(t["step_up_expires_at"].is_string(), "{t}");
    let access = token(&t, "access_token");
    let refresh1 = token(&t, "refresh_token");
    assert!(access.starts_with("dsat_") && refresh1.starts_with("dsrt_"));

    // The token works where API keys do; the user is the owner of a new trial account.
    let me = s.get(&access, "/v1/account/me").await;
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    // Billing is off in tests: accounts use the self_hosted tier.
    assert_eq!(me["tier"], "self_hosted");
    assert_eq!(me["user"]["email"], email);
    assert_eq!(me["user"]["role"], "owner");
    assert_eq!(me["user"]["mfa_enabled"], false);
    assert_eq!(me["actor"]["type"], "user");
    assert_eq!(me["memberships"].as_array().map(Vec::len), Some(1));
    let r = s.get(&access, "/v1/sessions").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Wrong password: 401, same as an unknown email.
    post(
        &s,
        "/v1/auth/login",
        json!({"email": email, "password": "not the password"}),
    )
    .await
    .assert_problem(401, "invalid_credentials");

    // Refresh rotates; a used refresh token signs the whole session out.
    let r = post(&s, "/v1/auth/refresh", json!({"refresh_token": refresh1})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access2 = token(&r.json(), "access_token");
    let refresh2 = token(&r.json(), "refresh_token");
    assert_eq!(s.get(&access, "/v1/account/me").await.status, 401);
    assert_eq!(s.get(&access2, "/v1/account/me").await.status, 200);
    post(&s, "/v1/auth/refresh", json!({"refresh_token": refresh1}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(s.get(&access2, "/v1/account/me").await.status, 401);
    post(&s, "/v1/auth/refresh", json!({"refresh_token": refresh2}))
        .await
        .assert_problem(401, "invalid_refresh_token");

    // Logout ends a session.
    let t = login(&s, email, PASSWORD).await;
    let access = token(&t, "access_token");
    let r = post_auth(&s, &access, "/v1/auth/logout", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(s.get(&access, "/v1/account/me").await.status, 401);
    post(
        &s,
        "/v1/auth/refresh",
        json!({"refresh_token": token(&t, "refresh_token")}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");

    // Idle sessions end after 30 minutes.
    let t = login(&s, email, PASSWORD).await;
    env.advance_clock(31 * 60);
    post(
        &s,
        "/v1/auth/refresh",
        json!({"refresh_token": token(&t, "refresh_token")}),
    )
    .await
    .assert_problem(401, "invalid_refresh_token");

    let actions = audit_actions(&env).await;
    for a in [
        "auth.signup",
        "auth.email_verified",
        "auth.login_succeeded",
        "auth.login_failed",
        "auth.refresh_reuse_detected",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // No secret of any kind in the audit log or the server log.
    let log = s.log();
    let verify_token = verify.token();
    for secret in [
        PASSWORD,
        access.as_str(),
        refresh1.as_str(),
        verify_token.as_str(),
    ] {
        assert!(!log.contains(secret), "the log holds a secret");
    }
}

async fn totp_mfa_with_replay_protection_recovery_codes_and_step_up(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let email = "grace@example.com";
    let mut offset = 0i64;
    let t = signed_up(&s, &env, email).await;
    let access = token(&t, "access_token");

    let e = post_auth(&s, &access, "/v1/account/2fa/totp", json!({})).await;
    assert_eq!(e.status, 200, "{}", e.text());
    let e = e.json();
    let secret = token(&e, "secret");
    assert!(e["otpauth_url"].as_str().is_some_and(|u| {
        u.starts_with("otpauth://totp/") && u.contains(&format!("secret={secret}"))
    }));
    assert!(
        e["qr_code"]
            .as_str()
            .is_some_and(|q| q.starts_with("data:image/svg+xml;base64,"))
    );
    // A wrong code does not activate; the right one does and gives 10 recovery codes.
    post_auth(
        &s,
        &access,
        "/v1/account/2fa/totp/verify",
        json!({"code": "000000"}),
    )
    .await
    .assert_problem(401, "invalid_code");
    // Codes of this step and the next, taken together (a step may end between two requests).
    let (first, next) = (code(&secret, offset, 0), code(&secret, offset, 1));
    let r = post_auth(
        &s,
        &access,
        "/v1/account/2fa/totp/verify",
        json!({"code": first}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let recovery: Vec<String> = r.json()["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(recovery.len(), 10);

    // Login now asks for the second factor.
    let challenge = |mfa_token: String, body: Value| {
        let mut body = body;
        body["mfa_token"] = json!(mfa_token);
        post(&s, "/v1/auth/mfa/challenge", body)
    };
    let m = login(&s, email, PASSWORD).await;
    assert_eq!(m["mfa_required"], true);
    assert!(m.get("access_token").is_none());
    // The code used for activation cannot be used again (replay); the next step's code works.
    challenge(token(&m, "mfa_token"), json!({"code": first}))
        .await
        .assert_problem(401, "invalid_code");
    let r = challenge(token(&m, "mfa_token"), json!({"code": next})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access = token(&r.json(), "access_token");
    // The MFA token worked once.
    challenge(token(&m, "mfa_token"), json!({"code": next}))
        .await
        .assert_problem(401, "invalid_mfa_token");
    // An earlier step's code is refused too (the app's previous code, still in the skew).
    env.advance_clock(1);
    offset += 1;
    let m = login(&s, email, PASSWORD).await;
    challenge(
        token(&m, "mfa_token"),
        json!({"code": code(&secret, offset, -1)}),
    )
    .await
    .assert_problem(401, "invalid_code");

    // More than 5 attempts a minute are refused.
    env.advance_clock(61);
    offset += 61;
    let m = login(&s, email, PASSWORD).await;
    for _ in 0..5 {
        challenge(token(&m, "mfa_token"), json!({"code": "123456"}))
            .await
            .assert_problem(401, "invalid_code");
    }
    challenge(
        token(&m, "mfa_token"),
        json!({"code": code(&secret, offset, 0)}),
    )
    .await
    .assert_problem(429, "too_many_attempts");

    // A recovery code works once.
    env.advance_clock(61);
    offset += 61;
    let m = login(&s, email, PASSWORD).await;
    let r = challenge(
        token(&m, "mfa_token"),
        json!({"recovery_code": recovery[0].to_uppercase()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = login(&s, email, PASSWORD).await;
    challenge(
        token(&m, "mfa_token"),
        json!({"recovery_code": recovery[0]}),
    )
    .await
    .assert_problem(401, "invalid_code");

    // Step-up: a fresh sign-in may create keys; after the window it may not, until step-up.
    let r = s
        .post(
            &access,
            "/v1/api-keys",
            json!({"name": "ci", "scopes": ["sessions:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    env.advance_clock(601);
    offset += 601;
    let r = s
        .post(
            &access,
            "/v1/api-keys",
            json!({"name": "ci2", "scopes": ["sessions:read"]}),
        )
        .await;
    r.assert_problem(403, "step_up_required");
    post_auth(&s, &access, "/v1/account/2fa/recovery-codes", json!({}))
        .await
        .assert_problem(403, "step_up_required");
    s.delete(&access, "/v1/account/2fa/totp")
        .await
        .assert_problem(403, "step_up_required");
    // With MFA on, a password does not step up; a code does, and the old token is replaced.
    post_auth(
        &s,
        &access,
        "/v1/auth/mfa/step-up",
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let r = post_auth(
        &s,
        &access,
        "/v1/auth/mfa/step-up",
        json!({"code": code(&secret, offset, 0)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["step_up_expires_at"].is_string());
    let fresh = token(&r.json(), "access_token");
    assert_eq!(s.get(&access, "/v1/account/me").await.status, 401);
    let r = s
        .post(
            &fresh,
            "/v1/api-keys",
            json!({"name": "ci2", "scopes": ["sessions:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Regenerating voids the old codes.
    let r = post_auth(&s, &fresh, "/v1/account/2fa/recovery-codes", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_codes = r.json()["recovery_codes"].clone();
    env.advance_clock(61);
    offset += 61;
    let m = login(&s, email, PASSWORD).await;
    challenge(
        token(&m, "mfa_token"),
        json!({"recovery_code": recovery[1]}),
    )
    .await
    .assert_problem(401, "invalid_code");
    let r = challenge(
        token(&m, "mfa_token"),
        json!({"recovery_code": new_codes[0]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = token(&r.json(), "access_token");
    // Disabling MFA (fresh sign-in counts as step-up).
    let r = s.delete(&fresh, "/v1/account/2fa/totp").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let t = login(&s, email, PASSWORD).await;
    assert!(t["access_token"].is_string(), "{t}");
    let _ = offset;

    let actions = audit_actions(&env).await;
    for a in [
        "auth.mfa_enabled",
        "auth.mfa_failed",
        "auth.step_up",
        "auth.recovery_codes_regenerated",
        "auth.mfa_disabled",
        "auth.login_succeeded_recovery_code",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

async fn magic_link_and_password_reset(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let email = "linus@example.com";
    let t1 = signed_up(&s, &env, email).await;
    let t2 = login(&s, email, PASSWORD).await;

    // Magic link: mailed, works once, signs in (no step-up: it proved the mailbox only). The
    // signup mail counts towards the 60 s cooldown per address.
    env.advance_clock(61);
    let r = post(&s, "/v1/auth/magic-link", json!({"email": email})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = nth_mail(&env, email, 2).await;
    assert!(
        m.text
            .contains("https://app.driftstack.test/magic-link?token=")
    );
    let r = post(
        &s,
        "/v1/auth/magic-link/verify",
        json!({"token": m.token()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let magic = r.json();
    assert!(magic["step_up_expires_at"].is_null(), "{magic}");
    let magic_access = token(&magic, "access_token");
    assert_eq!(s.get(&magic_access, "/v1/account/me").await.status, 200);
    s.post(
        &magic_access,
        "/v1/api-keys",
        json!({"name": "x", "scopes": ["sessions:read"]}),
    )
    .await
    .assert_problem(403, "step_up_required");
    // Without MFA, step-up takes the password.
    post_auth(
        &s,
        &magic_access,
        "/v1/auth/mfa/step-up",
        json!({"password": "wrong password here"}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    let r = post_auth(
        &s,
        &magic_access,
        "/v1/auth/mfa/step-up",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    post(
        &s,
        "/v1/auth/magic-link/verify",
        json!({"token": m.token()}),
    )
    .await
    .assert_problem(400, "invalid_token");
    // Links expire: a new one, 11 minutes later, is refused.
    env.advance_clock(61);
    post(&s, "/v1/auth/magic-link", json!({"email": email})).await;
    let m = nth_mail(&env, email, 3).await;
    env.advance_clock(11 * 60);
    post(
        &s,
        "/v1/auth/magic-link/verify",
        json!({"token": m.token()}),
    )
    .await
    .assert_problem(400, "invalid_token");

    // Password reset: every session is revoked, the user told, nobody signed in.
    env.advance_clock(16 * 60);
    let t3 = login(&s, email, PASSWORD).await;
    let r = post(&s, "/v1/auth/password-reset", json!({"email": email})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = nth_mail(&env, email, 4).await;
    assert!(
        m.text
            .contains("https://app.driftstack.test/password-reset?token=")
    );
    let new_password = "another long passphrase";
    post(
        &s,
        "/v1/auth/password-reset/confirm",
        json!({"token": m.token(), "password": "qwertyuiop"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let r = post(
        &s,
        "/v1/auth/password-reset/confirm",
        json!({"token": m.token(), "password": new_password}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("access_token").is_none());
    for t in [&t3, &magic] {
        assert_eq!(
            s.get(&token(t, "access_token"), "/v1/account/me")
                .await
                .status,
            401
        );
    }
    for t in [&t1, &t2, &t3] {
        post(
            &s,
            "/v1/auth/refresh",
            json!({"refresh_token": token(t, "refresh_token")}),
        )
        .await
        .assert_problem(401, "invalid_refresh_token");
    }
    let notice = nth_mail(&env, email, 5).await;
    assert!(
        notice.subject.contains("password was changed"),
        "{notice:?}"
    );
    post(
        &s,
        "/v1/auth/password-reset/confirm",
        json!({"token": m.token(), "password": "yet another passphrase"}),
    )
    .await
    .assert_problem(400, "invalid_token");
    post(
        &s,
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    login(&s, email, new_password).await;
    assert!(
        audit_actions(&env)
            .await
            .iter()
            .any(|a| a == "auth.password_reset")
    );
}

/// The body of a problem without the request-specific `instance`.
fn shape(r: &Reply) -> (u16, Value) {
    let mut v = r.json();
    if let Some(o) = v.as_object_mut() {
        o.remove("instance");
    }
    (r.status, v)
}

async fn enumeration_safe_answers_and_rate_limits(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let known = "known@example.com";
    env.cli(&[
        "accounts",
        "create",
        "--email",
        known,
        "--password",
        PASSWORD,
    ]);
    let unknown = "nobody@example.com";

    // Same status and body for a known and an unknown email.
    let a = post(
        &s,
        "/v1/auth/login",
        json!({"email": known, "password": "wrong password!"}),
    )
    .await;
    let b = post(
        &s,
        "/v1/auth/login",
        json!({"email": unknown, "password": "wrong password!"}),
    )
    .await;
    assert_eq!(shape(&a), shape(&b));
    for path in ["/v1/auth/magic-link", "/v1/auth/verify-email/resend"] {
        env.advance_clock(61);
        let a = post(&s, path, json!({"email": known})).await;
        let b = post(&s, path, json!({"email": unknown})).await;
        assert_eq!((a.status, a.json()), (b.status, b.json()), "{path}");
    }
    env.advance_clock(61);
    let a = post(
        &s,
        "/v1/auth/signup",
        json!({"email": known, "password": PASSWORD}),
    )
    .await;
    let b = post(
        &s,
        "/v1/auth/signup",
        json!({"email": "new@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!((a.status, a.json()), (b.status, b.json()));
    assert_eq!(a.status, 202);

    // Magic link and reset share one limiter: 60 s cooldown (429), then 3 per email per
    // 15 minutes (silently not sent beyond), counted the same for unknown emails.
    env.advance_clock(16 * 60);
    let before = mail::to(&data(&env), known).len();
    for email in [known, unknown] {
        let r = post(&s, "/v1/auth/password-reset", json!({"email": email})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = post(&s, "/v1/auth/magic-link", json!({"email": email})).await;
        let p = r.assert_problem(429, "resend_cooldown");
        assert!(
            p["retryAfterSeconds"]
                .as_u64()
                .is_some_and(|s| (1..=60).contains(&s)),
            "{p}"
        );
        assert!(r.header("retry-after").is_some());
    }
    for _ in 0..3 {
        env.advance_clock(61);
        for email in [known, unknown] {
            let r = post(&s, "/v1/auth/magic-link", json!({"email": email})).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = mail::to(&data(&env), known).len() - before;
    assert_eq!(sent, 3, "3 per email per 15 minutes");

    // 10 per IP per 15 minutes: the 11th address in the window gets nothing.
    env.advance_clock(16 * 60);
    for i in 0..9 {
        post(
            &s,
            "/v1/auth/magic-link",
            json!({"email": format!("u{i}@example.com")}),
        )
        .await;
    }
    let before = mail::to(&data(&env), known).len();
    post(&s, "/v1/auth/magic-link", json!({"email": known})).await;
    let second = "second@example.com";
    env.cli(&["accounts", "create", "--email", second]);
    let r = post(&s, "/v1/auth/magic-link", json!({"email": second})).await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mail::to(&data(&env), known).len(),
        before + 1,
        "the 10th is sent"
    );
    assert!(mail::to(&data(&env), second).is_empty(), "the 11th is not");

    // Failed logins slow the account down, never lock it.
    env.advance_clock(16 * 60);
    for _ in 0..4 {
        post(
            &s,
            "/v1/auth/login",
            json!({"email": known, "password": "wrong password!"}),
        )
        .await;
    }
    let started = std::time::Instant::now();
    let r = post(
        &s,
        "/v1/auth/login",
        json!({"email": known, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "the right password still works: {}",
        r.text()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the login was slowed"
    );
    assert!(
        audit_actions(&env)
            .await
            .iter()
            .any(|a| a == "auth.login_throttled")
    );
    drop(s);

    // The per-IP gate on unauthenticated auth routes.
    let mut env2 = Env::new(backend);
    env2.set("DRIFTSTACK_AUTH_IP_PER_MINUTE", "5");
    let s = env2.start();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = post(
            &s,
            "/v1/auth/login",
            json!({"email": unknown, "password": "whatever it is"}),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
}

async fn account_settings_and_user_only_routes(backend: Backend) {
    let mut env = env(backend);
    let sink = mail::SmtpSink::start().await;
    env.set(
        "DRIFTSTACK_SMTP_URL",
        &format!("smtp://mailer:secret@127.0.0.1:{}", sink.port),
    );
    let s = env.start();
    let key = s.key().to_owned();

    // Mail goes over SMTP when configured.
    let r = post(
        &s,
        "/v1/auth/signup",
        json!({"email": "smtp@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 202);
    let got = support::eventually(Duration::from_secs(10), async || {
        sink.received
            .lock()
            .map(|m| m.iter().any(|d| d.contains("Subject: Verify your email")))
            .unwrap_or(false)
    })
    .await;
    assert!(got, "the SMTP sink got the verification mail");
    assert!(mail::outbox(&data(&env)).is_empty());

    // Account settings, validated.
    let patch = |body: Value| {
        s.send(
            s.http
                .patch(s.url("/v1/account/me"))
                .bearer_auth(&key)
                .json(&body),
        )
    };
    let r = patch(
        json!({"timezone": "Mars/Olympus", "region": "moon", "slug": "No Caps",
                          "avatar_url": "http://insecure.example/a.png", "name": ""}),
    )
    .await;
    let p = r.assert_problem(422, "validation_failed");
    for f in ["timezone", "region", "slug", "avatar_url", "name"] {
        assert!(p["errors"][f].is_string(), "{f}: {p}");
    }
    let r = patch(
        json!({"timezone": "Europe/Berlin", "region": "eu-central", "slug": "acme",
                          "avatar_url": "https://cdn.example/a.png", "name": "Acme"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let me = r.json();
    assert_eq!(me["slug"], "acme");
    assert_eq!(me["timezone"], "Europe/Berlin");
    assert_eq!(me["region"], "eu-central");
    assert_eq!(me["name"], "Acme");
    env.cli(&["accounts", "create", "--email", "other@example.com"]);
    let other = env.cli(&["keys", "create", "--email", "other@example.com"]);
    s.send(
        s.http
            .patch(s.url("/v1/account/me"))
            .bearer_auth(&other)
            .json(&json!({"slug": "acme"})),
    )
    .await
    .assert_problem(409, "slug_taken");

    // Two-factor routes are for people, not API keys.
    post_auth(&s, &key, "/v1/account/2fa/totp", json!({}))
        .await
        .assert_problem(403, "user_only");
    post_auth(&s, &key, "/v1/auth/logout", json!({}))
        .await
        .assert_problem(403, "user_only");
    // API keys are not subject to step-up.
    let r = s
        .post(
            &key,
            "/v1/api-keys",
            json!({"name": "k", "scopes": ["sessions:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // The owner's first-start sign-in link works once.
    let link = s
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("Dashboard sign-in link (works once, for 24 hours): "))
        .expect("sign-in link printed");
    let token = link.split("token=").nth(1).expect("token");
    let r = post(&s, "/v1/auth/magic-link/verify", json!({"token": token})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access = token_of(&r.json());
    // Another account's id in X-Account-Id is refused.
    let me = s
        .send(
            s.http
                .get(s.url("/v1/account/me"))
                .bearer_auth(&access)
                .header("x-account-id", "acct_00000000000000000000000000000000"),
        )
        .await;
    me.assert_problem(403, "not_a_member");
    post(&s, "/v1/auth/magic-link/verify", json!({"token": token}))
        .await
        .assert_problem(400, "invalid_token");
}

fn token_of(v: &Value) -> String {
    token(v, "access_token")
}

/// Pre-account hijack: someone signs up with another person's address and a password of their
/// choosing. When the owner of the address proves it — by magic link, or by the verification
/// link without that password — the password set before the proof stops working.
async fn an_address_belongs_to_whoever_proves_it(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let attacker_password = "the attacker's own passphrase";

    // By magic link.
    let victim = "victim@example.com";
    let r = post(
        &s,
        "/v1/auth/signup",
        json!({"email": victim, "password": attacker_password}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    nth_mail(&env, victim, 1).await;
    env.advance_clock(61);
    post(&s, "/v1/auth/magic-link", json!({"email": victim}))
        .await
        .json();
    let link = nth_mail(&env, victim, 2).await;
    let r = post(
        &s,
        "/v1/auth/magic-link/verify",
        json!({"token": link.token()}),
    )
    .await;
    assert_eq!(r.status, 200, "the address owner signs in: {}", r.text());
    post(
        &s,
        "/v1/auth/login",
        json!({"email": victim, "password": attacker_password}),
    )
    .await
    .assert_problem(401, "invalid_credentials");

    // By the verification link, clicked without the password.
    let victim2 = "victim2@example.com";
    let r = post(
        &s,
        "/v1/auth/signup",
        json!({"email": victim2, "password": attacker_password}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let verify = nth_mail(&env, victim2, 1).await;
    let r = post(
        &s,
        "/v1/auth/verify-email",
        json!({"token": verify.token()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["password_kept"], false);
    post(
        &s,
        "/v1/auth/login",
        json!({"email": victim2, "password": attacker_password}),
    )
    .await
    .assert_problem(401, "invalid_credentials");

    // A password set after the proof (by reset link) works.
    env.advance_clock(61);
    post(&s, "/v1/auth/password-reset", json!({"email": victim2}))
        .await
        .json();
    let reset = nth_mail(&env, victim2, 2).await;
    let r = post(
        &s,
        "/v1/auth/password-reset/confirm",
        json!({"token": reset.token(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    login(&s, victim2, PASSWORD).await;
    let actions = audit_actions(&env).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "auth.unproven_password_removed")
            .count(),
        2,
        "{actions:?}"
    );
}

async fn step_up_by_password_is_throttled_and_mfa_enrolment_needs_it(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let email = "hopper@example.com";
    let t = signed_up(&s, &env, email).await;
    let access = token(&t, "access_token");

    // Enrolling MFA needs a fresh step-up (signing in with the password is one).
    env.advance_clock(11 * 60);
    post_auth(&s, &access, "/v1/account/2fa/totp", json!({}))
        .await
        .assert_problem(403, "step_up_required");

    // Wrong passwords at step-up count as failed sign-ins: after five, 429 with retry-after,
    // even for the right password, until the window passes.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = post_auth(
            &s,
            &access,
            "/v1/auth/mfa/step-up",
            json!({"password": "a wrong password"}),
        )
        .await;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            r.assert_problem(429, "too_many_attempts");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    post_auth(
        &s,
        &access,
        "/v1/auth/mfa/step-up",
        json!({"password": PASSWORD}),
    )
    .await
    .assert_problem(429, "too_many_attempts");
    // They also slow down and count for the password sign-in.
    let r = post(
        &s,
        "/v1/auth/login",
        json!({"email": email, "password": "a wrong password"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let actions = audit_actions(&env).await;
    assert!(
        actions.iter().any(|a| a == "auth.step_up_throttled"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "auth.login_throttled"),
        "{actions:?}"
    );

    // After the window, the right password steps up, and enrolment is allowed.
    env.advance_clock(16 * 60);
    let fresh = login(&s, email, PASSWORD).await;
    let fresh_access = token(&fresh, "access_token");
    env.advance_clock(11 * 60);
    let r = post_auth(
        &s,
        &fresh_access,
        "/v1/auth/mfa/step-up",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stepped = token(&r.json(), "access_token");
    let r = post_auth(&s, &stepped, "/v1/account/2fa/totp", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// At most five codes a minute are checked for a user, however many arrive at once.
async fn the_otp_limit_holds_under_concurrent_attempts(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let email = "lamport@example.com";
    let t = signed_up(&s, &env, email).await;
    let access = token(&t, "access_token");
    let r = post_auth(&s, &access, "/v1/account/2fa/totp", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let attempts = (0..40).map(|i| {
        let s = &s;
        let access = access.clone();
        async move {
            post_auth(
                s,
                &access,
                "/v1/account/2fa/totp/verify",
                json!({"code": format!("{:06}", 100000 + i)}),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|st| **st == 401).count();
    let limited = statuses.iter().filter(|st| **st == 429).count();
    assert_eq!(checked + limited, 40, "{statuses:?}");
    assert!(checked <= 5, "{checked} codes were checked: {statuses:?}");
}

/// Dashboard bug 11: the dashboard polls; a signed-in person's requests are not metered as API
/// calls (an API key's are, even a key the person made).
async fn the_dashboards_own_calls_are_not_billable_api_calls(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let t = signed_up(&s, &env, "meter@example.com").await;
    let dash = token(&t, "access_token");
    let calls = async |who: &str| {
        let r = s.get(who, "/v1/usage").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["meters"]["api_calls"]["used"]
            .as_f64()
            .expect("api_calls.used")
    };
    let before = calls(&dash).await;
    for _ in 0..5 {
        assert_eq!(s.get(&dash, "/v1/sessions").await.status, 200);
        assert_eq!(s.get(&dash, "/v1/account/me").await.status, 200);
    }
    assert_eq!(
        calls(&dash).await,
        before,
        "dashboard polling is not billed"
    );
    let r = post_auth(&s, &dash, "/v1/api-keys", json!({"name": "ci"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = token(&r.json(), "key");
    for _ in 0..3 {
        assert_eq!(s.get(&key, "/v1/sessions").await.status, 200);
    }
    // Three calls by the key, and its own read of the usage.
    assert_eq!(
        calls(&key).await,
        before + 4.0,
        "an API key's calls are counted"
    );
}
