//! SQL for session recordings: a session's recording state (on its row) and its chunks, in
//! order. Every read takes the account; another account's session has no recording.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, SessionId},
    on_db,
    outbox::NewEvent,
};

/// A session's recording, as its row says.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingState {
    /// `recording`, `paused` or `complete`.
    pub state: String,
    pub truncated: bool,
    /// Stored (compressed) bytes so far.
    pub bytes: i64,
}

/// One stored chunk.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Chunk {
    pub seq: i64,
    pub blob_address: String,
    pub events: i64,
    pub bytes: i64,
}

/// Inserts a chunk's row and adds its bytes to the session's, in the transaction `$tx`.
macro_rules! insert_chunk {
    ($tx:expr, $account:expr, $session:expr, $chunk:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO session_recording_chunks (session_id, seq, account_id, blob_address, \
             events, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($session.as_str())
        .bind($chunk.seq)
        .bind($account.as_str())
        .bind($chunk.blob_address.as_str())
        .bind($chunk.events)
        .bind($chunk.bytes)
        .bind($now)
        .execute($tx)
        .await?;
        sqlx::query("UPDATE sessions SET recording_bytes = recording_bytes + $2 WHERE id = $1")
            .bind($session.as_str())
            .bind($chunk.bytes)
            .execute($tx)
            .await?;
    };
}

#[derive(Clone)]
pub struct RecordingStore {
    pub(super) db: Db,
}

impl RecordingStore {
    pub fn new(db: Db) -> Self {
        RecordingStore { db }
    }

    pub async fn set_state(&self, session: &SessionId, state: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE sessions SET recording_state = $2 WHERE id = $1 \
                 AND (recording_state IS NULL OR recording_state <> 'complete')",
                &common::args![session.as_str(), state],
            )
            .await?;
        Ok(())
    }

    pub async fn mark_truncated(&self, session: &SessionId) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE sessions SET recording_truncated = TRUE WHERE id = $1",
                &common::args![session.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Marks the recording complete with its `session.recording.ready` event, together with its
    /// `last` chunk (one transaction: the end of a recorded session costs one write).
    pub async fn complete(
        &self,
        account: &AccountId,
        session: &SessionId,
        last: Option<&Chunk>,
        now: Millis,
    ) -> Result<(), StoreError> {
        #[derive(sqlx::FromRow)]
        struct Totals {
            events: i64,
            bytes: i64,
            truncated: bool,
        }
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(chunk) = last {
                insert_chunk!(&mut *tx, account, session, chunk, now);
            }
            let n = sqlx::query(
                "UPDATE sessions SET recording_state = 'complete' WHERE id = $1 \
                 AND recording_state IN ('recording', 'paused')",
            )
            .bind(session.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                let totals: Totals = sqlx::query_as(
                    "SELECT CAST(COALESCE((SELECT SUM(events) FROM session_recording_chunks \
                     WHERE session_id = $1), 0) AS BIGINT) AS events, recording_bytes AS bytes, \
                     recording_truncated AS truncated FROM sessions WHERE id = $1",
                )
                .bind(session.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let event = NewEvent::new(
                    account,
                    "session.recording.ready",
                    serde_json::json!({
                        "session_id": session,
                        "events": totals.events,
                        "bytes": totals.bytes,
                        "truncated": totals.truncated,
                    }),
                    now,
                );
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a chunk written to the blob store, and its bytes on the session.
    pub async fn add_chunk(
        &self,
        account: &AccountId,
        session: &SessionId,
        chunk: &Chunk,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            insert_chunk!(&mut *tx, account, session, chunk, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The session's recording state; `None` when it was not recorded (or is not the account's).
    pub async fn state(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<Option<RecordingState>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            recording_state: Option<String>,
            recording_truncated: bool,
            recording_bytes: i64,
        }
        let row: Option<Row> = self
            .db
            .fetch_optional(
                "SELECT recording_state, recording_truncated, recording_bytes FROM sessions \
                 WHERE id = $1 AND account_id = $2",
                &common::args![session.as_str(), account.as_str()],
            )
            .await?;
        Ok(row.and_then(|r| {
            r.recording_state.map(|state| RecordingState {
                state,
                truncated: r.recording_truncated,
                bytes: r.recording_bytes,
            })
        }))
    }

    /// The session's chunks, in order.
    pub async fn chunks(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<Vec<Chunk>, StoreError> {
        self.db
            .fetch_all(
                "SELECT seq, blob_address, events, bytes FROM session_recording_chunks \
                 WHERE session_id = $1 AND account_id = $2 ORDER BY seq",
                &common::args![session.as_str(), account.as_str()],
            )
            .await
    }

    /// Deletes the chunks of `tier`'s accounts written before `before`; answers their blobs.
    pub async fn expire(&self, tier: &str, before: Millis) -> Result<Vec<String>, StoreError> {
        self.db
            .scalar_all(
                "DELETE FROM session_recording_chunks WHERE created_at < $2 \
                 AND account_id IN (SELECT id FROM accounts WHERE tier = $1) \
                 RETURNING blob_address",
                &common::args![tier, before],
            )
            .await
    }
}
