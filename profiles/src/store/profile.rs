//! The `profiles` table: profile records, creating (or cloning), reading, listing, renaming,
//! deleting, the one-writer lock, and pointing a profile at a newly saved state.

use common::{
    StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, ProfileId, SessionId},
    on_db,
};
use serde_json::json;

use super::{NewState, ProfileStore, Refusal, event, summary_json};
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

#[derive(sqlx::FromRow)]
pub(super) struct ProfileRow {
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

/// A new profile.
pub struct NewProfile<'a> {
    pub account_id: &'a AccountId,
    pub name: &'a str,
    pub fingerprint: &'a Fingerprint,
    pub max_profiles: Option<u32>,
    pub now: Millis,
}

impl ProfileStore {
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
        let row: ProfileRow = self
            .db
            .fetch_one(
                select_profiles!("WHERE account_id = $1 AND id = $2"),
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
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
        let (rows, more) = self
            .db
            .fetch_page::<ProfileRow>(
                select_profiles!("WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
                account.as_str(),
                cursor,
                limit,
            )
            .await?;
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
        self.db
            .execute(
                "UPDATE profiles SET locked_by = NULL WHERE id = $1 AND locked_by = $2",
                &common::args![id.as_str(), session.as_str()],
            )
            .await?;
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
        self.db
            .execute(
                "UPDATE profiles SET last_save_error = $2, updated_at = $3 WHERE id = $1",
                &common::args![id.as_str(), message, now],
            )
            .await?;
        Ok(())
    }
}
