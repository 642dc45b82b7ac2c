//! A session's last frame: a JPEG of the page it was on, taken as the session ends (in the
//! background, before its browser context is disposed), sealed into the blob store like the
//! recording, and deleted with the logs and recording after the plan's retention. Not taken for
//! a session whose recording is paused at its end (the user's switch for sensitive pages), nor
//! for one whose browser is gone. An operator can turn them off (`DRIFTSTACK_LAST_FRAME=off`):
//! the capture costs the browser ≈ 45 ms of background work per session (docs/PERFORMANCE.md).

use std::time::Duration;

use common::{
    StoreError,
    clock::{Clock, Millis},
    ids::{AccountId, SessionId},
};

use super::Recordings;
use crate::{
    chromium::SessionPage,
    spec::{CaptureFormat, CaptureSpec},
};

/// How long the page may take to give its last frame before the session's browser is recycled
/// without one.
const CAPTURE_WITHIN: Duration = Duration::from_secs(2);
/// JPEG quality of a last frame: readable text at a fraction of a PNG's bytes.
const QUALITY: u8 = 70;

/// Whether last frames are taken on this node (`DRIFTSTACK_LAST_FRAME`, `on` unless `off`).
pub fn wanted() -> bool {
    std::env::var("DRIFTSTACK_LAST_FRAME").map_or(true, |v| v != "off")
}

/// A stored last frame, as its row says.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FrameRow {
    pub blob_address: String,
    pub bytes: i64,
    pub taken_at: Millis,
}

/// Whose last frame a recycled browser's page gives, handed to the pool with the browser.
pub struct FrameTarget {
    pub recordings: Recordings,
    pub account: AccountId,
    pub session: SessionId,
    pub clock: Clock,
}

impl FrameTarget {
    /// Captures `page` and stores it as the session's last frame. A page that cannot be
    /// captured (closed, hung, crashed) leaves the session without one, with a log line.
    pub async fn keep(self, page: &SessionPage) {
        let spec = CaptureSpec {
            format: CaptureFormat::Jpeg,
            full_page: false,
            selector: None,
            quality: Some(QUALITY),
        };
        let jpeg = match page.capture(&spec, CAPTURE_WITHIN).await {
            Ok(jpeg) if !jpeg.is_empty() => jpeg,
            Ok(_) => return,
            Err(err) => {
                tracing::info!(session.id = %self.session, error = %err, "no last frame: the page could not be captured");
                return;
            }
        };
        if let Err(err) = self.store(jpeg).await {
            tracing::warn!(session.id = %self.session, error = %err, "a last frame could not be stored");
        }
    }

    async fn store(&self, jpeg: Vec<u8>) -> anyhow::Result<()> {
        let r = &self.recordings;
        let sealed = r.sealer.seal_bytes(&jpeg)?;
        let bytes = i64::try_from(sealed.len()).unwrap_or(i64::MAX);
        let address = r.put_blob(sealed).await?;
        let stored = r
            .store
            .db
            .execute(
                "INSERT INTO session_frames (session_id, account_id, blob_address, bytes, taken_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO NOTHING",
                &common::args![
                    self.session.as_str(),
                    self.account.as_str(),
                    address.as_str(),
                    bytes,
                    self.clock.now_ms()
                ],
            )
            .await;
        if !matches!(stored, Ok(1)) {
            // Not recorded (the session is gone, or already has one): nothing may point at it.
            r.blobs.delete(&address).await?;
        }
        stored?;
        Ok(())
    }
}

impl Recordings {
    /// The session's last frame (JPEG bytes) and when it was taken; `None` when it has none or
    /// is not the account's.
    pub async fn last_frame(
        &self,
        account: &AccountId,
        session: &SessionId,
    ) -> Result<Option<(Vec<u8>, Millis)>, super::RecordingError> {
        let row: Option<FrameRow> = self
            .store
            .db
            .fetch_optional(
                "SELECT blob_address, bytes, taken_at FROM session_frames \
                 WHERE session_id = $1 AND account_id = $2",
                &common::args![session.as_str(), account.as_str()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let jpeg = self.open_blob(&row.blob_address).await?;
        Ok(Some((jpeg, row.taken_at)))
    }

    /// Deletes the last frames of `tier`'s accounts taken before `before`; answers how many.
    pub async fn expire_frames(&self, tier: &str, before: Millis) -> Result<usize, StoreError> {
        let addresses: Vec<String> = self
            .store
            .db
            .scalar_all(
                "DELETE FROM session_frames WHERE taken_at < $2 \
                 AND account_id IN (SELECT id FROM accounts WHERE tier = $1) \
                 RETURNING blob_address",
                &common::args![tier, before],
            )
            .await?;
        self.delete_blobs(&addresses, "last frame").await;
        Ok(addresses.len())
    }
}
