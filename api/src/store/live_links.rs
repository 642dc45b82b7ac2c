//! SQL for shareable live links (`live_links`) and the account's list of origins allowed to frame
//! the live page. A link is found by the SHA-256 of its one-time token; it is usable while it is
//! neither revoked, expired nor exchanged, and its session is live. Exchanging is one atomic
//! update, so a token works once.

use common::{
    Db, StoreError,
    clock::Millis,
    ids::{AccountId, LiveLinkId, SessionId},
};

/// A live link as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LiveLink {
    pub id: String,
    pub account_id: String,
    pub session_id: String,
    /// `view` or `interact`.
    pub mode: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub exchanged_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Why a link can no longer be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    Revoked,
    Expired,
    Used,
    SessionEnded,
}

impl Gone {
    /// A sentence for the person who opened the link.
    pub fn explain(self) -> &'static str {
        match self {
            Gone::Revoked => "This live link was revoked by its owner.",
            Gone::Expired => "This live link has expired.",
            Gone::Used => {
                "This live link was already opened; a link works once. Ask for a new one."
            }
            Gone::SessionEnded => "The browser session behind this link has ended.",
        }
    }
}

/// What opening a link finds.
#[derive(Debug)]
pub enum Lookup {
    Usable(LiveLink),
    Gone(Gone),
    Unknown,
}

/// A link to create.
pub struct NewLink<'a> {
    pub id: &'a LiveLinkId,
    pub account: &'a AccountId,
    pub session: &'a SessionId,
    pub mode: &'a str,
    pub token_hash: &'a str,
    pub created_by: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
}

#[derive(Clone)]
pub struct LiveLinkStore {
    db: Db,
}

/// A link's columns (table alias `l`), for `concat!`.
macro_rules! columns {
    () => {
        "l.id, l.account_id, l.session_id, l.mode, l.created_at, l.expires_at, l.exchanged_at, \
         l.revoked_at"
    };
}

impl LiveLinkStore {
    pub fn new(db: Db) -> Self {
        LiveLinkStore { db }
    }

    pub async fn create(&self, link: &NewLink<'_>) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO live_links (id, account_id, session_id, mode, token_hash, created_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &common::args![
                    link.id.as_str(),
                    link.account.as_str(),
                    link.session.as_str(),
                    link.mode,
                    link.token_hash,
                    link.created_by,
                    link.now,
                    link.expires_at
                ],
            )
            .await?;
        Ok(())
    }

    /// The link whose token hashes to `token_hash`, and whether it can still be opened.
    pub async fn lookup(&self, token_hash: &str, now: Millis) -> Result<Lookup, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            link: LiveLink,
            status: String,
        }
        let row: Option<Row> = self
            .db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    columns!(),
                    ", s.status FROM live_links l ",
                    "JOIN sessions s ON s.id = l.session_id WHERE l.token_hash = $1"
                ),
                &common::args![token_hash],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Lookup::Unknown);
        };
        let live = matches!(row.status.as_str(), "starting" | "active");
        let l = row.link;
        Ok(if l.revoked_at.is_some() {
            Lookup::Gone(Gone::Revoked)
        } else if !live {
            Lookup::Gone(Gone::SessionEnded)
        } else if now >= l.expires_at {
            Lookup::Gone(Gone::Expired)
        } else if l.exchanged_at.is_some() {
            Lookup::Gone(Gone::Used)
        } else {
            Lookup::Usable(l)
        })
    }

    /// Marks the link exchanged if it still can be (once: a second exchange finds it used).
    pub async fn exchange(&self, token_hash: &str, now: Millis) -> Result<Lookup, StoreError> {
        let claimed = self
            .db
            .execute(
                "UPDATE live_links SET exchanged_at = $2 WHERE token_hash = $1 \
                 AND exchanged_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
                 AND session_id IN (SELECT id FROM sessions WHERE status IN ('starting', 'active'))",
                &common::args![token_hash, now],
            )
            .await?;
        if claimed == 1 {
            // Read back as exchanged: report it usable to this caller only.
            return Ok(match self.lookup(token_hash, now).await? {
                Lookup::Gone(Gone::Used) | Lookup::Usable(_) => self
                    .by_hash(token_hash)
                    .await?
                    .map_or(Lookup::Unknown, Lookup::Usable),
                other => other,
            });
        }
        self.lookup(token_hash, now).await
    }

    async fn by_hash(&self, token_hash: &str) -> Result<Option<LiveLink>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM live_links l WHERE l.token_hash = $1"
                ),
                &common::args![token_hash],
            )
            .await
    }

    /// Why viewers who came through link `id` must leave (`None`: they may stay).
    pub async fn closed(&self, id: &str, now: Millis) -> Result<Option<Gone>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            expires_at: i64,
            revoked_at: Option<i64>,
        }
        let row: Option<Row> = self
            .db
            .fetch_optional(
                "SELECT expires_at, revoked_at FROM live_links WHERE id = $1",
                &common::args![id],
            )
            .await?;
        Ok(match row {
            None => Some(Gone::Revoked),
            Some(r) if r.revoked_at.is_some() => Some(Gone::Revoked),
            Some(r) if now >= r.expires_at => Some(Gone::Expired),
            Some(_) => None,
        })
    }

    /// Revokes one of the account's links of `session`; answers whether it existed.
    pub async fn revoke(
        &self,
        account: &AccountId,
        session: &SessionId,
        id: &LiveLinkId,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE live_links SET revoked_at = COALESCE(revoked_at, $4) \
                 WHERE id = $1 AND account_id = $2 AND session_id = $3",
                &common::args![id.as_str(), account.as_str(), session.as_str(), now],
            )
            .await?;
        Ok(n == 1)
    }

    /// The origins allowed to frame the account's live pages.
    pub async fn frame_ancestors(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let raw: Option<String> = self
            .db
            .scalar_optional(
                "SELECT live_frame_ancestors FROM accounts WHERE id = $1",
                &common::args![account],
            )
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    pub async fn set_frame_ancestors(
        &self,
        account: &AccountId,
        origins: &[String],
    ) -> Result<(), StoreError> {
        let raw = serde_json::to_string(origins).unwrap_or_else(|_| "[]".into());
        self.db
            .execute(
                "UPDATE accounts SET live_frame_ancestors = $2 WHERE id = $1",
                &common::args![account.as_str(), &raw],
            )
            .await?;
        Ok(())
    }
}
