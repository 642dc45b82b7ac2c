//! What every node of one database must agree on — the master key and the cluster token —
//! checked at start against check values recorded in the database (an HMAC of a fixed label
//! under the secret, never the secret itself), so a misconfigured node stops with one line instead
//! of failing to open its peers' secrets later.
//!
//! Master-key rotation: a node may start with a new `DRIFTSTACK_MASTER_KEY` while the database
//! still records the old one, if the old one is in its `DRIFTSTACK_MASTER_KEY_PREVIOUS`. Until
//! every running node has the new key, every node seals and signs with the **recorded** key (all of
//! them can open it) and opens with all it has. Each serving node reports its current key's check
//! value every heartbeat; once every node seen within the heartbeat timeout reports the new one,
//! the record moves to it, and nodes seal with it from their next start. A node whose current key
//! is neither the recorded one nor newer than it (the record in its previous keys) is refused.

use anyhow::bail;
use common::{Db, StoreError, clock::Millis, db::BeginWrite, on_db};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::{config::Config, secrets::MasterKey};

const MASTER_LABEL: &[u8] = b"driftstack master key check v1";
const TOKEN_LABEL: &[u8] = b"driftstack cluster token check v1";

/// The check value of a secret: hex HMAC-SHA256 of a fixed label under it.
fn check_value(secret: &[u8], label: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(label);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A master key's check value.
pub fn master_check(key: &[u8; 32]) -> String {
    check_value(key, MASTER_LABEL)
}

/// The short id a check value is named by in messages (its first 12 hex digits).
fn key_id(check: &str) -> &str {
    &check[..check.len().min(12)]
}

/// The keys a node works with: the one it seals and signs with (the database's recorded key),
/// and every other configured key, which it only opens with.
#[derive(Clone)]
pub struct Keyring {
    pub active: MasterKey,
    pub others: Vec<[u8; 32]>,
    /// The node's own `DRIFTSTACK_MASTER_KEY` (what it reports for promotion).
    pub current_check: String,
}

/// Checks this node's keys against the database (recording them on a first start) and answers
/// the keyring to build the state with. `serving`: a `serve`/`runner` node (the admin CLI checks
/// the master key only, and never moves the record).
pub async fn verify_at_start(
    db: &Db,
    config: &Config,
    current: &MasterKey,
    serving: bool,
    now: Millis,
) -> anyhow::Result<Keyring> {
    let store = ChecksStore { db: db.clone() };
    // The token first: a node about to be refused must not move anything.
    if serving {
        verify_cluster_token(&store, config, now).await?;
    }
    let current_check = master_check(current.bytes());
    let mut recorded = store
        .record_if_absent("master_key", &current_check, now)
        .await?;
    let previous = previous_checks(config);
    if serving && recorded != current_check && previous.contains(&recorded) {
        // Rotating: when no other node runs right now, this one completes the move at once
        // (and seals with the new key from the start).
        let window = i64::try_from(config.runner_heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
        if store
            .promote(&current_check, &previous, now - window, now)
            .await?
        {
            tracing::info!(
                key = key_id(&current_check),
                "the database now records the new master key"
            );
            recorded = current_check.clone();
        }
    }
    let mut all: Vec<[u8; 32]> = vec![*current.bytes()];
    all.extend(config.previous_master_keys.iter().copied());
    let Some(active) = all.iter().find(|k| master_check(k) == recorded).copied() else {
        bail!(
            "DRIFTSTACK_MASTER_KEY: this node's master key (id {}) is not the one this database \
             was set up with (id {}); every node of a cluster needs the same key — during a \
             rotation, the old one in DRIFTSTACK_MASTER_KEY_PREVIOUS (docs/DEPLOYMENT.md)",
            key_id(&current_check),
            key_id(&recorded)
        );
    };
    if active != *current.bytes() {
        tracing::info!(
            recorded = key_id(&recorded),
            current = key_id(&current_check),
            "master key rotation in progress: sealing with the recorded key until every node has the new one"
        );
    }
    let others = all.into_iter().filter(|k| *k != active).collect();
    Ok(Keyring {
        active: MasterKey::from_bytes(active),
        others,
        current_check,
    })
}

async fn verify_cluster_token(
    store: &ChecksStore,
    config: &Config,
    now: Millis,
) -> anyhow::Result<()> {
    match &config.cluster_token {
        Some(token) => {
            let mine = check_value(token.expose().as_bytes(), TOKEN_LABEL);
            let recorded = store.record_if_absent("cluster_token", &mine, now).await?;
            if recorded != mine {
                bail!(
                    "DRIFTSTACK_CLUSTER_TOKEN: differs from the token this database's cluster \
                     uses; every node needs the same one"
                );
            }
        }
        None => {
            if store.get("cluster_token").await?.is_some() {
                bail!(
                    "DRIFTSTACK_CLUSTER_TOKEN: this database belongs to a cluster whose nodes \
                     share a token; set the same one on this node"
                );
            }
        }
    }
    Ok(())
}

/// Whether the database still records a key this node can open (for `/readyz`).
pub async fn secrets_readable(db: &Db, keys: &Keyring) -> Result<bool, StoreError> {
    let store = ChecksStore { db: db.clone() };
    let Some(recorded) = store.get("master_key").await? else {
        return Ok(true);
    };
    Ok(master_check(keys.active.bytes()) == recorded
        || keys.others.iter().any(|k| master_check(k) == recorded))
}

/// Reports this node's current key every runner heartbeat, and moves the recorded key to it
/// once every node seen within the heartbeat timeout reports it. Runs until `shutdown`; a node
/// that stops gracefully withdraws its report (so it does not hold a promotion back).
pub async fn heartbeat(
    db: Db,
    keys: Keyring,
    config: std::sync::Arc<Config>,
    clock: common::Clock,
    shutdown: CancellationToken,
) {
    let store = ChecksStore { db };
    let node_id = uuid::Uuid::now_v7().simple().to_string();
    let previous = previous_checks(&config);
    let window_ms = i64::try_from(config.runner_heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(config.runner_heartbeat);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        if let Err(err) = store.report(&node_id, &keys.current_check, now).await {
            tracing::warn!(error = %err, "could not report this node's master key");
            continue;
        }
        match store
            .promote(&keys.current_check, &previous, now - window_ms, now)
            .await
        {
            Ok(true) => tracing::info!(
                key = key_id(&keys.current_check),
                "every node has the new master key: the database now records it"
            ),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "master key promotion check failed"),
        }
    }
    let _ = store.forget(&node_id).await;
}

/// The check values of previously configured keys (what a promotion may move away from).
pub fn previous_checks(config: &Config) -> Vec<String> {
    config
        .previous_master_keys
        .iter()
        .map(master_check)
        .collect()
}

struct ChecksStore {
    db: Db,
}

impl ChecksStore {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.db
            .scalar_optional(
                "SELECT value FROM cluster_checks WHERE name = $1",
                &common::args![name],
            )
            .await
    }

    /// Records `value` under `name` unless something is recorded already; answers what is.
    async fn record_if_absent(
        &self,
        name: &str,
        value: &str,
        now: Millis,
    ) -> Result<String, StoreError> {
        self.db
            .execute(
                "INSERT INTO cluster_checks (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &common::args![name, value, now],
            )
            .await?;
        self.get(name).await?.ok_or(StoreError::NotFound)
    }

    async fn report(&self, node: &str, check: &str, now: Millis) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO node_keys (node_id, key_check, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (node_id) DO UPDATE SET key_check = $2, seen_at = $3",
                &common::args![node, check, now],
            )
            .await?;
        Ok(())
    }

    async fn forget(&self, node: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM node_keys WHERE node_id = $1",
                &common::args![node],
            )
            .await?;
        Ok(())
    }

    /// Moves the recorded master key from one of `previous` to `current` when no node seen
    /// since `since` reports another key. One write transaction, so two nodes cannot disagree.
    async fn promote(
        &self,
        current: &str,
        previous: &[String],
        since: Millis,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let promoted = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let recorded: Option<String> =
                sqlx::query_scalar("SELECT value FROM cluster_checks WHERE name = 'master_key'")
                    .fetch_optional(&mut *tx)
                    .await?;
            let movable = recorded.as_deref().is_some_and(|r| r != current && previous.iter().any(|p| p == r));
            let mut promoted = false;
            if movable {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM node_keys WHERE seen_at >= $1 AND key_check <> $2",
                )
                .bind(since)
                .bind(current)
                .fetch_one(&mut *tx)
                .await?;
                if others == 0 {
                    sqlx::query(
                        "UPDATE cluster_checks SET value = $1, updated_at = $2 WHERE name = 'master_key'",
                    )
                    .bind(current)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    promoted = true;
                }
            }
            sqlx::query("DELETE FROM node_keys WHERE seen_at < $1")
                .bind(since)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            promoted
        });
        Ok(promoted)
    }
}
