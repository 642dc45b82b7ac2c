//! The `runners` table: which runners exist, where they are reached, how full they are and
//! whether they are alive. A runner registers when it starts and heartbeats while it runs; any
//! node reaps runners whose heartbeat is older than the timeout (one UPDATE decides, so two
//! nodes never both reap the same runner), after which their live sessions are failed.

use common::{Db, StoreError, clock::Millis, ids::RunnerId};

/// A runner's lifecycle state as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerState {
    Active,
    /// Shutting down: takes no new sessions, finishes (or ends) its own.
    Draining,
    Stopped,
    /// Silent past the heartbeat timeout; its sessions were failed.
    Dead,
}

impl RunnerState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerState::Active => "active",
            RunnerState::Draining => "draining",
            RunnerState::Stopped => "stopped",
            RunnerState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> RunnerState {
        match s {
            "active" => RunnerState::Active,
            "draining" => RunnerState::Draining,
            "stopped" => RunnerState::Stopped,
            _ => RunnerState::Dead,
        }
    }
}

/// One row of the registry.
#[derive(Clone, Debug)]
pub struct RunnerRecord {
    pub id: RunnerId,
    pub address: Option<String>,
    pub capacity: i64,
    pub version: String,
    pub state: RunnerState,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    pub live_sessions: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    address: Option<String>,
    capacity: i64,
    version: String,
    state: String,
    started_at: i64,
    heartbeat_at: i64,
    live_sessions: i64,
}

impl From<Row> for RunnerRecord {
    fn from(r: Row) -> Self {
        RunnerRecord {
            id: RunnerId::from_trusted(r.id),
            address: r.address,
            capacity: r.capacity,
            version: r.version,
            state: RunnerState::parse(&r.state),
            started_at: r.started_at,
            heartbeat_at: r.heartbeat_at,
            live_sessions: r.live_sessions,
        }
    }
}

/// What a heartbeat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    Alive,
    /// Another node declared this runner dead (it was silent too long): its sessions are
    /// already failed, so it must end them locally and register afresh.
    DeclaredDead,
}

#[derive(Clone)]
pub struct RunnerRegistry {
    db: Db,
}

impl RunnerRegistry {
    pub fn new(db: Db) -> Self {
        RunnerRegistry { db }
    }

    /// Registers (or re-registers, after a restart) a runner as active.
    pub async fn register(
        &self,
        id: &RunnerId,
        address: Option<&str>,
        capacity: i64,
        version: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute("INSERT INTO runners (id, address, capacity, version, state, started_at, heartbeat_at, live_sessions) \
                 VALUES ($1, $2, $3, $4, 'active', $5, $5, 0) \
                 ON CONFLICT (id) DO UPDATE SET address = $2, capacity = $3, version = $4, \
                 state = 'active', started_at = $5, heartbeat_at = $5, live_sessions = 0", &common::args![id.as_str(), address, capacity, version, now]).await?;
        Ok(())
    }

    /// Records that the runner is alive with `live` sessions.
    pub async fn heartbeat(
        &self,
        id: &RunnerId,
        live: i64,
        now: Millis,
    ) -> Result<Beat, StoreError> {
        let updated = self
            .db
            .execute(
                "UPDATE runners SET heartbeat_at = $2, live_sessions = $3 \
                 WHERE id = $1 AND state IN ('active', 'draining')",
                &common::args![id.as_str(), now, live],
            )
            .await?;
        Ok(if updated == 1 {
            Beat::Alive
        } else {
            Beat::DeclaredDead
        })
    }

    pub async fn set_state(&self, id: &RunnerId, state: RunnerState) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE runners SET state = $2 WHERE id = $1 AND state <> 'dead'",
                &common::args![id.as_str(), state.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Marks every active or draining runner silent since before `silent_since` as dead and
    /// returns them. Each runner is returned by exactly one caller.
    pub async fn reap(&self, silent_since: Millis) -> Result<Vec<RunnerId>, StoreError> {
        let rows: Vec<(String,)> = self
            .db
            .fetch_all(
                "UPDATE runners SET state = 'dead' \
                 WHERE state IN ('active', 'draining') AND heartbeat_at < $1 RETURNING id",
                &common::args![silent_since],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id,)| RunnerId::from_trusted(id))
            .collect())
    }

    pub async fn get(&self, id: &RunnerId) -> Result<RunnerRecord, StoreError> {
        let row: Row = self.db.fetch_one("SELECT id, address, capacity, version, state, started_at, heartbeat_at, live_sessions \
                 FROM runners WHERE id = $1", &common::args![id.as_str()]).await?;
        Ok(row.into())
    }

    /// Active runners with an address and their live sessions, counted from the sessions table
    /// (exact, unlike the heartbeat's figure), for placing a new session.
    pub async fn placeable(&self) -> Result<Vec<(RunnerRecord, i64)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Loaded {
            #[sqlx(flatten)]
            runner: Row,
            live: i64,
        }
        let rows: Vec<Loaded> = self
            .db
            .fetch_all(
                "SELECT r.id, r.address, r.capacity, r.version, r.state, r.started_at, \
                 r.heartbeat_at, r.live_sessions, \
                 (SELECT COUNT(*) FROM sessions s WHERE s.runner_id = r.id \
                  AND s.status IN ('starting', 'active', 'closing')) AS live \
                 FROM runners r WHERE r.state = 'active' AND r.address IS NOT NULL",
                &common::args![],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|l| (l.runner.into(), l.live))
            .collect())
    }

    /// Every registered runner, newest first.
    pub async fn list(&self) -> Result<Vec<RunnerRecord>, StoreError> {
        let rows: Vec<Row> = self.db.fetch_all("SELECT id, address, capacity, version, state, started_at, heartbeat_at, live_sessions \
                 FROM runners ORDER BY started_at DESC, id", &common::args![]).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
