//! Driftstack's HTTP API: the axum router, authentication and permissions, problem+json errors,
//! the OpenAPI contract, accounts and API keys, and the `serve` entry point that wires the
//! database, the background tasks and graceful shutdown together.
//!
//! Domain crates (`runner`, `profiles`, `webhooks`) never see HTTP types; this crate converts.

pub mod admin;
pub mod apikey;
pub mod audit;
pub mod auth;
pub mod cluster_keys;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod forward;
pub mod identity;
pub mod mail;
pub mod middleware;
pub mod openapi;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod store;
pub mod tiers;
pub mod usage;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{Router, extract::DefaultBodyLimit, http::StatusCode, middleware::from_fn};
use common::Db;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_scalar::{Scalar, Servable};

use crate::{config::Config, error::problem_for_status, state::AppState, tiers::Tiers};

/// The routes with their OpenAPI description, before state and layers are applied.
pub fn router_parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::system::router())
        .merge(routes::auth::router())
        .merge(routes::account::router())
        .merge(routes::keys::router())
        .merge(routes::sessions::router())
        .merge(routes::profiles::router())
        .merge(routes::cdp::router())
        .merge(routes::live::router())
        .merge(routes::webhooks::router())
        .merge(routes::team::router())
        .merge(routes::audit::router())
        .merge(routes::usage::router())
        .merge(routes::billing::router())
        .split_for_parts();
    let mut api = api;
    openapi::add_common_problems(&mut api);
    (routes, api)
}

/// The OpenAPI document as pretty JSON, exactly as committed in `openapi.json`.
pub fn openapi_json() -> String {
    let (_, api) = router_parts();
    let mut json = api.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

/// The complete application: routes, `/openapi.json`, `/docs/`, and every layer.
pub fn app(state: AppState) -> Router {
    let (routes, api) = router_parts();
    let spec = openapi_json();
    let timeout = state.config.request_timeout;
    let body_limit = state.config.max_body_bytes;
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    spec,
                )
            }),
        )
        .merge(Scalar::with_url("/docs/", api))
        .merge(dashboard::router())
        .route(
            "/docs",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/docs/") }),
        )
        .fallback(|| async { problem_for_status(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async {
            problem_for_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward_misdirected,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limits,
        ))
        // Links carry tokens in their query: never leak them through `Referer`.
        .layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.headers_mut().insert(
                    axum::http::header::REFERRER_POLICY,
                    axum::http::HeaderValue::from_static("no-referrer"),
                );
                r
            },
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::runner_only_gate,
        ))
        .layer(from_fn(middleware::problem_fallback))
        .layer(from_fn(middleware::request_context))
        .with_state(state)
}

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
    let tiers = Tiers::load(config.tiers_file.as_deref())?;
    let db = open_database(&config).await?;
    let master_key = secrets::MasterKey::load(&config, db.backend())?;
    let now = common::Clock::system().now_ms();
    let keys = cluster_keys::verify_at_start(&db, &config, &master_key, serving, now).await?;
    AppState::new(config, db, tiers, keys, public_url)
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
    let mut state = build_state(config, public_url, true).await?;
    state.metrics = install_metrics();

    if let Some(created) = admin::bootstrap_owner(&state).await? {
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

    if state.config.embedded_runner {
        let node_url = state
            .config
            .node_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        state.runner = Some(start_embedded_runner(&state, node_url).await?);
    }
    let dispatcher = webhooks::Dispatcher::new(
        state.webhooks.clone(),
        state.webhook_secrets.clone(),
        webhooks::DispatcherConfig {
            schedule: webhooks::schedule::Schedule::new(
                state.config.webhook_retry_schedule.clone(),
            ),
            timeout: state.config.webhook_timeout,
            concurrency: 64,
            per_endpoint: 16,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            policy: common::egress::EgressPolicy::new(state.config.egress_allow.clone()),
        },
        state.clock.clone(),
    )?;
    if let Some(runner) = &state.runner {
        let d = dispatcher.clone();
        runner.on_events(Box::new(move || d.wake()));
    }
    let mailer = state.mailer.clone();
    {
        let accounts = state.accounts.clone();
        dispatcher.on_endpoint_disabled(Box::new(move |d| {
            let (accounts, mailer) = (accounts.clone(), mailer.clone());
            tokio::spawn(async move { notify_endpoint_disabled(&accounts, &mailer, d).await });
        }));
    }
    state.dispatcher = Some(dispatcher.clone());

    let tracker = TaskTracker::new();
    tracker.spawn(dispatcher.clone().run(shutdown.clone()));
    tracker.spawn(purge_idempotency_keys(state.clone(), shutdown.clone()));
    tracker.spawn(cluster_keys::heartbeat(
        state.db.clone(),
        state.master_keys.clone(),
        state.config.clone(),
        state.clock.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(usage_loop(state.clone(), shutdown.clone()));
    tracker.spawn(reap_dead_runners(
        state.clone(),
        dispatcher.clone(),
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

/// On every node: marks runners silent past `DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS` as
/// dead and fails their live sessions (with `session.failed` events; caps and profile locks
/// follow from the sessions' state). One node wins each runner.
async fn reap_dead_runners(
    state: AppState,
    dispatcher: std::sync::Arc<webhooks::Dispatcher>,
    shutdown: CancellationToken,
) {
    let registry = runner::registry::RunnerRegistry::new(state.db.clone());
    let timeout =
        i64::try_from(state.config.runner_heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(state.config.runner_heartbeat);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.clock.now_ms();
        let dead = match registry.reap(now - timeout).await {
            Ok(dead) => dead,
            Err(err) => {
                tracing::warn!(error = %err, "could not look for dead runners");
                continue;
            }
        };
        for id in dead {
            match state.sessions.fail_orphans(&id, now).await {
                Ok(failed) => {
                    tracing::warn!(runner.id = %id, sessions = failed.len(), "runner declared dead; its sessions failed");
                    dispatcher.wake();
                }
                Err(err) => {
                    tracing::error!(runner.id = %id, error = %err, "a dead runner's sessions could not be failed")
                }
            }
        }
    }
}

/// Starts the in-process runner. Its id is kept in the data dir so that a restart recognises the
/// sessions the previous run left behind.
async fn start_embedded_runner(
    state: &AppState,
    node_url: String,
) -> anyhow::Result<std::sync::Arc<runner::Runner>> {
    let config = &state.config;
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
    match state.profiles.sweep().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "unreferenced profile blobs removed"),
        Err(e) => tracing::warn!(error = %e, "could not sweep unreferenced profile blobs"),
    }
    runner::Runner::start(
        runner_config,
        state.sessions.clone(),
        state.profiles.clone(),
        state.clock.clone(),
    )
    .await
}

/// Tells an account's owners by mail that one of their webhook endpoints was disabled.
async fn notify_endpoint_disabled(
    accounts: &store::accounts::AccountStore,
    mailer: &mail::Mailer,
    d: webhooks::store::Disabled,
) {
    let owners = match accounts.owner_emails(&d.account_id).await {
        Ok(o) => o,
        Err(err) => {
            tracing::error!(error = %err, "cannot find the owners to tell about a disabled endpoint");
            return;
        }
    };
    for to in owners {
        let text = format!(
            "Your Driftstack webhook endpoint {} ({}) was disabled: {}.\n\n\
             Deliveries for it are kept. Fix the receiver, then re-enable it with \
             PATCH /v1/webhooks/endpoints/{} {{\"enabled\": true}}; failed deliveries can be \
             replayed with POST /v1/webhooks/replay.\n",
            d.endpoint_id, d.url, d.reason, d.endpoint_id
        );
        let html = format!(
            "<p>{}</p>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('\n', "<br>")
        );
        mailer.send(mail::Mail {
            to,
            subject: format!("Webhook endpoint disabled: {}", d.url),
            text,
            html,
        });
    }
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

/// Writes the API calls counted in memory every `DRIFTSTACK_USAGE_FLUSH_SECONDS`, and announces
/// usage thresholds for the accounts active since the last round.
async fn usage_loop(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.usage_flush);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = state.usage.flush().await {
            tracing::warn!(error = %err, "API call counts not written; retrying next round");
        }
        let mut announced = false;
        for account in state.usage.take_touched() {
            // Only capped meters have thresholds to announce.
            let tier = match state.accounts.get(&account).await {
                Ok(a) => state.tiers.get(&a.tier).cloned(),
                Err(err) => {
                    tracing::warn!(error = %err, "usage thresholds: account not read");
                    None
                }
            };
            let Some(tier) = tier.filter(tiers::Tier::has_monthly_caps) else {
                continue;
            };
            match routes::usage::report_with(&state, &account, &tier).await {
                Ok(report) => match state.usage.announce_thresholds(&account, &report).await {
                    Ok(n) => announced |= n > 0,
                    Err(err) => tracing::warn!(error = %err, "usage thresholds not recorded"),
                },
                Err(err) => tracing::warn!(error = ?err.detail, "usage report failed"),
            }
        }
        if announced {
            state.dispatcher_wake();
        }
    }
}

async fn purge_idempotency_keys(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(err) = state.idempotency.purge(state.clock.now_ms()).await {
                    tracing::warn!(error = %err, "idempotency purge failed");
                }
            }
        }
    }
}
