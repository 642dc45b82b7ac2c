//! The crash gate: the server is SIGKILLed in the middle of a webhook burst, of profile saves and
//! of usage accounting, then restarted on the same data, and the invariants hold: every event is
//! delivered, dead-lettered or pending (duplicates share their `webhook-id`); a profile holds its
//! last completed save, never a torn one; the dead process's sessions are failed with events;
//! usage loses at most the flush interval of API-call counts. SQLite and PostgreSQL.

mod support;

use std::{collections::HashSet, time::Duration};

use driftstack_sdk as sdk;
use support::{Backend, Env, eventually, hooks, pages};

on_both_backends!(sigkill_mid_burst_loses_nothing,);

async fn sigkill_mid_burst_loses_nothing(backend: Backend) {
    let site = pages::start().await;
    let (hook, seen) = hooks::receiver().await;
    let mut env = Env::new(backend);
    env.set("DRIFTSTACK_USAGE_FLUSH_SECONDS", "1");
    let s = env.start();
    let key = s.key().to_owned();
    let ds = s.sdk(&key);
    ds.create_endpoint(&sdk::CreateEndpointRequest {
        url: hook,
        description: None,
        event_types: None,
    })
    .await
    .expect("endpoint");
    let nav = |url: String| sdk::NavigateRequest {
        url,
        wait_until: None,
        timeout_ms: None,
    };
    let on_profile = |pid: &str, persist: bool| sdk::CreateSessionRequest {
        profile_id: Some(pid.to_owned()),
        persist: Some(persist),
        ..Default::default()
    };
    let used = async |ds: &sdk::Client| ds.get_usage().await.expect("usage").meters.api_calls.used;

    // A profile with a completed save.
    let pid = ds
        .create_profile(&sdk::CreateProfileRequest {
            name: "crash".into(),
            fingerprint: None,
        })
        .await
        .expect("profile")
        .id;
    let sid = ds
        .create_session(Some(&on_profile(&pid, true)))
        .await
        .expect("session")
        .id;
    ds.navigate(&sid, &nav(site.url("/set-cookie/first")))
        .await
        .expect("navigate");
    ds.release_session(&sid).await.expect("release");
    let saved = ds.get_profile(&pid).await.expect("profile");
    assert_eq!(
        saved.state.as_ref().map(|s| s.cookies),
        Some(1),
        "{saved:?}"
    );

    // Counted API calls, flushed (the interval is 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = used(&ds).await;

    // A second session on the profile changes its state and is live when the server dies;
    // meanwhile a burst of events is being delivered and its saves race the kill.
    let sid2 = ds
        .create_session(Some(&on_profile(&pid, true)))
        .await
        .expect("session")
        .id;
    ds.navigate(&sid2, &nav(site.url("/set-cookie/second")))
        .await
        .expect("navigate");
    let mut burst = 0;
    for i in 0..30 {
        ds.create_profile(&sdk::CreateProfileRequest {
            name: format!("burst {i}"),
            fingerprint: None,
        })
        .await
        .expect("burst profile");
        burst += 1;
    }
    let calls_after_flush = 3 + burst;
    let server_pid = s.pid();
    s.kill();
    // The dead server's browsers are gone with it or reaped at the next start.
    let s = env.start();
    let ds = s.sdk(&key);

    // Usage lost at most the API calls counted since the last flush before the kill (at most one
    // 1 s interval's worth): the first request after the restart sees the flushed counts plus
    // itself.
    let after = used(&ds).await;
    // `before` counted its own request, which may not have been flushed either.
    assert!(after >= before, "{before} → {after}");
    assert!(
        after <= before + calls_after_flush as f64 + 1.0,
        "{before} → {after}"
    );
    eprintln!(
        "usage: {} of the {} API calls made since the last sure flush were lost",
        before + calls_after_flush as f64 + 1.0 - after,
        calls_after_flush + 1
    );

    // Sessions of the dead process are failed, with events.
    let got = ds.get_session(&sid2).await.expect("session");
    assert_eq!(got.status, "failed", "{got:?}");
    assert_eq!(got.end_reason.as_deref(), Some("runner_lost"));
    // The profile holds a completed save (the first; the live session's state was never saved),
    // readable by a new session, and is free.
    let p = ds.get_profile(&pid).await.expect("profile");
    assert_eq!(p.state.as_ref().map(|s| s.cookies), Some(1), "{p:?}");
    assert_eq!(p.live_session_id, None);
    let sid3 = ds
        .create_session(Some(&on_profile(&pid, false)))
        .await
        .expect("session")
        .id;
    ds.navigate(&sid3, &nav(site.url("/headers")))
        .await
        .expect("navigate");
    ds.release_session(&sid3).await.expect("release");

    // Every event: delivered, dead-lettered or pending — and delivered ones arrive. The checks
    // below read the same listing in which everything was delivered (events may still be added
    // after it, e.g. the last session's end).
    let query = sdk::ListDeliveriesQuery {
        limit: Some(100),
        ..Default::default()
    };
    let mut listed = Vec::new();
    let settled = eventually(Duration::from_secs(60), async || {
        listed = ds
            .list_deliveries(&query)
            .await
            .map(|p| p.data)
            .unwrap_or_default();
        !listed.is_empty() && listed.iter().all(|d| d.status == "delivered")
    })
    .await;
    assert!(settled, "every delivery ends delivered: {listed:?}");
    let deliveries: Vec<String> = listed.iter().map(|d| d.event_id.clone()).collect();
    let profile_created = listed
        .iter()
        .filter(|d| d.event_type == "profile.created")
        .count();
    assert_eq!(profile_created, 1 + burst, "no profile.created event lost");
    let received: HashSet<String> = seen.ids().into_iter().collect();
    for id in &deliveries {
        assert!(
            received.contains(id),
            "{id} was recorded delivered but never arrived"
        );
    }
    // Repeats (a delivery in flight at the kill) share their webhook-id: every id that arrived
    // is one of the recorded events, read after the receiver's copy was taken.
    let now: HashSet<String> = ds
        .list_deliveries(&query)
        .await
        .expect("deliveries")
        .data
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    for id in &received {
        assert!(now.contains(id), "{id} arrived but is no recorded event");
    }

    assert!(support::browser_processes(server_pid).is_empty());
}
