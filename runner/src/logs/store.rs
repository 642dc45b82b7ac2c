//! SQL for session logs: entries written a batch at a time, read by session (and kind) with a
//! cursor, deleted after the plan's retention. Every read takes the account and the session;
//! another account's session has no logs. An entry's fields are sealed (AES-256-GCM) at rest:
//! they hold URLs and page text, the customer's data.

use base64::Engine;
use common::{
    Db, StoreError,
    clock::Millis,
    crypto::SecretBox,
    db::Backend,
    ids::{AccountId, LogId, SessionId},
};

use super::LogKind;

/// One stored entry.
#[derive(Clone, Debug)]
pub struct LogRecord {
    pub id: LogId,
    pub kind: LogKind,
    pub at: Millis,
    /// The entry's fields (JSON object text).
    pub entry: String,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    id: String,
    kind: String,
    created_at: i64,
    entry: String,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// An entry on its way into the table.
#[derive(serde::Serialize)]
pub struct NewLog {
    pub id: String,
    pub kind: &'static str,
    pub at: Millis,
    pub entry: String,
}

#[derive(Clone)]
pub struct LogStore {
    db: Db,
    sealer: SecretBox,
}

impl LogStore {
    pub fn new(db: Db, sealer: SecretBox) -> Self {
        LogStore { db, sealer }
    }

    /// A row read back; an entry that cannot be opened (another master key) reads as `{}`.
    fn record(&self, r: LogRow) -> LogRecord {
        let entry = B64
            .decode(&r.entry)
            .ok()
            .and_then(|sealed| self.sealer.open(&sealed).ok())
            .unwrap_or_else(|| "{}".to_owned());
        LogRecord {
            id: LogId::from_trusted(r.id),
            kind: LogKind::parse(&r.kind).unwrap_or(LogKind::Page),
            at: r.created_at,
            entry,
        }
    }

    /// Writes a batch of a session's entries in one statement (the batch travels as one JSON
    /// array; each backend unpacks it with its own JSON functions).
    pub async fn insert(
        &self,
        account: &AccountId,
        session: &SessionId,
        batch: &[NewLog],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sealed = batch
            .iter()
            .map(|n| {
                Ok(NewLog {
                    id: n.id.clone(),
                    kind: n.kind,
                    at: n.at,
                    entry: B64.encode(self.sealer.seal(&n.entry)?),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rows = serde_json::to_string(&sealed).map_err(|e| StoreError::Internal(e.into()))?;
        let sql = match self.db.backend() {
            Backend::Sqlite => {
                "INSERT INTO session_logs (id, account_id, session_id, kind, created_at, entry) \
                 SELECT json_extract(value, '$.id'), $2, $3, json_extract(value, '$.kind'), \
                 json_extract(value, '$.at'), json_extract(value, '$.entry') FROM json_each($1)"
            }
            Backend::Postgres => {
                "INSERT INTO session_logs (id, account_id, session_id, kind, created_at, entry) \
                 SELECT e->>'id', $2, $3, e->>'kind', (e->>'at')::BIGINT, e->>'entry' \
                 FROM jsonb_array_elements($1::jsonb) AS e"
            }
        };
        self.db
            .execute(
                sql,
                &common::args![rows.as_str(), account.as_str(), session.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Notes that the session's logs reached the plan's limit.
    pub async fn mark_truncated(&self, session: &SessionId) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE sessions SET logs_truncated = TRUE WHERE id = $1",
                &common::args![session.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Whether the session's logs reached the plan's limit.
    pub async fn truncated(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<bool, StoreError> {
        Ok(self
            .db
            .scalar_optional::<bool>(
                "SELECT logs_truncated FROM sessions WHERE id = $1 AND account_id = $2",
                &common::args![session.as_str(), account.as_str()],
            )
            .await?
            .unwrap_or(false))
    }

    /// A page of the session's entries (of one kind, or all), oldest first.
    pub async fn list(
        &self,
        account: &AccountId,
        session: &SessionId,
        kind: Option<LogKind>,
        starting_after: Option<&LogId>,
        limit: i64,
    ) -> Result<(Vec<LogRecord>, bool), StoreError> {
        let after = starting_after.map(LogId::as_str).unwrap_or("");
        let rows: Vec<LogRow> = match kind {
            Some(kind) => {
                self.db
                    .fetch_all(
                        "SELECT id, kind, created_at, entry FROM session_logs \
                         WHERE session_id = $1 AND account_id = $2 AND kind = $3 AND id > $4 \
                         ORDER BY id LIMIT $5",
                        &common::args![
                            session.as_str(),
                            account.as_str(),
                            kind.as_str(),
                            after,
                            limit + 1
                        ],
                    )
                    .await?
            }
            None => {
                self.db
                    .fetch_all(
                        "SELECT id, kind, created_at, entry FROM session_logs \
                         WHERE session_id = $1 AND account_id = $2 AND id > $3 \
                         ORDER BY id LIMIT $4",
                        &common::args![session.as_str(), account.as_str(), after, limit + 1],
                    )
                    .await?
            }
        };
        let (rows, more) = common::db::split_page(rows, limit);
        Ok((rows.into_iter().map(|r| self.record(r)).collect(), more))
    }

    /// Deletes the logs of `tier`'s accounts written before `before`.
    pub async fn expire(&self, tier: &str, before: Millis) -> Result<u64, StoreError> {
        self.db
            .execute(
                "DELETE FROM session_logs WHERE created_at < $2 \
                 AND account_id IN (SELECT id FROM accounts WHERE tier = $1)",
                &common::args![tier, before],
            )
            .await
    }
}
