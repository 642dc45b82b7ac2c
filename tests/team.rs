//! End-to-end tests of the team and the audit log against the real binary: invitations (mail,
//! re-send, revoke, expiry, foreign and used tokens), what each role may do, owner-only changes,
//! the last owner, removal cutting access at once (with and without the member's keys), and the
//! audit log — entries for each action, redaction, filters, cursor pages and the hash-chain check
//! catching an edited or removed row. SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Reply, Server, mail};

on_both_backends!(
    roles_invites_and_removal,
    audit_log_filters_pages_and_tamper_evidence,
);

const PASSWORD: &str = "a long and unusual passphrase";

fn env(backend: Backend) -> Env {
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_AUTH_IP_PER_MINUTE", "100000");
    env
}

async fn post(s: &Server, path: &str, body: Value) -> Reply {
    s.send(
        s.http
            .post(s.url(path))
            .header("user-agent", "team-tests/1.0")
            .json(&body),
    )
    .await
}

/// A request as `token` acting in `account`.
fn as_in(
    s: &Server,
    token: &str,
    account: &str,
    req: reqwest::RequestBuilder,
) -> reqwest::RequestBuilder {
    let _ = s;
    req.bearer_auth(token)
        .header("x-account-id", account)
        .header("user-agent", "team-tests/1.0")
}

async fn mails_to(env: &Env, email: &str, n: usize) -> Vec<mail::Message> {
    let dir = env.dir.path().join("data");
    let ok = support::eventually(Duration::from_secs(10), async || {
        mail::to(&dir, email).len() >= n
    })
    .await;
    assert!(ok, "{n} mails to {email}");
    mail::to(&dir, email)
}

/// The latest mail to `email` whose subject contains `subject`, once it has arrived.
async fn mail_with(env: &Env, email: &str, subject: &str) -> mail::Message {
    let dir = env.dir.path().join("data");
    let found = || {
        mail::to(&dir, email)
            .into_iter()
            .rev()
            .find(|m| m.subject.contains(subject))
    };
    let ok = support::eventually(Duration::from_secs(10), async || found().is_some()).await;
    assert!(ok, "a mail '{subject}' to {email}");
    found().expect("mail")
}

async fn login(s: &Server, email: &str) -> String {
    let r = post(
        s,
        "/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().expect("token").to_owned()
}

/// Signs up, verifies and signs in `email`; returns its access token.
async fn person(s: &Server, env: &Env, email: &str) -> String {
    let r = post(
        s,
        "/v1/auth/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let verify = mail_with(env, email, "Verify").await;
    let r = post(
        s,
        "/v1/auth/verify-email",
        json!({"token": verify.token(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    login(s, email).await
}

/// The first-start owner (who has no password) sets one through a reset link, signs in and
/// steps up: a dashboard token that may make owner-level changes.
async fn signed_in_owner(s: &Server, env: &Env) -> String {
    let email = "owner@localhost";
    let r = post(s, "/v1/auth/password-reset", json!({"email": email})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let reset = mail_with(env, email, "eset").await;
    let r = post(
        s,
        "/v1/auth/password-reset/confirm",
        json!({"token": reset.token(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let access = login(s, email).await;
    let r = s
        .send(
            s.http
                .post(s.url("/v1/auth/mfa/step-up"))
                .bearer_auth(&access)
                .json(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().expect("token").to_owned()
}

async fn invite(s: &Server, key: &str, email: &str, role: &str) -> Value {
    let r = s
        .post(
            key,
            "/v1/team/invites",
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// The token of the latest invitation mail to `email`.
async fn invite_token(env: &Env, email: &str, n: usize) -> String {
    let all = mails_to(env, email, n).await;
    all.iter()
        .rev()
        .find(|m| m.subject.contains("invited"))
        .expect("invite mail")
        .token()
}

async fn roles_invites_and_removal(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let owner_key = s.key().to_owned();
    let account = s.get(&owner_key, "/v1/account/me").await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Invite three people; each signs up on their own, then accepts.
    let mut tokens = std::collections::HashMap::new();
    for (email, role) in [
        ("viewer@example.com", "viewer"),
        ("dev@example.com", "developer"),
        ("admin@example.com", "admin"),
    ] {
        let inv = invite(&s, &owner_key, email, role).await;
        assert_eq!(inv["status"], "pending");
        assert_eq!(inv["role"], role);
        let access = person(&s, &env, email).await;
        let token = invite_token(&env, email, 2).await;
        let r = s
            .send(
                s.http
                    .post(s.url("/v1/team/invites/accept"))
                    .bearer_auth(&access)
                    .json(&json!({"token": token})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["account_id"], account.as_str());
        tokens.insert(role, access);
    }
    let members = s.get(&owner_key, "/v1/team/members").await.json();
    assert_eq!(
        members["data"].as_array().map(Vec::len),
        Some(4),
        "{members}"
    );
    let user_of = |email: &str| -> String {
        members["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["email"] == email)
            .and_then(|m| m["user_id"].as_str())
            .expect("member")
            .to_owned()
    };
    let owner_user = user_of("owner@localhost");

    // A viewer reads but does not write; the 403 names the permission.
    let viewer = &tokens["viewer"];
    for path in [
        "/v1/sessions",
        "/v1/api-keys",
        "/v1/profiles",
        "/v1/webhooks/endpoints",
        "/v1/team/members",
    ] {
        let r = s
            .send(as_in(&s, viewer, &account, s.http.get(s.url(path))))
            .await;
        assert_eq!(r.status, 200, "viewer GET {path}: {}", r.text());
    }
    for (path, body, permission) in [
        ("/v1/sessions", json!({}), "sessions:write"),
        ("/v1/api-keys", json!({"name": "x"}), "keys:write"),
        ("/v1/profiles", json!({"name": "x"}), "profiles:write"),
        (
            "/v1/webhooks/endpoints",
            json!({"url": "https://example.com/h"}),
            "webhooks:write",
        ),
        (
            "/v1/team/invites",
            json!({"email": "x@example.com", "role": "viewer"}),
            "team:write",
        ),
    ] {
        let r = s
            .send(as_in(&s, viewer, &account, s.http.post(s.url(path))).json(&body))
            .await;
        let p = r.assert_problem(403, "missing_permission");
        assert_eq!(p["permission"], permission, "{path}");
    }
    s.send(as_in(
        &s,
        viewer,
        &account,
        s.http.get(s.url("/v1/audit-log")),
    ))
    .await
    .assert_problem(403, "missing_permission");

    // A developer runs sessions and makes keys, but does not manage the team.
    let dev = &tokens["developer"];
    let r = s
        .send(as_in(&s, dev, &account, s.http.post(s.url("/v1/sessions"))).json(&json!({})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    let r = s
        .send(as_in(
            &s,
            dev,
            &account,
            s.http.delete(s.url(&format!("/v1/sessions/{sid}"))),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .send(
            as_in(&s, dev, &account, s.http.post(s.url("/v1/api-keys")))
                .json(&json!({"name": "dev key", "scopes": ["sessions:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let dev_key = r.json()["key"].as_str().expect("key").to_owned();
    s.send(
        as_in(&s, dev, &account, s.http.post(s.url("/v1/team/invites")))
            .json(&json!({"email": "y@example.com", "role": "viewer"})),
    )
    .await
    .assert_problem(403, "missing_permission");

    // An admin manages the team, but not owners.
    let admin = &tokens["admin"];
    let viewer_user = user_of("viewer@example.com");
    let r = s
        .send(
            as_in(
                &s,
                admin,
                &account,
                s.http
                    .patch(s.url(&format!("/v1/team/members/{viewer_user}"))),
            )
            .json(&json!({"role": "developer"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "developer");
    s.send(as_in(
        &s,
        admin,
        &account,
        s.http
            .delete(s.url(&format!("/v1/team/members/{owner_user}"))),
    ))
    .await
    .assert_problem(403, "owner_required");
    s.send(
        as_in(
            &s,
            admin,
            &account,
            s.http
                .patch(s.url(&format!("/v1/team/members/{viewer_user}"))),
        )
        .json(&json!({"role": "owner"})),
    )
    .await
    .assert_problem(403, "owner_required");
    s.send(
        as_in(&s, admin, &account, s.http.post(s.url("/v1/team/invites")))
            .json(&json!({"email": "boss@example.com", "role": "owner"})),
    )
    .await
    .assert_problem(403, "owner_required");
    let r = s
        .send(
            as_in(&s, admin, &account, s.http.post(s.url("/v1/api-keys")))
                .json(&json!({"name": "admin key", "scopes": ["sessions:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let admin_key = r.json()["key"].as_str().expect("key").to_owned();

    // API keys never act as owners, whatever their scopes: an admin's own `team:write` key
    // cannot make the admin an owner, and even the owner's full key cannot change an owner.
    let r = s
        .send(
            as_in(&s, admin, &account, s.http.post(s.url("/v1/api-keys")))
                .json(&json!({"name": "admin team key", "scopes": ["team:read", "team:write"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let admin_team_key = r.json()["key"].as_str().expect("key").to_owned();
    let admin_user = user_of("admin@example.com");
    for key in [&admin_team_key, &owner_key] {
        s.send(
            s.http
                .patch(s.url(&format!("/v1/team/members/{admin_user}")))
                .bearer_auth(key)
                .json(&json!({"role": "owner"})),
        )
        .await
        .assert_problem(403, "owner_required");
        s.send(
            s.http
                .patch(s.url(&format!("/v1/team/members/{owner_user}")))
                .bearer_auth(key)
                .json(&json!({"role": "admin"})),
        )
        .await
        .assert_problem(403, "owner_required");
        s.delete(key, &format!("/v1/team/members/{owner_user}"))
            .await
            .assert_problem(403, "owner_required");
        s.post(
            key,
            "/v1/team/invites",
            json!({"email": "boss@example.com", "role": "owner"}),
        )
        .await
        .assert_problem(403, "owner_required");
    }

    // The last owner stays, even for a signed-in owner after step-up.
    let owner = signed_in_owner(&s, &env).await;
    s.send(
        as_in(
            &s,
            &owner,
            &account,
            s.http
                .patch(s.url(&format!("/v1/team/members/{owner_user}"))),
        )
        .json(&json!({"role": "admin"})),
    )
    .await
    .assert_problem(409, "last_owner");
    s.send(as_in(
        &s,
        &owner,
        &account,
        s.http
            .delete(s.url(&format!("/v1/team/members/{owner_user}"))),
    ))
    .await
    .assert_problem(409, "last_owner");

    // Removal cuts access to the account at once; the member's keys stay unless asked.
    let dev_user = user_of("dev@example.com");
    let r = s
        .delete(&owner_key, &format!("/v1/team/members/{dev_user}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["api_keys_kept"].as_array().map(Vec::len), Some(1));
    s.send(as_in(&s, dev, &account, s.http.get(s.url("/v1/sessions"))))
        .await
        .assert_problem(403, "not_a_member");
    let own = s.get(dev, "/v1/account/me").await;
    assert_eq!(own.status, 200, "their own account still works");
    assert_ne!(own.json()["id"], account.as_str());
    assert_eq!(
        s.get(&dev_key, "/v1/sessions").await.status,
        200,
        "kept key works"
    );
    let r = s
        .delete(
            &owner_key,
            &format!("/v1/team/members/{admin_user}?revoke_keys=true"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["api_keys_revoked"], 2);
    assert_eq!(s.get(&admin_key, "/v1/sessions").await.status, 401);
    assert_eq!(s.get(&admin_team_key, "/v1/team/members").await.status, 401);

    // Invitations: an existing member (409), a re-send replaces the link, revoke, expiry,
    // someone else's invitation (404), a used one (410).
    s.post(
        &owner_key,
        "/v1/team/invites",
        json!({"email": "viewer@example.com", "role": "admin"}),
    )
    .await
    .assert_problem(409, "already_member");
    let newbie = "newbie@example.com";
    let first = invite(&s, &owner_key, newbie, "viewer").await;
    let old_token = invite_token(&env, newbie, 1).await;
    let again = invite(&s, &owner_key, newbie, "developer").await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["resent"], true);
    let new_token = invite_token(&env, newbie, 2).await;
    assert_ne!(old_token, new_token);
    let newbie_access = person(&s, &env, newbie).await;
    let accept = |token: String, access: String| {
        let req = s
            .http
            .post(s.url("/v1/team/invites/accept"))
            .bearer_auth(access)
            .json(&json!({"token": token}));
        s.send(req)
    };
    accept(old_token, newbie_access.clone())
        .await
        .assert_problem(404, "not_found");
    // Someone else cannot use it.
    accept(new_token.clone(), tokens["viewer"].clone())
        .await
        .assert_problem(404, "not_found");
    let id = first["id"].as_str().expect("id").to_owned();
    assert_eq!(
        s.delete(&owner_key, &format!("/v1/team/invites/{id}"))
            .await
            .status,
        204
    );
    accept(new_token, newbie_access.clone())
        .await
        .assert_problem(410, "invite_revoked");
    invite(&s, &owner_key, newbie, "viewer").await;
    let token = invite_token(&env, newbie, 4).await;
    env.advance_clock(7 * 24 * 3600 + 60);
    let newbie_access = login(&s, newbie).await;
    accept(token, newbie_access.clone())
        .await
        .assert_problem(410, "invite_expired");
    let list = s.get(&owner_key, "/v1/team/invites?limit=100").await.json();
    let statuses: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"revoked")
            && statuses.contains(&"expired")
            && statuses.contains(&"accepted"),
        "{statuses:?}"
    );
}

async fn audit_actions_of(s: &Server, key: &str, query: &str) -> Vec<Value> {
    let r = s.get(key, &format!("/v1/audit-log{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"].as_array().cloned().unwrap_or_default()
}

async fn audit_log_filters_pages_and_tamper_evidence(backend: Backend) {
    let env = env(backend);
    let s = env.start();
    let key = s.key().to_owned();
    let send = |req: reqwest::RequestBuilder| {
        s.send(req.bearer_auth(&key).header("user-agent", "team-tests/1.0"))
    };

    // A little of everything.
    let r = send(
        s.http
            .post(s.url("/v1/api-keys"))
            .json(&json!({"name": "ci", "scopes": ["sessions:read"]})),
    )
    .await;
    assert_eq!(r.status, 201);
    let ci_key = r.json()["key"].as_str().expect("key").to_owned();
    let ci_id = r.json()["id"].as_str().expect("id").to_owned();
    send(s.http.delete(s.url(&format!("/v1/api-keys/{ci_id}")))).await;
    let r = send(
        s.http
            .post(s.url("/v1/profiles"))
            .json(&json!({"name": "p"})),
    )
    .await;
    let pid = r.json()["id"].as_str().expect("id").to_owned();
    send(
        s.http
            .post(s.url(&format!("/v1/profiles/{pid}/snapshots")))
            .json(&json!({})),
    )
    .await;
    let r = send(
        s.http
            .post(s.url("/v1/webhooks/endpoints"))
            .json(&json!({"url": "https://hooks.example.com/in?token=supersecretvalue"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let whsec = r.json()["secret"].as_str().expect("secret").to_owned();
    send(
        s.http
            .post(s.url("/v1/team/invites"))
            .json(&json!({"email": "a@example.com", "role": "viewer"})),
    )
    .await;
    let r = send(s.http.post(s.url("/v1/sessions")).json(&json!({}))).await;
    let sid = r.json()["id"].as_str().expect("id").to_owned();
    send(s.http.delete(s.url(&format!("/v1/sessions/{sid}")))).await;
    post(
        &s,
        "/v1/auth/login",
        json!({"email": "owner@localhost", "password": "not the password"}),
    )
    .await;

    let all = audit_actions_of(&s, &key, "?limit=100").await;
    let actions: Vec<&str> = all.iter().filter_map(|e| e["action"].as_str()).collect();
    for a in [
        "api_key.created",
        "api_key.revoked",
        "profile.created",
        "profile.snapshot.created",
        "webhook.endpoint.created",
        "team.invite.created",
        "session.created",
        "session.released",
        "auth.login_failed",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    // Newest first, with who, from where, and which request.
    assert_eq!(actions[0], "auth.login_failed");
    let created = all
        .iter()
        .find(|e| e["action"] == "api_key.created")
        .expect("entry");
    assert_eq!(created["actor"]["type"], "api_key");
    assert_eq!(created["target"], ci_id.as_str());
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(created["user_agent"], "team-tests/1.0");
    assert!(
        created["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req_"))
    );
    assert_eq!(created["hash"].as_str().map(str::len), Some(64));
    // Redacted: no key, secret, token or password anywhere.
    let text = serde_json::to_string(&all).expect("json");
    for secret in [
        ci_key.as_str(),
        whsec.as_str(),
        "supersecretvalue",
        "not the password",
        key.as_str(),
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
    assert!(text.contains("https://hooks.example.com/in"));

    // Filters.
    let only = audit_actions_of(&s, &key, "?action=api_key.created").await;
    assert!(!only.is_empty() && only.iter().all(|e| e["action"] == "api_key.created"));
    let prefix = audit_actions_of(&s, &key, "?action=profile.").await;
    assert_eq!(prefix.len(), 2, "{prefix:?}");
    let by_target = audit_actions_of(&s, &key, &format!("?target={ci_id}")).await;
    assert_eq!(by_target.len(), 2);
    let key_id = created["actor"]["id"].as_str().expect("actor").to_owned();
    let by_actor = audit_actions_of(&s, &key, &format!("?actor={key_id}")).await;
    assert!(by_actor.len() >= 8 && by_actor.iter().all(|e| e["actor"]["id"] == key_id.as_str()));
    let future = audit_actions_of(&s, &key, "?since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let past = audit_actions_of(&s, &key, "?until=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());
    s.get(&key, "/v1/audit-log?since=yesterday")
        .await
        .assert_problem(422, "validation_failed");

    // Cursor pages cover everything once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=3&starting_after={c}"),
            None => "?limit=3".into(),
        };
        let page = s.get(&key, &format!("/v1/audit-log{q}")).await.json();
        let data = page["data"].as_array().cloned().unwrap_or_default();
        seen.extend(
            data.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned)),
        );
        if page["has_more"] != true {
            break;
        }
        cursor = data
            .last()
            .and_then(|e| e["id"].as_str())
            .map(str::to_owned);
    }
    let ids: Vec<String> = all
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(seen, ids);

    // The chain verifies; an edited row, and a removed one, are caught.
    let out = env.command(&["audit", "verify"]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    let edited = created["id"].as_str().expect("id").to_owned();
    exec(
        &env,
        &format!("UPDATE audit_log SET data = '{{\"name\":\"forged\"}}' WHERE id = '{edited}'"),
    )
    .await;
    let out = env.command(&["audit", "verify"]).output().expect("run");
    assert!(!out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&edited) && printed.contains("edited"),
        "{printed}"
    );
    exec(
        &env,
        &format!(
            "UPDATE audit_log SET data = '{}' WHERE id = '{edited}'",
            created["data"]
        ),
    )
    .await;
    let removed = all
        .iter()
        .find(|e| e["action"] == "profile.created")
        .and_then(|e| e["id"].as_str())
        .expect("id")
        .to_owned();
    exec(
        &env,
        &format!("DELETE FROM audit_log WHERE id = '{removed}'"),
    )
    .await;
    let out = env.command(&["audit", "verify"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed or inserted"));
}

async fn exec(env: &Env, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match &env.pg {
        Some(pg) => {
            let mut c = sqlx::PgConnection::connect(&pg.url).await.expect("pg");
            sqlx::raw_sql(sql).execute(&mut c).await.expect("sql");
        }
        None => {
            let url = format!(
                "sqlite://{}",
                env.dir.path().join("data/driftstack.db").display()
            );
            let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
            sqlx::raw_sql(sql).execute(&mut c).await.expect("sql");
        }
    }
}
