//! End-to-end tests of usage meters, caps and rate limits against the real binary and real
//! Chromium: exact counts for a scripted workload that survive a graceful restart, the monthly
//! session cap (402) with the feature check and threshold events, and per-credential rate limits
//! with their headers — on SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Env, Server, eventually, pages};

on_both_backends!(
    meters_count_a_scripted_workload_and_survive_a_restart,
    caps_thresholds_and_rate_limits,
);

fn tiers(env: &mut Env, sessions: u64, per_second: u32, burst: u32) {
    let path = env.dir.path().join("tiers.json");
    std::fs::write(
        &path,
        json!({"self_hosted": {
            "display_name": "Self-hosted", "live_keys": true, "price_cents": null,
            "billing": "none", "max_concurrent_sessions": null, "max_session_seconds": 3600,
            "idle_timeout_seconds": 600, "monthly_sessions": sessions,
            "monthly_session_minutes": 1000, "rate_limit_per_second": per_second,
            "rate_limit_burst": burst, "max_profiles": null, "max_profile_state_bytes": 1048576
        }})
        .to_string(),
    )
    .expect("tiers");
    env.set("DRIFTSTACK_TIERS_FILE", &path.display().to_string());
}

/// The usage report, through the Rust SDK, as JSON.
async fn usage(s: &Server, key: &str) -> Value {
    let report = s.sdk(key).get_usage().await.expect("usage");
    serde_json::to_value(report).expect("json")
}

async fn meters_count_a_scripted_workload_and_survive_a_restart(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "3600");
    let s = env.start();
    let key = s.key().to_owned();
    // Unauthenticated requests are not API calls of anyone.
    let _ = s.send(s.http.get(s.url("/healthz"))).await;

    // The workload: 2 sessions, each navigated once, 8 authenticated calls in all.
    let mut calls = 0;
    for _ in 0..2 {
        let r = s.post(&key, "/v1/sessions", json!({})).await;
        calls += 1;
        assert_eq!(r.status, 201, "{}", r.text());
        let sid = r.json()["id"].as_str().expect("id").to_owned();
        let r = s
            .post(
                &key,
                &format!("/v1/sessions/{sid}/navigate"),
                json!({"url": site.url("/")}),
            )
            .await;
        calls += 1;
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        s.get(&key, &format!("/v1/sessions/{sid}")).await;
        calls += 1;
        s.delete(&key, &format!("/v1/sessions/{sid}")).await;
        calls += 1;
    }
    let u = usage(&s, &key).await;
    calls += 1;
    assert_eq!(u["tier"], "self_hosted");
    assert_eq!(u["meters"]["sessions"]["used"], 2.0, "{u}");
    assert_eq!(u["meters"]["sessions"]["limit"], Value::Null);
    assert_eq!(u["meters"]["api_calls"]["used"], f64::from(calls), "{u}");
    let minutes = u["meters"]["session_minutes"]["used"]
        .as_f64()
        .expect("minutes");
    assert!((0.033..1.0).contains(&minutes), "{minutes}");
    assert!(
        u["meters"]["data_transfer_bytes"]["used"]
            .as_f64()
            .is_some_and(|b| b > 1000.0),
        "{u}"
    );
    assert_eq!(u["concurrency"]["active"], 0);
    assert!(
        u["period_start"]
            .as_str()
            .is_some_and(|p| p.ends_with("-01T00:00:00.000Z"))
    );

    // A graceful restart loses nothing (the flush interval is an hour: only shutdown wrote).
    assert!(s.terminate().success());
    let s = env.start();
    let u = usage(&s, &key).await;
    assert_eq!(
        u["meters"]["api_calls"]["used"],
        f64::from(calls + 1),
        "{u}"
    );
    assert_eq!(u["meters"]["sessions"]["used"], 2.0);

    // Day by day: today holds both sessions, and the days add up to the month's meters.
    let d = s.get(&key, "/v1/usage/daily").await;
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    let days = d["days"].as_array().expect("days");
    assert_eq!(d["period_start"], u["period_start"]);
    assert!(
        days[0]["date"].as_str().is_some_and(|x| x.ends_with("-01")),
        "{d}"
    );
    let today = days.last().expect("today");
    assert_eq!(today["sessions"], 2, "{d}");
    let sum = |k: &str| days.iter().filter_map(|x| x[k].as_f64()).sum::<f64>();
    assert_eq!(sum("sessions"), 2.0);
    let meter = u["meters"]["session_minutes"]["used"]
        .as_f64()
        .expect("minutes");
    assert!(
        (sum("session_minutes") - meter).abs() < 0.02,
        "{d} vs {meter}"
    );
    // The abuse case: a key without `usage:read` reads no history.
    let r = s
        .post(
            &key,
            "/v1/api-keys",
            json!({"name": "s", "scopes": ["sessions:read"]}),
        )
        .await;
    let other = r.json()["key"].as_str().expect("key").to_owned();
    s.get(&other, "/v1/usage/daily")
        .await
        .assert_problem(403, "missing_permission");
}

async fn caps_thresholds_and_rate_limits(backend: Backend) {
    let site = pages::start().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1");
    tiers(&mut env, 2, 1000, 2000);
    let s = env.start();
    let key = s.key().to_owned();
    let r = s
        .post(
            &key,
            "/v1/webhooks/endpoints",
            json!({"url": site.url("/hook")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    for _ in 0..2 {
        let r = s.post(&key, "/v1/sessions", json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let sid = r.json()["id"].as_str().expect("id").to_owned();
        s.delete(&key, &format!("/v1/sessions/{sid}")).await;
    }
    let r = s.post(&key, "/v1/sessions", json!({})).await;
    let p = r.assert_problem(402, "usage_cap_exceeded");
    assert_eq!(p["meter"], "sessions");
    assert_eq!(p["limit"], 2.0);
    let u = usage(&s, &key).await;
    assert_eq!(u["meters"]["sessions"]["percent_used"], 100.0);
    let c = s
        .get(&key, "/v1/usage/features/sessions/check")
        .await
        .json();
    assert_eq!(c["isValid"], false, "{c}");
    assert_eq!(c["used"], 2.0);
    assert_eq!(c["limit"], 2.0);
    assert_eq!(c["percentUsed"], 100.0);
    assert!(c["failureReason"].is_string());
    let c = s
        .get(&key, "/v1/usage/features/live_keys/check")
        .await
        .json();
    assert_eq!(c["isValid"], true);
    s.get(&key, "/v1/usage/features/teleport/check")
        .await
        .assert_problem(404, "not_found");

    // 80 % and 100 % are each announced once.
    let announced = eventually(Duration::from_secs(15), async || {
        let d = s
            .get(&key, "/v1/webhooks/deliveries?limit=100")
            .await
            .json();
        d["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["event_type"] == "usage.threshold_reached")
            .count()
            == 2
    })
    .await;
    assert!(announced, "two usage.threshold_reached events");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let d = s
        .get(&key, "/v1/webhooks/deliveries?limit=100")
        .await
        .json();
    let n = d["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["event_type"] == "usage.threshold_reached")
        .count();
    assert_eq!(n, 2, "announced once each");
    drop(s);

    // Rate limits per credential, with headers on every answer.
    let mut env = Env::new(backend);
    tiers(&mut env, 100, 1, 3);
    let s = env.start();
    let key = s.key().to_owned();
    for remaining in [2, 1, 0] {
        let r = s.get(&key, "/v1/profiles").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    let r = s.get(&key, "/v1/profiles").await;
    let p = r.assert_problem(429, "rate_limited");
    assert!(p["retryAfterSeconds"].as_u64().is_some_and(|s| s >= 1));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // Another key has its own bucket; the first one refills.
    let other = env.cli(&["keys", "create", "--email", "owner@localhost"]);
    assert_eq!(s.get(&other, "/v1/profiles").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.get(&key, "/v1/profiles").await.status, 200);
}
