//! The `profiles`, `profile_snapshots` and `profile_blobs` tables.
//!
//! Every change that moves a reference to a state blob (save, snapshot, restore, clone, delete)
//! adjusts `profile_blobs.refs` in the same transaction, and records its `profile.*` event there
//! too. A blob whose count reaches zero is collected by [`ProfileStore::collect`], which deletes
//! the object while it holds the row's lock, so a concurrent save of identical content (which
//! must take that lock to add its reference) either sees the row gone and writes the object anew
//! or keeps it alive.
//!
//! The one-writer lock is `profiles.locked_by`: the session holding it. A lock whose session is
//! over is free, whatever ended the session (release, timeout, crash, a server killed outright),
//! so no end path can leave a profile locked for good. That check reads the runner's `sessions`
//! table — the only SQL here that looks outside this crate's tables.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, ProfileId, SessionId, SnapshotId},
    on_db,
    outbox::NewEvent,
};
use serde_json::json;

use crate::state::{Fingerprint, StateSummary};

/// A profile as stored.
#[derive(Clone, Debug)]
pub struct ProfileRecord {
    pub id: ProfileId,
    pub account_id: AccountId,
    pub name: String,
    pub fingerprint: Fingerprint,
    /// Address of the current state's blob; `None` while the profile is empty.
    pub state_blob: Option<String>,
    pub summary: Option<StateSummary>,
    pub state_saved_at: Option<Millis>,
    /// The session holding the writer lock, if it is still live.
    pub live_session: Option<SessionId>,
    pub last_save_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A snapshot as stored.
#[derive(Clone, Debug)]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    pub profile_id: ProfileId,
    pub name: Option<String>,
    /// `profile` or `session`.
    pub source: String,
    pub session_id: Option<SessionId>,
    pub state_blob: Option<String>,
    pub summary: StateSummary,
    pub created_at: Millis,
}

/// Live session statuses, as the runner writes them.
macro_rules! lock_holder_live {
    () => {
        "EXISTS (SELECT 1 FROM sessions s WHERE s.id = profiles.locked_by \
         AND s.status IN ('starting', 'active', 'closing'))"
    };
}

macro_rules! select_profiles {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, name, fingerprint, state_blob, state_summary, state_saved_at, ",
            "CASE WHEN ",
            lock_holder_live!(),
            " THEN locked_by END AS live_session, ",
            "last_save_error, created_at, updated_at FROM profiles ",
            $tail
        )
    };
}

macro_rules! select_snapshots {
    ($tail:literal) => {
        concat!(
            "SELECT id, profile_id, name, source, session_id, state_blob, summary, created_at ",
            "FROM profile_snapshots ",
            $tail
        )
    };
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    id: String,
    account_id: String,
    name: String,
    fingerprint: String,
    state_blob: Option<String>,
    state_summary: Option<String>,
    state_saved_at: Option<i64>,
    live_session: Option<String>,
    last_save_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<ProfileRow> for ProfileRecord {
    fn from(r: ProfileRow) -> Self {
        ProfileRecord {
            id: ProfileId::from_trusted(r.id),
            account_id: AccountId::from_trusted(r.account_id),
            name: r.name,
            fingerprint: serde_json::from_str(&r.fingerprint).unwrap_or_default(),
            state_blob: r.state_blob,
            summary: r.state_summary.and_then(|s| serde_json::from_str(&s).ok()),
            state_saved_at: r.state_saved_at,
            live_session: r.live_session.map(SessionId::from_trusted),
            last_save_error: r.last_save_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    id: String,
    profile_id: String,
    name: Option<String>,
    source: String,
    session_id: Option<String>,
    state_blob: Option<String>,
    summary: String,
    created_at: i64,
}

impl From<SnapshotRow> for SnapshotRecord {
    fn from(r: SnapshotRow) -> Self {
        SnapshotRecord {
            id: SnapshotId::from_trusted(r.id),
            profile_id: ProfileId::from_trusted(r.profile_id),
            name: r.name,
            source: r.source,
            session_id: r.session_id.map(SessionId::from_trusted),
            state_blob: r.state_blob,
            summary: serde_json::from_str(&r.summary).unwrap_or_default(),
            created_at: r.created_at,
        }
    }
}

/// Why a store operation on a profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not found")]
    NotFound,
    #[error("the profile is in use by session {0}")]
    InUse(SessionId),
    #[error("the plan allows {0} profiles")]
    LimitReached(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Store(e.into())
    }
}

/// A new state blob to point a profile or snapshot at.
pub struct NewState<'a> {
    pub address: &'a str,
    pub summary: &'a StateSummary,
}

/// Adds one reference to a blob that already has a row (the caller holds another reference).
macro_rules! add_ref {
    ($tx:expr, $address:expr) => {
        sqlx::query("UPDATE profile_blobs SET refs = refs + 1 WHERE address = $1")
            .bind($address)
            .execute(&mut *$tx)
    };
}

/// Drops one reference; the blob is collected later if that was the last.
macro_rules! drop_ref {
    ($tx:expr, $address:expr) => {
        sqlx::query("UPDATE profile_blobs SET refs = refs - 1 WHERE address = $1")
            .bind($address)
            .execute(&mut *$tx)
    };
}

/// Takes the row lock on a profile (both backends: a no-op update) and reads what a change
/// needs, or `None` when the account has no such profile.
macro_rules! lock_profile {
    ($tx:expr, $account:expr, $id:expr) => {{
        let n = sqlx::query(
            "UPDATE profiles SET updated_at = updated_at WHERE id = $1 AND account_id = $2",
        )
        .bind($id.as_str())
        .bind($account.as_str())
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if n == 0 {
            None
        } else {
            let row: ProfileRow = sqlx::query_as(select_profiles!("WHERE id = $1"))
                .bind($id.as_str())
                .fetch_one(&mut *$tx)
                .await?;
            Some(ProfileRecord::from(row))
        }
    }};
}

/// Counts the account's profiles under the account's lock and refuses at the plan's limit.
macro_rules! check_profile_limit {
    ($tx:expr, $account:expr, $max:expr) => {{
        sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
            .bind($account.as_str())
            .execute(&mut *$tx)
            .await?;
        if let Some(max) = $max {
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM profiles WHERE account_id = $1")
                    .bind($account.as_str())
                    .fetch_one(&mut *$tx)
                    .await?;
            if count >= i64::from(max) {
                return Err(Refusal::LimitReached(max));
            }
        }
    }};
}

fn event(
    account: &AccountId,
    kind: &'static str,
    data: serde_json::Value,
    now: Millis,
) -> NewEvent {
    NewEvent::new(account, kind, data, now)
}

fn summary_json(s: &StateSummary) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
}

#[derive(Clone)]
pub struct ProfileStore {
    db: Db,
}

/// A new profile.
pub struct NewProfile<'a> {
    pub account_id: &'a AccountId,
    pub name: &'a str,
    pub fingerprint: &'a Fingerprint,
    pub max_profiles: Option<u32>,
    pub now: Millis,
}

impl ProfileStore {
    pub fn new(db: Db) -> Self {
        ProfileStore { db }
    }

    /// Creates an empty profile (or, with `from`, a clone of that profile's current state and
    /// fingerprint), within the plan's profile limit; records `profile.created`.
    pub async fn create(
        &self,
        new: &NewProfile<'_>,
        from: Option<&ProfileId>,
    ) -> Result<ProfileRecord, Refusal> {
        let id = ProfileId::generate();
        let fingerprint =
            serde_json::to_string(new.fingerprint).map_err(|e| StoreError::Internal(e.into()))?;
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            check_profile_limit!(tx, new.account_id, new.max_profiles);
            let (fingerprint, blob, summary, saved_at) = match from {
                None => (fingerprint, None, None, None),
                Some(source) => {
                    let src = lock_profile!(tx, new.account_id, source).ok_or(Refusal::NotFound)?;
                    if let Some(address) = &src.state_blob {
                        add_ref!(tx, address).await?;
                    }
                    let fp = serde_json::to_string(&src.fingerprint)
                        .map_err(|e| StoreError::Internal(e.into()))?;
                    (fp, src.state_blob, src.summary.as_ref().map(summary_json), src.state_saved_at)
                }
            };
            sqlx::query(
                "INSERT INTO profiles (id, account_id, name, fingerprint, state_blob, state_summary, \
                 state_saved_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(id.as_str())
            .bind(new.account_id.as_str())
            .bind(new.name)
            .bind(&fingerprint)
            .bind(&blob)
            .bind(&summary)
            .bind(saved_at)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            let ev = event(
                new.account_id,
                "profile.created",
                json!({"profile_id": id, "name": new.name, "cloned_from": from}),
                new.now,
            );
            common::insert_event!(ev).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(self.get(new.account_id, &id).await?)
    }

    pub async fn get(
        &self,
        account: &AccountId,
        id: &ProfileId,
    ) -> Result<ProfileRecord, StoreError> {
        let row: ProfileRow = on_db!(&self.db, pool => {
            sqlx::query_as(select_profiles!("WHERE account_id = $1 AND id = $2"))
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_one(pool)
                .await
        })?;
        Ok(row.into())
    }

    /// One page of the account's profiles, newest first.
    pub async fn list(
        &self,
        account: &AccountId,
        starting_after: Option<&ProfileId>,
        limit: i64,
    ) -> Result<(Vec<ProfileRecord>, bool), StoreError> {
        let cursor = starting_after.map(ProfileId::as_str).unwrap_or("prof_~");
        let rows: Vec<ProfileRow> = on_db!(&self.db, pool => {
            sqlx::query_as(select_profiles!(
                "WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(account.as_str())
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
        })?;
        let (rows, more) = common::db::split_page(rows, limit);
        Ok((rows.into_iter().map(Into::into).collect(), more))
    }

    /// Renames a profile and/or replaces its fingerprint.
    pub async fn update(
        &self,
        account: &AccountId,
        id: &ProfileId,
        name: Option<&str>,
        fingerprint: Option<&Fingerprint>,
        now: Millis,
    ) -> Result<ProfileRecord, StoreError> {
        let fingerprint = fingerprint
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(e.into()))?;
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE profiles SET name = COALESCE($3, name), \
                 fingerprint = COALESCE($4, fingerprint), updated_at = $5 \
                 WHERE account_id = $1 AND id = $2",
            )
            .bind(account.as_str())
            .bind(id.as_str())
            .bind(name)
            .bind(&fingerprint)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.get(account, id).await
    }

    /// Deletes a profile that no live session holds, with its snapshots; records
    /// `profile.deleted`. Returns the blob addresses whose references were dropped (to collect).
    pub async fn delete(
        &self,
        account: &AccountId,
        id: &ProfileId,
        now: Millis,
    ) -> Result<Vec<String>, Refusal> {
        let dropped = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let profile = lock_profile!(tx, account, id).ok_or(Refusal::NotFound)?;
            if let Some(holder) = profile.live_session {
                return Err(Refusal::InUse(holder));
            }
            let snapshot_blobs: Vec<Option<String>> = sqlx::query_scalar(
                "DELETE FROM profile_snapshots WHERE profile_id = $1 RETURNING state_blob",
            )
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let mut dropped: Vec<String> = snapshot_blobs.into_iter().flatten().collect();
            sqlx::query("DELETE FROM profiles WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            dropped.extend(profile.state_blob);
            for address in &dropped {
                drop_ref!(tx, address).await?;
            }
            let ev = event(account, "profile.deleted", json!({"profile_id": id}), now);
            common::insert_event!(ev).execute(&mut *tx).await?;
            tx.commit().await?;
            dropped
        });
        Ok(dropped)
    }

    /// Takes the one-writer lock for `session` (free when unheld or held by a session that is
    /// over).
    pub async fn lock(
        &self,
        account: &AccountId,
        id: &ProfileId,
        session: &SessionId,
    ) -> Result<ProfileRecord, Refusal> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let profile = lock_profile!(tx, account, id).ok_or(Refusal::NotFound)?;
            if let Some(holder) = profile.live_session {
                return Err(Refusal::InUse(holder));
            }
            sqlx::query("UPDATE profiles SET locked_by = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(session.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(self.get(account, id).await?)
    }

    /// Releases the lock if `session` still holds it.
    pub async fn unlock(&self, id: &ProfileId, session: &SessionId) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE profiles SET locked_by = NULL WHERE id = $1 AND locked_by = $2")
                .bind(id.as_str())
                .bind(session.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Adds a reference to `address`, creating its row if needed, and runs `write` (which puts
    /// the object) while the row is locked, so a concurrent collection cannot delete it.
    pub async fn reference_new_blob<F>(
        &self,
        address: &str,
        bytes: u64,
        now: Millis,
        write: F,
    ) -> Result<(), StoreError>
    where
        F: AsyncFnOnce() -> anyhow::Result<()>,
    {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO profile_blobs (address, refs, bytes, created_at) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET refs = profile_blobs.refs + 1",
            )
            .bind(address)
            .bind(bytes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write().await.map_err(StoreError::Internal)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Drops a reference taken by [`Self::reference_new_blob`] that will not be used.
    pub async fn unreference(&self, address: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            drop_ref!(tx, address).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Makes a blob (already referenced once for this purpose) the profile's current state and
    /// drops the old state's reference. Returns the old address, to collect.
    pub async fn set_state(
        &self,
        account: &AccountId,
        id: &ProfileId,
        state: &NewState<'_>,
        now: Millis,
    ) -> Result<Option<String>, Refusal> {
        let summary = summary_json(state.summary);
        let old = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let profile = lock_profile!(tx, account, id).ok_or(Refusal::NotFound)?;
            sqlx::query(
                "UPDATE profiles SET state_blob = $2, state_summary = $3, state_saved_at = $4, \
                 last_save_error = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(state.address)
            .bind(&summary)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(old) = &profile.state_blob {
                drop_ref!(tx, old).await?;
            }
            tx.commit().await?;
            profile.state_blob
        });
        Ok(old)
    }

    /// Notes that saving a session's state into the profile failed (the previous state stays).
    pub async fn record_save_error(
        &self,
        id: &ProfileId,
        message: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE profiles SET last_save_error = $2, updated_at = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(message)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Records a snapshot. With `state`, of a blob already referenced once for it; without, of
    /// the profile's current state (referenced again here). Records `profile.snapshot.created`.
    pub async fn insert_snapshot(
        &self,
        account: &AccountId,
        id: &ProfileId,
        name: Option<&str>,
        session: Option<&SessionId>,
        state: Option<&NewState<'_>>,
        now: Millis,
    ) -> Result<SnapshotRecord, Refusal> {
        let sid = SnapshotId::generate();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let profile = lock_profile!(tx, account, id).ok_or(Refusal::NotFound)?;
            let (blob, summary) = match state {
                Some(s) => (Some(s.address.to_owned()), summary_json(s.summary)),
                None => {
                    if let Some(address) = &profile.state_blob {
                        add_ref!(tx, address).await?;
                    }
                    (
                        profile.state_blob.clone(),
                        summary_json(&profile.summary.clone().unwrap_or_default()),
                    )
                }
            };
            let source = if session.is_some() { "session" } else { "profile" };
            sqlx::query(
                "INSERT INTO profile_snapshots (id, profile_id, account_id, name, source, session_id, \
                 state_blob, summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(sid.as_str())
            .bind(id.as_str())
            .bind(account.as_str())
            .bind(name)
            .bind(source)
            .bind(session.map(SessionId::as_str))
            .bind(&blob)
            .bind(&summary)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let ev = event(
                account,
                "profile.snapshot.created",
                json!({"profile_id": id, "snapshot_id": sid, "source": source}),
                now,
            );
            common::insert_event!(ev).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(self.get_snapshot(account, id, &sid).await?)
    }

    pub async fn get_snapshot(
        &self,
        account: &AccountId,
        profile: &ProfileId,
        id: &SnapshotId,
    ) -> Result<SnapshotRecord, StoreError> {
        let row: SnapshotRow = on_db!(&self.db, pool => {
            sqlx::query_as(select_snapshots!(
                "WHERE account_id = $1 AND profile_id = $2 AND id = $3"
            ))
            .bind(account.as_str())
            .bind(profile.as_str())
            .bind(id.as_str())
            .fetch_one(pool)
            .await
        })?;
        Ok(row.into())
    }

    /// One page of a profile's snapshots, newest first.
    pub async fn list_snapshots(
        &self,
        account: &AccountId,
        profile: &ProfileId,
        starting_after: Option<&SnapshotId>,
        limit: i64,
    ) -> Result<(Vec<SnapshotRecord>, bool), StoreError> {
        let cursor = starting_after.map(SnapshotId::as_str).unwrap_or("snap_~");
        let rows: Vec<SnapshotRow> = on_db!(&self.db, pool => {
            sqlx::query_as(select_snapshots!(
                "WHERE account_id = $1 AND profile_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
            ))
            .bind(account.as_str())
            .bind(profile.as_str())
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
        })?;
        let (rows, more) = common::db::split_page(rows, limit);
        Ok((rows.into_iter().map(Into::into).collect(), more))
    }

    /// Deletes a snapshot; returns its blob address (to collect).
    pub async fn delete_snapshot(
        &self,
        account: &AccountId,
        profile: &ProfileId,
        id: &SnapshotId,
    ) -> Result<Option<String>, StoreError> {
        let blob = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let blob: Option<Option<String>> = sqlx::query_scalar(
                "DELETE FROM profile_snapshots WHERE account_id = $1 AND profile_id = $2 AND id = $3 \
                 RETURNING state_blob",
            )
            .bind(account.as_str())
            .bind(profile.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(blob) = blob else {
                return Err(StoreError::NotFound);
            };
            if let Some(address) = &blob {
                drop_ref!(tx, address).await?;
            }
            tx.commit().await?;
            blob
        });
        Ok(blob)
    }

    /// Makes a snapshot's state the profile's current state (refused while a session holds the
    /// profile); records `profile.snapshot.restored`. Returns the old address, to collect.
    pub async fn restore(
        &self,
        account: &AccountId,
        id: &ProfileId,
        snapshot: &SnapshotId,
        now: Millis,
    ) -> Result<Option<String>, Refusal> {
        let old = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let profile = lock_profile!(tx, account, id).ok_or(Refusal::NotFound)?;
            if let Some(holder) = profile.live_session {
                return Err(Refusal::InUse(holder));
            }
            let snap: Option<(Option<String>, String)> = sqlx::query_as(
                "SELECT state_blob, summary FROM profile_snapshots WHERE profile_id = $1 AND id = $2",
            )
            .bind(id.as_str())
            .bind(snapshot.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((blob, summary)) = snap else {
                return Err(Refusal::NotFound);
            };
            if let Some(address) = &blob {
                add_ref!(tx, address).await?;
            }
            sqlx::query(
                "UPDATE profiles SET state_blob = $2, state_summary = $3, state_saved_at = $4, \
                 last_save_error = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(id.as_str())
            .bind(&blob)
            .bind(&summary)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(old) = &profile.state_blob {
                drop_ref!(tx, old).await?;
            }
            let ev = event(
                account,
                "profile.snapshot.restored",
                json!({"profile_id": id, "snapshot_id": snapshot}),
                now,
            );
            common::insert_event!(ev).execute(&mut *tx).await?;
            tx.commit().await?;
            profile.state_blob
        });
        Ok(old)
    }

    /// Deletes the blob at `address` if nothing references it any more. `delete` runs while the
    /// blob's row is locked; if it fails, nothing changes (the blob is tried again next time).
    pub async fn collect<F>(&self, address: &str, delete: F) -> Result<bool, StoreError>
    where
        F: AsyncFnOnce() -> anyhow::Result<()>,
    {
        let collected = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            // A no-op update takes the row lock on both backends.
            let refs: Option<i64> = sqlx::query_scalar(
                "UPDATE profile_blobs SET refs = refs WHERE address = $1 RETURNING refs",
            )
            .bind(address)
            .fetch_optional(&mut *tx)
            .await?;
            if refs.is_some_and(|r| r <= 0) {
                delete().await.map_err(StoreError::Internal)?;
                sqlx::query("DELETE FROM profile_blobs WHERE address = $1")
                    .bind(address)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                true
            } else {
                false
            }
        });
        Ok(collected)
    }

    /// Addresses of blobs nothing references (left by an interrupted collection).
    pub async fn unreferenced(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT address FROM profile_blobs WHERE refs <= 0")
                .fetch_all(pool)
                .await
        })?)
    }
}
