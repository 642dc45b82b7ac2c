//! Handing a session to a person and taking it back. While a handoff is `requested` the session
//! does not idle out; it ends when the person (the live page's *Done*) or the API completes it,
//! or at its deadline (`expired` — the session stays active). Each change is written to the
//! session's row (`handoff_*`) with its webhook event in one transaction, and the handoff's live
//! link is revoked when it ends. Waiters (`POST …/wait {"handoff": "completed"}`) follow the
//! live session's watch.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, HandoffId, LiveLinkId, SessionId},
    on_db,
    outbox::NewEvent,
};
use tokio::sync::watch;

use crate::{Runner, RunnerError, live::LiveSession};

/// Where a session's handoff stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffPhase {
    /// No handoff was requested.
    None,
    Requested,
    Completed,
    Expired,
}

impl HandoffPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffPhase::None => "none",
            HandoffPhase::Requested => "requested",
            HandoffPhase::Completed => "completed",
            HandoffPhase::Expired => "expired",
        }
    }
}

/// The current handoff of a live session.
#[derive(Clone, Debug)]
pub struct HandoffStatus {
    pub phase: HandoffPhase,
    pub id: Option<HandoffId>,
    pub link: Option<LiveLinkId>,
    pub deadline: Millis,
}

impl Default for HandoffStatus {
    fn default() -> Self {
        HandoffStatus {
            phase: HandoffPhase::None,
            id: None,
            link: None,
            deadline: 0,
        }
    }
}

/// A handoff to start.
#[derive(Clone, Debug)]
pub struct HandoffRequest {
    pub id: HandoffId,
    pub reason: String,
    /// `view` or `interact`.
    pub mode: String,
    /// The live link made for it (revoked when the handoff ends).
    pub link: LiveLinkId,
    /// The link's URL, for the webhook.
    pub live_url: String,
    pub deadline: Millis,
}

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("the session is not live")]
    NotFound,
    #[error("a handoff is already waiting for a person")]
    Pending,
    #[error("no handoff is waiting for a person")]
    NotPending,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A live session's handoff, as its waiters see it.
pub(crate) type HandoffCell = watch::Sender<HandoffStatus>;

impl LiveSession {
    /// A handoff is waiting for a person (the idle timeout is paused).
    pub(crate) fn handoff_pending(&self) -> bool {
        self.handoff.borrow().phase == HandoffPhase::Requested
    }
}

impl Runner {
    fn live_of(
        &self,
        account: &AccountId,
        id: &SessionId,
    ) -> Result<std::sync::Arc<LiveSession>, HandoffError> {
        self.map()
            .get(id)
            .filter(|l| &l.account_id == account)
            .cloned()
            .ok_or(HandoffError::NotFound)
    }

    /// Puts the session in `waiting_for_human` and announces `session.handoff.requested`.
    pub async fn request_handoff(
        &self,
        account: &AccountId,
        id: &SessionId,
        req: &HandoffRequest,
    ) -> Result<(), HandoffError> {
        let live = self.live_of(account, id)?;
        // Under the lock the check, the write and the change seen by waiters are one step.
        let _one = live.handoff_lock.lock().await;
        if live.handoff.borrow().phase == HandoffPhase::Requested {
            return Err(HandoffError::Pending);
        }
        let now = self.clock.now_ms();
        write_request(self.store.db(), account, id, req, now).await?;
        live.handoff.send_replace(HandoffStatus {
            phase: HandoffPhase::Requested,
            id: Some(req.id.clone()),
            link: Some(req.link.clone()),
            deadline: req.deadline,
        });
        self.events_recorded();
        Ok(())
    }

    /// Ends the waiting handoff as `completed` (`by`: who, for the event); the session is
    /// `active` again and its idle timer starts afresh.
    pub async fn complete_handoff(
        &self,
        account: &AccountId,
        id: &SessionId,
        by: &str,
    ) -> Result<HandoffId, HandoffError> {
        let live = self.live_of(account, id)?;
        self.end_handoff(&live, HandoffPhase::Completed, by).await
    }

    /// The session's handoff now, and a receiver of its changes.
    pub fn handoff(
        &self,
        account: &AccountId,
        id: &SessionId,
    ) -> Result<watch::Receiver<HandoffStatus>, RunnerError> {
        self.map()
            .get(id)
            .filter(|l| &l.account_id == account)
            .map(|l| l.handoff.subscribe())
            .ok_or(RunnerError::NotFound)
    }

    /// Ends the handoffs whose deadline passed (`expired`); called by the lifecycle tick.
    pub(crate) async fn expire_handoffs(&self, now: Millis) {
        let due: Vec<_> = self
            .map()
            .values()
            .filter(|l| {
                let h = l.handoff.borrow();
                h.phase == HandoffPhase::Requested && now >= h.deadline
            })
            .cloned()
            .collect();
        for live in due {
            if let Err(err) = self
                .end_handoff(&live, HandoffPhase::Expired, "timeout")
                .await
            {
                tracing::warn!(session.id = %live.id, error = %err, "a handoff could not be expired");
            }
        }
    }

    async fn end_handoff(
        &self,
        live: &LiveSession,
        phase: HandoffPhase,
        by: &str,
    ) -> Result<HandoffId, HandoffError> {
        let _one = live.handoff_lock.lock().await;
        let (handoff, link) = {
            let h = live.handoff.borrow();
            match (h.phase, h.id.clone(), h.link.clone()) {
                (HandoffPhase::Requested, Some(id), Some(link)) => (id, link),
                _ => return Err(HandoffError::NotPending),
            }
        };
        let now = self.clock.now_ms();
        write_end(self.store.db(), live, &handoff, &link, phase, by, now).await?;
        live.handoff.send_modify(|h| h.phase = phase);
        live.last_activity
            .store(now, std::sync::atomic::Ordering::SeqCst);
        self.events_recorded();
        Ok(handoff)
    }
}

async fn write_request(
    db: &Db,
    account: &AccountId,
    id: &SessionId,
    req: &HandoffRequest,
    now: Millis,
) -> Result<(), StoreError> {
    let event = NewEvent::new(
        account,
        "session.handoff.requested",
        serde_json::json!({
            "session_id": id,
            "handoff_id": req.id,
            "reason": req.reason,
            "mode": req.mode,
            "live_url": req.live_url,
            "expires_at": common::clock::rfc3339(req.deadline),
        }),
        now,
    );
    on_db!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let n = sqlx::query(
            "UPDATE sessions SET handoff_id = $2, handoff_state = 'requested', \
             handoff_reason = $3, handoff_mode = $4, handoff_link_id = $5, \
             handoff_requested_at = $6, handoff_deadline = $7, handoff_ended_at = NULL \
             WHERE id = $1 AND status = 'active'",
        )
        .bind(id.as_str())
        .bind(req.id.as_str())
        .bind(&req.reason)
        .bind(&req.mode)
        .bind(req.link.as_str())
        .bind(now)
        .bind(req.deadline)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::NotFound);
        }
        common::insert_event!(event).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

async fn write_end(
    db: &Db,
    live: &LiveSession,
    handoff: &HandoffId,
    link: &LiveLinkId,
    phase: HandoffPhase,
    by: &str,
    now: Millis,
) -> Result<(), StoreError> {
    let event = NewEvent::new(
        &live.account_id,
        match phase {
            HandoffPhase::Expired => "session.handoff.expired",
            _ => "session.handoff.completed",
        },
        serde_json::json!({"session_id": live.id, "handoff_id": handoff, "by": by}),
        now,
    );
    on_db!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let n = sqlx::query(
            "UPDATE sessions SET handoff_state = $3, handoff_ended_at = $4 \
             WHERE id = $1 AND handoff_id = $2 AND handoff_state = 'requested'",
        )
        .bind(live.id.as_str())
        .bind(handoff.as_str())
        .bind(phase.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE live_links SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(link.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if n == 1 {
            common::insert_event!(event).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}
