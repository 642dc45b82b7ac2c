//! The `sessions` table. Every lifecycle transition is written here, so a restart never leaves a
//! session "active" forever, and the per-account concurrency cap is enforced here atomically: the
//! count of live sessions and the insert happen under one lock (`BEGIN IMMEDIATE` on SQLite, a
//! row lock on the account on PostgreSQL), so N parallel creates against a cap of K admit exactly
//! K on any number of API nodes.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, RunnerId, SessionId},
    on_db,
};

use common::outbox::NewEvent;

use crate::spec::{Counters, EndReason, SessionStatus};

/// A session as stored.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub account_id: AccountId,
    pub runner_id: RunnerId,
    pub status: SessionStatus,
    /// The create request as JSON (secrets removed).
    pub options: serde_json::Value,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub expires_at: Millis,
    pub idle_timeout_ms: i64,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<String>,
    pub create_ms: Option<i64>,
    pub counters: Counters,
    /// Its logs reached the plan's limit; later entries were not kept.
    pub logs_truncated: bool,
    /// Its recording, when it is recorded.
    pub recording: Option<crate::recording::RecordingState>,
    /// Its latest handoff to a person, if one was requested.
    pub handoff: Option<HandoffRecord>,
    /// Who started it: `key_…` or `usr_…` (unknown for sessions older than this field).
    pub created_by: Option<String>,
    /// Where it was started from: `api`, `mcp` or `dashboard`.
    pub source: Option<String>,
    /// Why it failed to start or crashed, as a sentence.
    pub failure: Option<String>,
}

/// A session's latest handoff, as its row says.
#[derive(Clone, Debug)]
pub struct HandoffRecord {
    pub id: String,
    /// `requested`, `completed` or `expired`.
    pub state: String,
    pub reason: String,
    pub mode: String,
    pub live_link_id: Option<String>,
    pub requested_at: Millis,
    pub deadline: Millis,
    pub ended_at: Option<Millis>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    account_id: String,
    runner_id: String,
    status: String,
    options: String,
    created_at: i64,
    started_at: Option<i64>,
    expires_at: i64,
    idle_timeout_ms: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    create_ms: Option<i64>,
    navigations: i64,
    actions: i64,
    captures: i64,
    requests: i64,
    bytes_received: i64,
    bytes_sent: i64,
    blocked_requests: i64,
    egress_denied: i64,
    logs_truncated: bool,
    recording_state: Option<String>,
    recording_truncated: bool,
    recording_bytes: i64,
    handoff_id: Option<String>,
    handoff_state: Option<String>,
    handoff_reason: Option<String>,
    handoff_mode: Option<String>,
    handoff_link_id: Option<String>,
    handoff_requested_at: Option<i64>,
    handoff_deadline: Option<i64>,
    handoff_ended_at: Option<i64>,
    created_by: Option<String>,
    source: Option<String>,
    failure: Option<String>,
}

impl From<Row> for SessionRecord {
    fn from(r: Row) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        SessionRecord {
            id: SessionId::from_trusted(r.id),
            account_id: AccountId::from_trusted(r.account_id),
            runner_id: RunnerId::from_trusted(r.runner_id),
            status: SessionStatus::parse(&r.status).unwrap_or(SessionStatus::Failed),
            options: serde_json::from_str(&r.options).unwrap_or(serde_json::Value::Null),
            created_at: r.created_at,
            started_at: r.started_at,
            expires_at: r.expires_at,
            idle_timeout_ms: r.idle_timeout_ms,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            create_ms: r.create_ms,
            logs_truncated: r.logs_truncated,
            recording: r
                .recording_state
                .map(|state| crate::recording::RecordingState {
                    state,
                    truncated: r.recording_truncated,
                    bytes: r.recording_bytes,
                }),
            handoff: r.handoff_id.map(|id| HandoffRecord {
                id,
                state: r.handoff_state.unwrap_or_default(),
                reason: r.handoff_reason.unwrap_or_default(),
                mode: r.handoff_mode.unwrap_or_default(),
                live_link_id: r.handoff_link_id,
                requested_at: r.handoff_requested_at.unwrap_or_default(),
                deadline: r.handoff_deadline.unwrap_or_default(),
                ended_at: r.handoff_ended_at,
            }),
            created_by: r.created_by,
            source: r.source,
            failure: r.failure,
            counters: Counters {
                navigations: n(r.navigations),
                actions: n(r.actions),
                captures: n(r.captures),
                requests: n(r.requests),
                bytes_received: n(r.bytes_received),
                bytes_sent: n(r.bytes_sent),
                blocked_requests: n(r.blocked_requests),
                egress_denied: n(r.egress_denied),
            },
        }
    }
}

macro_rules! select_sessions {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, runner_id, status, options, created_at, started_at, expires_at, ",
            "idle_timeout_ms, ended_at, end_reason, create_ms, navigations, actions, captures, ",
            "requests, bytes_received, bytes_sent, blocked_requests, egress_denied, logs_truncated, ",
            "recording_state, recording_truncated, recording_bytes, handoff_id, handoff_state, ",
            "handoff_reason, handoff_mode, handoff_link_id, handoff_requested_at, ",
            "handoff_deadline, handoff_ended_at, created_by, source, failure ",
            "FROM sessions ",
            $tail
        )
    };
}

/// A session about to be created.
pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub account_id: &'a AccountId,
    pub runner_id: &'a RunnerId,
    pub options: &'a serde_json::Value,
    pub now: Millis,
    pub expires_at: Millis,
    pub idle_timeout_ms: i64,
    /// `key_…` or `usr_…`.
    pub created_by: Option<&'a str>,
    /// `api`, `mcp` or `dashboard`.
    pub source: Option<&'a str>,
}

#[derive(Clone)]
pub struct SessionStore {
    db: Db,
}

impl SessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts the session as `starting` if the account has fewer than `cap` live sessions.
    /// Returns false (and inserts nothing) when the cap is reached.
    pub async fn insert_under_cap(
        &self,
        new: &NewSession<'_>,
        cap: Option<u32>,
    ) -> Result<bool, StoreError> {
        let options = new.options.to_string();
        // The count and the insert, run inside a transaction that already holds the lock.
        macro_rules! count_and_insert {
            ($tx:expr) => {{
                let full = match cap {
                    None => false,
                    Some(cap) => {
                        let live: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM sessions WHERE account_id = $1 \
                             AND status IN ('starting', 'active', 'closing')",
                        )
                        .bind(new.account_id.as_str())
                        .fetch_one(&mut *$tx)
                        .await?;
                        live >= i64::from(cap)
                    }
                };
                if full {
                    false
                } else {
                    sqlx::query(
                        "INSERT INTO sessions (id, account_id, runner_id, status, options, \
                         created_at, expires_at, idle_timeout_ms, created_by, source) \
                         VALUES ($1, $2, $3, 'starting', $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(new.id.as_str())
                    .bind(new.account_id.as_str())
                    .bind(new.runner_id.as_str())
                    .bind(&options)
                    .bind(new.now)
                    .bind(new.expires_at)
                    .bind(new.idle_timeout_ms)
                    .bind(new.created_by)
                    .bind(new.source)
                    .execute(&mut *$tx)
                    .await?;
                    true
                }
            }};
        }
        let admitted = match &self.db {
            // Without a cap there is nothing to count: the insert alone, no lock to take.
            _ if cap.is_none() => {
                on_db!(&self.db, pool => {
                    let mut conn = pool.acquire().await?;
                    count_and_insert!(conn)
                })
            }
            Db::Sqlite(pool) => {
                // IMMEDIATE takes the write lock before the count is read.
                let mut tx = pool.begin_write().await?;
                let admitted = count_and_insert!(tx);
                tx.commit().await?;
                admitted
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
                    .bind(new.account_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                let admitted = count_and_insert!(tx);
                tx.commit().await?;
                admitted
            }
        };
        Ok(admitted)
    }

    /// Marks the session active and records `session.created`, in one transaction. `false`
    /// when the session was no longer starting (it ended meanwhile).
    pub async fn activate(
        &self,
        account: &AccountId,
        id: &SessionId,
        runner: &RunnerId,
        started_at: Millis,
        create_ms: i64,
        recorded: bool,
    ) -> Result<bool, StoreError> {
        let event = NewEvent::new(
            account,
            "session.created",
            serde_json::json!({"session_id": id, "status": "active", "runner_id": runner}),
            started_at,
        );
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE sessions SET status = 'active', started_at = $2, create_ms = $3, \
                 recording_state = CASE WHEN $4 THEN 'recording' ELSE recording_state END \
                 WHERE id = $1 AND status = 'starting'",
            )
            .bind(id.as_str())
            .bind(started_at)
            .bind(create_ms)
            .bind(recorded)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    pub async fn mark_closing(&self, id: &SessionId) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE sessions SET status = 'closing' WHERE id = $1 AND status = 'active'",
                &common::args![id.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Writes the terminal state and records the matching `session.*` event, in one
    /// transaction. A session already terminal is left as it is (and no event is recorded).
    /// `failure`: why it failed, a sentence for its page.
    pub async fn finish(
        &self,
        id: &SessionId,
        reason: EndReason,
        ended_at: Millis,
        counters: &Counters,
        failure: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let status = reason.status();
        let kind = match status {
            SessionStatus::Failed => "session.failed",
            SessionStatus::TimedOut => "session.timed_out",
            _ => "session.ended",
        };
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let account: Option<String> = sqlx::query_scalar(
                "SELECT account_id FROM sessions WHERE id = $1 \
                 AND status IN ('starting', 'active', 'closing')",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE sessions SET status = $2, end_reason = $3, ended_at = $4, \
                 navigations = $5, actions = $6, captures = $7, requests = $8, \
                 bytes_received = $9, blocked_requests = $10, bytes_sent = $11, egress_denied = $12, \
                 failure = COALESCE(failure, $13) \
                 WHERE id = $1 AND status IN ('starting', 'active', 'closing')",
            )
            .bind(id.as_str())
            .bind(reason.status().as_str())
            .bind(reason.as_str())
            .bind(ended_at)
            .bind(n(counters.navigations))
            .bind(n(counters.actions))
            .bind(n(counters.captures))
            .bind(n(counters.requests))
            .bind(n(counters.bytes_received))
            .bind(n(counters.blocked_requests))
            .bind(n(counters.bytes_sent))
            .bind(n(counters.egress_denied))
            .bind(failure)
            .execute(&mut *tx)
            .await?;
            // A session that never became active (no browser) gets no event.
            if let Some(account) = account.filter(|_| reason != EndReason::StartFailed) {
                let event = NewEvent::new(
                    &AccountId::from_trusted(account),
                    kind,
                    serde_json::json!({
                        "session_id": id, "status": status.as_str(), "end_reason": reason.as_str()
                    }),
                    ended_at,
                );
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets a session that never started (no browser slot became free in time).
    pub async fn delete_unstarted(&self, id: &SessionId) -> Result<(), StoreError> {
        self.db
            .execute(
                "DELETE FROM sessions WHERE id = $1 AND status = 'starting'",
                &common::args![id.as_str()],
            )
            .await?;
        Ok(())
    }

    pub async fn get(
        &self,
        account: &AccountId,
        id: &SessionId,
    ) -> Result<SessionRecord, StoreError> {
        let row: Row = self
            .db
            .fetch_one(
                select_sessions!("WHERE account_id = $1 AND id = $2"),
                &common::args![account.as_str(), id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    /// A session by id alone, for routing (which runner holds it); never for answering a client.
    pub async fn locate(&self, id: &SessionId) -> Result<SessionRecord, StoreError> {
        let row: Row = self
            .db
            .fetch_one(
                select_sessions!("WHERE id = $1"),
                &common::args![id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    /// One page of the account's sessions, newest first, optionally only live ones.
    pub async fn list(
        &self,
        account: &AccountId,
        live_only: bool,
        starting_after: Option<&SessionId>,
        limit: i64,
    ) -> Result<(Vec<SessionRecord>, bool), StoreError> {
        let cursor = starting_after.map(SessionId::as_str).unwrap_or("ses_~");
        let sql = if live_only {
            select_sessions!(
                "WHERE account_id = $1 AND id < $2 \
                 AND status IN ('starting', 'active', 'closing') ORDER BY id DESC LIMIT $3"
            )
        } else {
            select_sessions!("WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
        };
        let (rows, has_more) = self
            .db
            .fetch_page::<Row>(sql, account.as_str(), cursor, limit)
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), has_more))
    }

    /// Marks every live session of `runner` as failed (its browsers are gone), with a
    /// `session.failed` event each; returns their ids.
    pub async fn fail_orphans(
        &self,
        runner: &RunnerId,
        now: Millis,
    ) -> Result<Vec<SessionId>, StoreError> {
        let rows: Vec<(String, String)> = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(String, String)> = sqlx::query_as(
                "UPDATE sessions SET status = 'failed', end_reason = 'runner_lost', ended_at = $2, \
                 failure = COALESCE(failure, 'The server hosting the session stopped without closing it.') \
                 WHERE runner_id = $1 AND status IN ('starting', 'active', 'closing') \
                 RETURNING id, account_id",
            )
            .bind(runner.as_str())
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for (id, account) in &rows {
                let event = NewEvent::new(
                    &AccountId::from_trusted(account.clone()),
                    "session.failed",
                    serde_json::json!({"session_id": id, "status": "failed", "end_reason": "runner_lost"}),
                    now,
                );
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows
        });
        Ok(rows
            .into_iter()
            .map(|(id, _)| SessionId::from_trusted(id))
            .collect())
    }
}
