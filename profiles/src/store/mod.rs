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
    ids::{AccountId, SessionId},
    outbox::NewEvent,
};

use crate::state::StateSummary;

pub use profile::{NewProfile, ProfileRecord};
pub use snapshots::SnapshotRecord;

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

// Declared after the macros above, which they use.
mod blob_refs;
mod profile;
mod snapshots;

#[derive(Clone)]
pub struct ProfileStore {
    db: Db,
}

impl ProfileStore {
    pub fn new(db: Db) -> Self {
        ProfileStore { db }
    }
}
