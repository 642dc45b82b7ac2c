//! What a node runs besides its API, started once while the state is assembled: the embedded
//! runner (its id kept in the data dir across restarts).

use std::sync::Arc;

use anyhow::Context;
use profiles::Profiles;
use runner::{registry::RunnerRegistry, store::SessionStore};

use crate::config::Config;

/// What the runner shares with the rest of the node.
pub struct Parts<'a> {
    pub sessions: &'a SessionStore,
    pub profiles: &'a Profiles,
    pub registry: &'a RunnerRegistry,
    pub files: &'a runner::files::Files,
    pub logs: &'a runner::logs::LogStore,
    pub recordings: &'a runner::recording::Recordings,
    pub clock: &'a common::Clock,
}

/// Starts the in-process runner. Its id is kept in the data dir so that a restart recognises the
/// sessions the previous run left behind.
pub async fn start_embedded_runner(
    config: &Config,
    node_url: String,
    parts: Parts<'_>,
) -> anyhow::Result<Arc<runner::Runner>> {
    let Parts {
        sessions,
        profiles,
        registry,
        files,
        logs,
        recordings,
        clock,
    } = parts;
    let id_file = config.data_dir.join("runner-id");
    let id = match std::fs::read_to_string(&id_file)
        .ok()
        .and_then(|s| s.trim().parse::<common::ids::RunnerId>().ok())
    {
        Some(id) => id,
        None => {
            let id = common::ids::RunnerId::generate();
            std::fs::create_dir_all(&config.data_dir)?;
            std::fs::write(&id_file, id.as_str())
                .with_context(|| format!("cannot write {}", id_file.display()))?;
            id
        }
    };
    let temp_root = std::env::temp_dir().join(format!("driftstack-{}", std::process::id()));
    let runner_config = runner::RunnerConfig {
        id,
        chromium: config.chromium.clone(),
        temp_root,
        pool_size: config.pool_size,
        max_sessions: config.max_sessions,
        queue_timeout: config.queue_timeout,
        max_reuses: config.max_browser_reuses,
        egress_allow: config.egress_allow.clone(),
        heartbeat_interval: config.runner_heartbeat,
        address: Some(node_url),
        sandbox: config.browser_sandbox,
    };
    match profiles.sweep().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "unreferenced profile blobs removed"),
        Err(e) => tracing::warn!(error = %e, "could not sweep unreferenced profile blobs"),
    }
    let stores = runner::Stores {
        sessions: sessions.clone(),
        profiles: profiles.clone(),
        registry: registry.clone(),
        files: files.clone(),
        logs: logs.clone(),
        recordings: recordings.clone(),
    };
    runner::Runner::start(runner_config, stores, clock.clone()).await
}
