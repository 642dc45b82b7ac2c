//! The `profile_snapshots` table: recording a snapshot (of a session's state or the profile's
//! current one), reading, listing and deleting snapshots, and restoring one into its profile.

use common::{
    StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, ProfileId, SessionId, SnapshotId},
    on_db,
};
use serde_json::json;

use super::profile::{ProfileRecord, ProfileRow};
use super::{NewState, ProfileStore, Refusal, event, summary_json};
use crate::state::StateSummary;

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

impl ProfileStore {
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
        let row: SnapshotRow = self
            .db
            .fetch_one(
                select_snapshots!("WHERE account_id = $1 AND profile_id = $2 AND id = $3"),
                &common::args![account.as_str(), profile.as_str(), id.as_str()],
            )
            .await?;
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
        let rows: Vec<SnapshotRow> = self.db.fetch_all(select_snapshots!(
                "WHERE account_id = $1 AND profile_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
            ), &common::args![account.as_str(), profile.as_str(), cursor, limit + 1]).await?;
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
}
