//! The background tasks every serving node runs until shutdown: failing the sessions of dead
//! runners, writing API call counts and announcing usage thresholds, purging expired
//! idempotency keys, deleting downloads past their plan's retention; and the mail sent when the
//! dispatcher disables an endpoint.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{mail, state::AppState, store, tiers};

/// On every node: marks runners silent past `DRIFTSTACK_RUNNER_HEARTBEAT_TIMEOUT_SECONDS` as
/// dead and fails their live sessions (with `session.failed` events; caps and profile locks
/// follow from the sessions' state). One node wins each runner.
pub async fn reap_dead_runners(state: AppState, shutdown: CancellationToken) {
    let registry = &state.registry;
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
                    state.dispatcher_wake();
                }
                Err(err) => {
                    tracing::error!(runner.id = %id, error = %err, "a dead runner's sessions could not be failed")
                }
            }
        }
    }
}

/// Writes the API calls counted in memory every `DRIFTSTACK_USAGE_FLUSH_SECONDS`, and announces
/// usage thresholds for the accounts active since the last round.
pub async fn usage_loop(state: AppState, shutdown: CancellationToken) {
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
            match crate::service::usage::report_with(&state, &account, &tier).await {
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

pub async fn purge_idempotency_keys(state: AppState, shutdown: CancellationToken) {
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

/// Tells an account's owners by mail that one of their webhook endpoints was disabled.
pub async fn notify_endpoint_disabled(
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
        mailer.send(mail::Template::EndpointDisabled.render(
            &to,
            &[
                ("endpoint_id", d.endpoint_id.as_str()),
                ("url", &d.url),
                ("reason", d.reason),
            ],
        ));
    }
}

/// Every `DRIFTSTACK_FILE_SWEEP_SECONDS`: deletes the downloads (rows and sealed bytes), the session
/// logs, the recordings (chunks and sealed bytes) and the last frames older than their plan keeps
/// them (logs, recordings and frames share `log_retention_days`). Several nodes may sweep at once; deleting
/// twice is harmless.
pub async fn expire_downloads(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.file_sweep);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.clock.now_ms();
        for name in state.tiers.names() {
            let Some(tier) = state.tiers.get(name) else {
                continue;
            };
            let before = now - i64::from(tier.download_retention_days) * 86_400_000;
            match state.files.expire(name, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tier = name, files = n, "expired downloads deleted"),
                Err(err) => {
                    tracing::warn!(error = %err, "expired downloads not deleted; retrying next round")
                }
            }
            let before = now - i64::from(tier.log_retention_days) * 86_400_000;
            match state.logs.expire(name, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tier = name, entries = n, "expired session logs deleted"),
                Err(err) => {
                    tracing::warn!(error = %err, "expired session logs not deleted; retrying next round")
                }
            }
            match state.recordings.expire(name, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tier = name, chunks = n, "expired recordings deleted"),
                Err(err) => {
                    tracing::warn!(error = %err, "expired recordings not deleted; retrying next round")
                }
            }
            match state.recordings.expire_frames(name, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tier = name, frames = n, "expired last frames deleted"),
                Err(err) => {
                    tracing::warn!(error = %err, "expired last frames not deleted; retrying next round")
                }
            }
        }
    }
}
