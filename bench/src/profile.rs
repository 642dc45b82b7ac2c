//! `--profiles N`: loading and saving a 200-cookie, 50-origin profile, in the store alone and
//! through real sessions.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{
    report::machine,
    server::{Client, Server},
    stats::stats,
};

/// A profile state of `cookies` cookies over 20 domains and `origins` origins with 20
/// localStorage items each, random enough not to compress away.
fn synthetic_state(cookies: usize, origins: usize) -> profiles::ProfileState {
    let random = |n: usize| -> String {
        let mut s = String::new();
        while s.len() < n {
            s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        s.truncate(n);
        s
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let cookies = (0..cookies)
        .map(|i| profiles::Cookie {
            name: format!("c{i}"),
            value: random(32),
            domain: format!(".site{}.example", i % 20),
            path: "/".into(),
            expires: (i % 5 != 0).then_some(now + 30.0 * 86400.0),
            http_only: i % 2 == 0,
            secure: true,
            same_site: Some("Lax".into()),
            partition_key: None,
        })
        .collect();
    let origins = (0..origins)
        .map(|j| {
            let items = (0..20).map(|k| (format!("key{k}"), random(64))).collect();
            (
                format!("https://o{j}.example"),
                profiles::OriginStorage {
                    local_storage: items,
                },
            )
        })
        .collect();
    profiles::ProfileState {
        version: profiles::ProfileState::VERSION,
        cookies,
        origins,
        indexed_db: None,
    }
}

/// Loading and saving a 200-cookie, 50-origin profile: in the store (encode, write, read back,
/// verify; read and decode) and through real sessions (create with the profile vs. without;
/// release with `persist` vs. without).
pub(crate) async fn profiles_bench(binary: &Path, rounds: usize) -> anyhow::Result<String> {
    let chromium = Path::new("/usr/lib/chromium/chromium-headless-shell");
    let server = Server::start(binary, chromium, 2)?;
    let client = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.key.clone(),
    };
    let profile: Value = client
        .post("/v1/profiles", json!({"name": "bench"}))
        .await?
        .json()
        .await?;
    let pid: common::ids::ProfileId = profile["id"].as_str().context("id")?.parse()?;
    let me: Value = client
        .http
        .get(format!("{}/v1/account/me", client.base))
        .bearer_auth(&client.key)
        .send()
        .await?
        .json()
        .await?;
    let account: common::ids::AccountId = me["id"].as_str().context("account id")?.parse()?;

    // The server's own profile service, opened on its data dir (same database, same key).
    let data_dir = server.dir.join("data");
    let config = api::config::Config::from_lookup(|k| {
        (k == "DRIFTSTACK_DATA_DIR").then(|| data_dir.display().to_string())
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let state = api::build_state(config, "http://127.0.0.1".into(), false).await?;
    let service = &state.profiles;
    let limit = 50 << 20;

    let mut synthetic = synthetic_state(200, 50);
    let json_bytes = serde_json::to_vec(&synthetic)?.len();
    let (mut saves, mut loads) = (Vec::new(), Vec::new());
    let mut blob_bytes = 0;
    for round in 0..rounds {
        // A different state each round, so every save writes a new blob.
        synthetic.cookies[0].value = format!("round{round}");
        let t = Instant::now();
        let summary = service.save(&account, &pid, &synthetic, limit).await?;
        saves.push(t.elapsed().as_secs_f64() * 1000.0);
        blob_bytes = summary.bytes;
        let t = Instant::now();
        let record = service.get(&account, &pid).await?;
        let loaded = service.read_state(&record).await?;
        loads.push(t.elapsed().as_secs_f64() * 1000.0);
        if loaded.cookies.len() != 200 || loaded.origins.len() != 50 {
            bail!("the state did not read back whole");
        }
    }
    let (save, load) = (stats(saves), stats(loads));

    // Through real sessions: the browser part (cookies in, storage script; cookies and
    // storage out) on top of the store.
    let timed = |with: bool| {
        let client = &client;
        let pid = pid.to_string();
        async move {
            let (mut creates, mut releases) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let body = if with {
                    json!({"profile_id": pid, "persist": true})
                } else {
                    json!({})
                };
                let t = Instant::now();
                let v: Value = client.post("/v1/sessions", body).await?.json().await?;
                creates.push(t.elapsed().as_secs_f64() * 1000.0);
                let id = v["id"].as_str().context("id")?.to_owned();
                let t = Instant::now();
                client.delete(&id).await?;
                releases.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            anyhow::Ok((stats(creates), stats(releases)))
        }
    };
    let (plain_create, plain_release) = timed(false).await?;
    let (prof_create, prof_release) = timed(true).await?;
    let after: Value = client
        .http
        .get(format!("{}/v1/profiles/{pid}", client.base))
        .bearer_auth(&client.key)
        .send()
        .await?
        .json()
        .await?;
    if after["state"]["cookies"] != 200 || after["state"]["origins"] != 50 {
        bail!("a session round trip lost state: {}", after["state"]);
    }
    server.stop()?;

    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {} with the release binary, SQLite, chromium-headless-shell; a profile of \
         200 cookies (20 domains) and 50 origins × 20 localStorage items; {rounds} rounds.\n\n",
        crate::report::now(),
        machine()
    ));
    md.push_str("| metric | target | p50 | p95 |\n|---|---|---|---|\n");
    md.push_str(&format!(
        "| save: encode → write → read back → verify → point the profile at it | ≤ 50 ms | {:.1} ms | {:.1} ms |\n",
        save.p50, save.p95
    ));
    md.push_str(&format!(
        "| load: read → decrypt → decompress → decode | ≤ 50 ms | {:.1} ms | {:.1} ms |\n",
        load.p50, load.p95
    ));
    md.push_str(&format!(
        "| session create without / with the profile (client-side) | | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
        plain_create.p50, prof_create.p50, plain_create.p95, prof_create.p95
    ));
    md.push_str(&format!(
        "| session release without / with `persist` (client-side; includes the save) | | {:.1} / {:.1} ms | {:.1} / {:.1} ms |\n",
        plain_release.p50, prof_release.p50, plain_release.p95, prof_release.p95
    ));
    md.push_str(&format!(
        "\nState size: {json_bytes} bytes of JSON → {blob_bytes} bytes stored (zstd level 3 + \
         AES-256-GCM), {:.0}% of the original. After {rounds} session round trips the profile \
         still held 200 cookies and 50 origins.\n",
        blob_bytes as f64 * 100.0 / json_bytes as f64
    ));
    Ok(md)
}
