//! The `serve` entry point: opens and migrates the database, checks this node's keys, assembles
//! the state (with the runner and dispatcher this node runs), starts the background tasks, serves
//! until shutdown, then drains: in-flight requests, sessions, tasks, counters, the database.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use common::Db;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    app::app,
    background, cluster_keys,
    config::Config,
    secrets, service,
    state::{AppState, Start},
    tiers::Tiers,
};

/// How long in-flight requests may run on after a shutdown signal before sessions are ended.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the database named by the configuration and applies pending migrations.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url.expose();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let db = Db::connect(url).await?;
    db.migrate().await?;
    Ok(db)
}

/// Builds the application state for a configuration: database, tiers, clock and stores. The
/// node's keys are checked against the database first (`cluster_keys`); `serving` is set for
/// `serve` and `runner`, which also check the cluster token.
pub async fn build_state(
    config: Config,
    public_url: String,
    serving: bool,
) -> anyhow::Result<AppState> {
    assemble(config, public_url, serving, Start::default()).await
}

async fn assemble(
    config: Config,
    public_url: String,
    serving: bool,
    start: Start,
) -> anyhow::Result<AppState> {
    let tiers = Tiers::load(config.tiers_file.as_deref())?;
    let db = open_database(&config).await?;
    let master_key = secrets::MasterKey::load(&config, db.backend())?;
    let now = common::Clock::system().now_ms();
    let keys = cluster_keys::verify_at_start(&db, &config, &master_key, serving, now).await?;
    AppState::new(config, db, tiers, keys, public_url, start).await
}

/// Runs the server until `shutdown` is cancelled, then finishes in-flight requests, stops the
/// background tasks and closes the database before returning.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.runner_only && (config.cluster_token.is_none() || !config.embedded_runner) {
        anyhow::bail!(
            "driftstack runner needs DRIFTSTACK_CLUSTER_TOKEN (shared with the API nodes) and \
             DRIFTSTACK_EMBEDDED_RUNNER left on"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("DRIFTSTACK_LISTEN: cannot listen on {}", config.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let node_url = config
        .node_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let start = Start {
        embedded_runner_at: config.embedded_runner.then_some(node_url),
        dispatcher: true,
        metrics: install_metrics(),
    };
    let state = assemble(config, public_url, true, start).await?;

    if let Some(created) = service::accounts::bootstrap_owner(&state).await? {
        println!(
            "Created the owner account {} ({}).",
            created.email, created.account_id
        );
        println!("API key (shown once, store it now): {}", created.key);
        println!(
            "Dashboard sign-in link (works once, for 24 hours): {}",
            created.sign_in_link
        );
    }

    let dispatcher = state
        .dispatcher
        .clone()
        .context("a serving node runs the webhook dispatcher")?;
    if let Some(runner) = &state.runner {
        let d = dispatcher.clone();
        runner.on_events(Box::new(move || d.wake()));
    }
    {
        let (accounts, mailer) = (state.accounts.clone(), state.mailer.clone());
        dispatcher.on_endpoint_disabled(Box::new(move |d| {
            let (accounts, mailer) = (accounts.clone(), mailer.clone());
            tokio::spawn(async move {
                background::notify_endpoint_disabled(&accounts, &mailer, d).await
            });
        }));
    }

    let tracker = TaskTracker::new();
    tracker.spawn(dispatcher.clone().run(shutdown.clone()));
    tracker.spawn(background::purge_idempotency_keys(
        state.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(cluster_keys::heartbeat(
        state.db.clone(),
        state.master_keys.clone(),
        state.config.clone(),
        state.clock.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(background::usage_loop(state.clone(), shutdown.clone()));
    tracker.spawn(background::expire_downloads(
        state.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(background::reap_dead_runners(
        state.clone(),
        shutdown.clone(),
    ));

    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let db = state.db.clone();
    let runner = state.runner.clone();
    // In-flight requests get a grace period to finish; after it, sessions are ended, which
    // cancels whatever commands are still running so that the drain completes.
    if let Some(runner) = runner.clone() {
        let token = shutdown.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            runner.shutdown().await;
        });
    }
    let usage = state.usage.clone();
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await
    .context("server error")?;

    tracing::info!("shutting down: ending sessions and stopping browsers");
    shutdown.cancel();
    if let Some(runner) = runner {
        runner.shutdown().await;
    }
    tracker.close();
    tracker.wait().await;
    // Nothing counted is lost on a graceful stop.
    if let Err(err) = usage.flush().await {
        tracing::error!(error = %err, "API call counts could not be written at shutdown");
    }
    db.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!(error = %err, "metrics recorder not installed");
            None
        }
    }
}
