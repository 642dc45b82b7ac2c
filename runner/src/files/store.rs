//! SQL for session files: downloads (with their state and where their sealed bytes are) and
//! uploads. Every read takes the account and the session; another account's file is not found.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, DownloadId, SessionId, UploadId},
    on_db,
    outbox::NewEvent,
};

/// Where a download is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadState {
    InProgress,
    Completed,
    Failed,
    /// Cancelled for being over the plan's limit.
    TooLarge,
}

impl DownloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            DownloadState::InProgress => "in_progress",
            DownloadState::Completed => "completed",
            DownloadState::Failed => "failed",
            DownloadState::TooLarge => "too_large",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "completed" => DownloadState::Completed,
            "too_large" => DownloadState::TooLarge,
            "in_progress" => DownloadState::InProgress,
            _ => DownloadState::Failed,
        }
    }
}

/// One download of a session.
#[derive(Clone, Debug)]
pub struct DownloadRecord {
    pub id: DownloadId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub filename: String,
    pub url: String,
    pub mime_type: Option<String>,
    pub state: DownloadState,
    pub size: i64,
    pub sha256: Option<String>,
    pub blob_address: Option<String>,
    pub created_at: Millis,
    pub completed_at: Option<Millis>,
}

#[derive(sqlx::FromRow)]
struct DownloadRow {
    id: String,
    account_id: String,
    session_id: String,
    filename: String,
    url: String,
    mime_type: Option<String>,
    state: String,
    size: i64,
    sha256: Option<String>,
    blob_address: Option<String>,
    created_at: i64,
    completed_at: Option<i64>,
}

impl From<DownloadRow> for DownloadRecord {
    fn from(r: DownloadRow) -> Self {
        DownloadRecord {
            id: DownloadId::from_trusted(r.id),
            account_id: AccountId::from_trusted(r.account_id),
            session_id: SessionId::from_trusted(r.session_id),
            filename: r.filename,
            url: r.url,
            mime_type: r.mime_type,
            state: DownloadState::parse(&r.state),
            size: r.size,
            sha256: r.sha256,
            blob_address: r.blob_address,
            created_at: r.created_at,
            completed_at: r.completed_at,
        }
    }
}

macro_rules! select_downloads {
    ($tail:literal) => {
        concat!(
            "SELECT id, account_id, session_id, filename, url, mime_type, state, size, sha256, \
             blob_address, created_at, completed_at FROM session_downloads ",
            $tail
        )
    };
}

/// One upload of a session.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UploadRecord {
    pub id: String,
    pub filename: String,
    pub size: i64,
    /// Where the file is inside the session's sandbox (what `DOM.setFileInputFiles` takes).
    pub path: String,
    pub created_at: i64,
}

/// An upload to record.
pub struct NewUpload<'a> {
    pub account: &'a AccountId,
    pub session: &'a SessionId,
    pub id: &'a UploadId,
    pub filename: &'a str,
    pub size: i64,
    pub path: &'a str,
    pub now: Millis,
}

/// A completed download, as recorded.
pub struct Completed<'a> {
    pub size: i64,
    pub sha256: &'a str,
    pub blob_address: &'a str,
    pub now: Millis,
}

#[derive(Clone)]
pub struct FileStore {
    db: Db,
}

impl FileStore {
    pub fn new(db: Db) -> Self {
        FileStore { db }
    }

    /// Records a download that has begun.
    pub async fn begin_download(
        &self,
        account: &AccountId,
        session: &SessionId,
        guid: &str,
        filename: &str,
        url: &str,
        now: Millis,
    ) -> Result<DownloadId, StoreError> {
        let id = DownloadId::generate();
        let mime = super::names::mime_type(filename);
        self.db
            .execute(
                "INSERT INTO session_downloads (id, account_id, session_id, guid, filename, url, \
                 mime_type, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_progress', $8)",
                &common::args![
                    id.as_str(),
                    account.as_str(),
                    session.as_str(),
                    guid,
                    filename,
                    url,
                    mime,
                    now
                ],
            )
            .await?;
        Ok(id)
    }

    /// Marks a download completed and records `session.download.completed`, in one
    /// transaction.
    pub async fn complete_download(
        &self,
        record: &DownloadRecord,
        done: Completed<'_>,
    ) -> Result<(), StoreError> {
        let event = NewEvent::new(
            &record.account_id,
            "session.download.completed",
            serde_json::json!({
                "session_id": record.session_id,
                "download_id": record.id,
                "filename": record.filename,
                "size": done.size,
                "sha256": done.sha256,
            }),
            done.now,
        );
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE session_downloads SET state = 'completed', size = $2, sha256 = $3, \
                 blob_address = $4, completed_at = $5 WHERE id = $1 AND state = 'in_progress'",
            )
            .bind(record.id.as_str())
            .bind(done.size)
            .bind(done.sha256)
            .bind(done.blob_address)
            .bind(done.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                common::insert_event!(event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            if n != 1 {
                // Ended meanwhile (the session's end failed it): not completed after all.
                return Err(StoreError::NotFound);
            }
        });
        Ok(())
    }

    /// Deletes the downloads of accounts on `tier` that began before `before`; answers the blob
    /// addresses of those that were kept.
    pub async fn expire_downloads(
        &self,
        tier: &str,
        before: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let addresses: Vec<Option<String>> = self
            .db
            .scalar_all(
                "DELETE FROM session_downloads WHERE created_at < $2 \
                 AND account_id IN (SELECT id FROM accounts WHERE tier = $1) RETURNING blob_address",
                &common::args![tier, before],
            )
            .await?;
        Ok(addresses.into_iter().flatten().collect())
    }

    /// The bytes of a session's uploads so far.
    pub async fn uploaded_bytes(&self, session: &SessionId) -> Result<i64, StoreError> {
        self.db
            .scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM session_uploads WHERE session_id = $1",
                &common::args![session.as_str()],
            )
            .await
    }

    /// Ends a download that will not complete (`failed` or `too_large`), with its size so far.
    pub async fn end_download(
        &self,
        id: &DownloadId,
        state: DownloadState,
        size: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE session_downloads SET state = $2, size = $3, completed_at = $4 \
                 WHERE id = $1 AND state = 'in_progress'",
                &common::args![id.as_str(), state.as_str(), size, now],
            )
            .await?;
        Ok(())
    }

    /// Marks the downloads of a session still in progress as failed (the session ended).
    pub async fn fail_unfinished(
        &self,
        session: &SessionId,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE session_downloads SET state = 'failed', completed_at = $2 \
                 WHERE session_id = $1 AND state = 'in_progress'",
                &common::args![session.as_str(), now],
            )
            .await?;
        Ok(())
    }

    pub async fn download(
        &self,
        account: &AccountId,
        session: &SessionId,
        id: &DownloadId,
    ) -> Result<DownloadRecord, StoreError> {
        let row: DownloadRow = self
            .db
            .fetch_one(
                select_downloads!("WHERE account_id = $1 AND session_id = $2 AND id = $3"),
                &common::args![account.as_str(), session.as_str(), id.as_str()],
            )
            .await?;
        Ok(row.into())
    }

    /// One page of a session's downloads, oldest first.
    pub async fn downloads(
        &self,
        account: &AccountId,
        session: &SessionId,
        starting_after: Option<&DownloadId>,
        limit: i64,
    ) -> Result<(Vec<DownloadRecord>, bool), StoreError> {
        let rows: Vec<DownloadRow> = self
            .db
            .fetch_all(
                select_downloads!(
                    "WHERE account_id = $1 AND session_id = $2 AND id > $3 ORDER BY id LIMIT $4"
                ),
                &common::args![
                    account.as_str(),
                    session.as_str(),
                    starting_after.map(DownloadId::as_str).unwrap_or(""),
                    limit + 1
                ],
            )
            .await?;
        let (rows, more) = common::db::split_page(rows, limit);
        Ok((rows.into_iter().map(Into::into).collect(), more))
    }

    /// Records an upload placed in the session's upload directory.
    pub async fn add_upload(&self, new: NewUpload<'_>) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO session_uploads (id, account_id, session_id, filename, size, path, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &common::args![
                    new.id.as_str(),
                    new.account.as_str(),
                    new.session.as_str(),
                    new.filename,
                    new.size,
                    new.path,
                    new.now
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn upload(
        &self,
        account: &AccountId,
        session: &SessionId,
        id: &str,
    ) -> Result<UploadRecord, StoreError> {
        self.db
            .fetch_one(
                "SELECT id, filename, size, path, created_at FROM session_uploads \
                 WHERE account_id = $1 AND session_id = $2 AND id = $3",
                &common::args![account.as_str(), session.as_str(), id],
            )
            .await
    }
}
