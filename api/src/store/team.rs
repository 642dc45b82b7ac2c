//! Team membership changes: invitations (create or re-send, revoke, accept) and members (list,
//! change role, remove). Changes that could leave an account without an owner run under the
//! account's row lock and refuse to.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, InviteId, UserId},
    on_db,
};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Invite {
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub role: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<String>,
    pub revoked_at: Option<i64>,
}

impl Invite {
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub fn status(&self, now: Millis) -> &'static str {
        if self.accepted_at.is_some() {
            "accepted"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "pending"
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub joined_at: i64,
    pub mfa_enabled: bool,
}

/// Why a team change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TeamRefusal {
    #[error("already a member")]
    AlreadyMember,
    #[error("the account must keep an owner")]
    LastOwner,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TeamRefusal {
    fn from(e: sqlx::Error) -> Self {
        TeamRefusal::Store(e.into())
    }
}

/// Takes the account's row lock (both backends) and counts its owners.
macro_rules! lock_and_count_owners {
    ($tx:expr, $account:expr) => {{
        sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
            .bind($account.as_str())
            .execute(&mut *$tx)
            .await?;
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE account_id = $1 AND role = 'owner'",
        )
        .bind($account.as_str())
        .fetch_one(&mut *$tx)
        .await?;
        owners
    }};
}

/// An invitation to create (or re-send).
pub struct NewInvite<'a> {
    pub account: &'a AccountId,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    /// `usr_…` or `key_…`.
    pub by: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
}

#[derive(Clone)]
pub struct TeamStore {
    db: Db,
}

impl TeamStore {
    pub fn new(db: Db) -> Self {
        TeamStore { db }
    }

    /// Invites `email`, or refreshes its pending invite (new token and expiry: a re-send).
    /// Returns the invite and whether it was a re-send.
    pub async fn invite(&self, new: &NewInvite<'_>) -> Result<(Invite, bool), TeamRefusal> {
        let NewInvite {
            account,
            email,
            role,
            token_hash,
            by,
            now,
            expires_at,
        } = *new;
        let (id, resent) = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let member: Option<String> = sqlx::query_scalar(
                "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.account_id = $1 AND u.email = $2",
            )
            .bind(account.as_str())
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_some() {
                return Err(TeamRefusal::AlreadyMember);
            }
            let pending: Option<String> = sqlx::query_scalar(
                "SELECT id FROM team_invites WHERE account_id = $1 AND email = $2 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
            )
            .bind(account.as_str())
            .bind(email)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let result = match pending {
                Some(id) => {
                    sqlx::query(
                        "UPDATE team_invites SET token_hash = $2, role = $3, expires_at = $4, \
                         invited_by = $5 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(token_hash)
                    .bind(role)
                    .bind(expires_at)
                    .bind(by)
                    .execute(&mut *tx)
                    .await?;
                    (id, true)
                }
                None => {
                    let id = InviteId::generate().to_string();
                    sqlx::query(
                        "INSERT INTO team_invites (id, account_id, email, role, token_hash, \
                         invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&id)
                    .bind(account.as_str())
                    .bind(email)
                    .bind(role)
                    .bind(token_hash)
                    .bind(by)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                    (id, false)
                }
            };
            tx.commit().await?;
            result
        });
        let invite = self.get_invite(account, &id).await?;
        Ok((invite, resent))
    }

    pub async fn get_invite(&self, account: &AccountId, id: &str) -> Result<Invite, StoreError> {
        const Q: &str = "SELECT id, account_id, email, role, invited_by, created_at, \
             expires_at, accepted_at, accepted_by, revoked_at FROM team_invites \
             WHERE account_id = $1 AND id = $2";
        self.db
            .fetch_one(Q, &common::args![account.as_str(), id])
            .await
    }

    pub async fn invite_by_token(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        const Q: &str = "SELECT id, account_id, email, role, invited_by, created_at, \
             expires_at, accepted_at, accepted_by, revoked_at FROM team_invites \
             WHERE token_hash = $1";
        self.db.fetch_optional(Q, &common::args![token_hash]).await
    }

    /// One page of the account's invites, newest first.
    pub async fn list_invites(
        &self,
        account: &AccountId,
        starting_after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<Invite>, bool), StoreError> {
        const Q: &str = "SELECT id, account_id, email, role, invited_by, created_at, \
             expires_at, accepted_at, accepted_by, revoked_at FROM team_invites \
             WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
        self.db
            .fetch_page(
                Q,
                account.as_str(),
                starting_after.unwrap_or("inv_~"),
                limit,
            )
            .await
    }

    /// Revokes a pending invite.
    pub async fn revoke_invite(
        &self,
        account: &AccountId,
        id: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE team_invites SET revoked_at = $3 WHERE account_id = $1 AND id = $2 \
                 AND accepted_at IS NULL AND revoked_at IS NULL",
                &common::args![account.as_str(), id, now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Makes `user` a member with the invite's role and marks the invite accepted (once).
    pub async fn accept(
        &self,
        invite: &Invite,
        user: &UserId,
        now: Millis,
    ) -> Result<(), TeamRefusal> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE team_invites SET accepted_at = $2, accepted_by = $3 WHERE id = $1 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(&invite.id)
            .bind(now)
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(TeamRefusal::NotFound);
            }
            let inserted = sqlx::query(
                "INSERT INTO memberships (account_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, user_id) DO NOTHING",
            )
            .bind(&invite.account_id)
            .bind(user.as_str())
            .bind(&invite.role)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(TeamRefusal::AlreadyMember);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn members(&self, account: &AccountId) -> Result<Vec<Member>, StoreError> {
        self.db
            .fetch_all(
                "SELECT u.id AS user_id, u.email, u.name, m.role, m.created_at AS joined_at, \
                 (u.totp_secret_enc IS NOT NULL) AS mfa_enabled \
                 FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.account_id = $1 ORDER BY m.created_at, u.id",
                &common::args![account.as_str()],
            )
            .await
    }

    pub async fn member(&self, account: &AccountId, user: &UserId) -> Result<Member, StoreError> {
        self.members(account)
            .await?
            .into_iter()
            .find(|m| m.user_id == user.as_str())
            .ok_or(StoreError::NotFound)
    }

    /// Changes a member's role, keeping at least one owner.
    pub async fn set_role(
        &self,
        account: &AccountId,
        user: &UserId,
        role: &str,
    ) -> Result<(), TeamRefusal> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let owners = lock_and_count_owners!(tx, account);
            let current: Option<String> = sqlx::query_scalar(
                "SELECT role FROM memberships WHERE account_id = $1 AND user_id = $2",
            )
            .bind(account.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let current = current.ok_or(TeamRefusal::NotFound)?;
            if current == "owner" && role != "owner" && owners <= 1 {
                return Err(TeamRefusal::LastOwner);
            }
            sqlx::query("UPDATE memberships SET role = $3 WHERE account_id = $1 AND user_id = $2")
                .bind(account.as_str())
                .bind(user.as_str())
                .bind(role)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes a member (never the last owner). With `revoke_keys`, the API keys they created in
    /// this account are revoked too; returns how many.
    pub async fn remove(
        &self,
        account: &AccountId,
        user: &UserId,
        revoke_keys: bool,
        now: Millis,
    ) -> Result<u64, TeamRefusal> {
        let revoked = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let owners = lock_and_count_owners!(tx, account);
            let current: Option<String> = sqlx::query_scalar(
                "SELECT role FROM memberships WHERE account_id = $1 AND user_id = $2",
            )
            .bind(account.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let current = current.ok_or(TeamRefusal::NotFound)?;
            if current == "owner" && owners <= 1 {
                return Err(TeamRefusal::LastOwner);
            }
            sqlx::query("DELETE FROM memberships WHERE account_id = $1 AND user_id = $2")
                .bind(account.as_str())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            let revoked = if revoke_keys {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $3 WHERE account_id = $1 AND created_by = $2 \
                     AND revoked_at IS NULL",
                )
                .bind(account.as_str())
                .bind(user.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                0
            };
            tx.commit().await?;
            revoked
        });
        Ok(revoked)
    }

    /// Ids of the live API keys `user` created in the account.
    pub async fn keys_created_by(
        &self,
        account: &AccountId,
        user: &UserId,
    ) -> Result<Vec<String>, StoreError> {
        self.db
            .scalar_all(
                "SELECT id FROM api_keys WHERE account_id = $1 AND created_by = $2 \
                 AND revoked_at IS NULL ORDER BY id",
                &common::args![account.as_str(), user.as_str()],
            )
            .await
    }
}
