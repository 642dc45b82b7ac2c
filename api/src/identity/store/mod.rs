//! SQL for dashboard identity: users' credentials, sign-in sessions with their access and
//! refresh tokens, one-time links, recovery codes and throttling windows. Tokens and codes are
//! stored only as SHA-256 digests.

use common::{
    Db, StoreError,
    clock::Millis,
    db::BeginWrite,
    ids::{AccountId, UserId},
    on_db,
};

/// A user as authentication sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserAuth {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<i64>,
    pub totp_secret_enc: Option<Vec<u8>>,
    pub totp_pending_enc: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub failed_logins: i64,
    pub last_failed_login_at: Option<i64>,
}

impl UserAuth {
    pub fn user_id(&self) -> UserId {
        UserId::from_trusted(self.id.clone())
    }

    pub fn mfa_enabled(&self) -> bool {
        self.totp_secret_enc.is_some()
    }
}

/// Replaces a user's recovery codes inside a transaction.
macro_rules! replace_codes {
    ($tx:expr, $user:expr, $hashes:expr, $now:expr) => {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind($user.as_str())
            .execute(&mut *$tx)
            .await?;
        for h in $hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
            )
            .bind($user.as_str())
            .bind(h)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// A dashboard token resolved to its sign-in session.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TokenSession {
    pub session_id: String,
    pub user_id: String,
    pub kind: String,
    pub token_expires_at: i64,
    pub used_at: Option<i64>,
    pub last_active_at: i64,
    pub session_expires_at: i64,
    pub step_up_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new sign-in session's limits.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub now: Millis,
    pub expires_at: Millis,
    pub step_up: bool,
}

/// A token to add to a session.
pub struct NewToken<'a> {
    pub hash: &'a str,
    pub kind: &'static str,
    pub expires_at: Millis,
}

#[derive(Clone)]
pub struct IdentityStore {
    db: Db,
}

impl IdentityStore {
    pub fn new(db: Db) -> Self {
        IdentityStore { db }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserAuth>, StoreError> {
        const Q: &str = "SELECT id, email, name, password_hash, email_verified_at, \
             totp_secret_enc, totp_pending_enc, totp_last_step, failed_logins, \
             last_failed_login_at FROM users WHERE email = $1";
        self.db.fetch_optional(Q, &common::args![email]).await
    }

    pub async fn user(&self, id: &UserId) -> Result<UserAuth, StoreError> {
        const Q: &str = "SELECT id, email, name, password_hash, email_verified_at, \
             totp_secret_enc, totp_pending_enc, totp_last_step, failed_logins, \
             last_failed_login_at FROM users WHERE id = $1";
        self.db.fetch_one(Q, &common::args![id.as_str()]).await
    }

    /// Creates an account (tier `tier`), its unverified owner and the membership.
    pub async fn signup(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        account_name: &str,
        tier: &str,
        now: Millis,
    ) -> Result<(AccountId, UserId), StoreError> {
        let account = AccountId::generate();
        let user = UserId::generate();
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO accounts (id, name, tier, created_at) VALUES ($1, $2, $3, $4)")
                .bind(account.as_str())
                .bind(account_name)
                .bind(tier)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user.as_str())
            .bind(email)
            .bind(name)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (account_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(account.as_str())
            .bind(user.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok((account, user))
    }

    pub async fn mark_verified(&self, user: &UserId, now: Millis) -> Result<(), StoreError> {
        self.db.execute("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1", &common::args![user.as_str(), now]).await?;
        Ok(())
    }

    pub async fn set_password(&self, user: &UserId, hash: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &common::args![user.as_str(), hash],
            )
            .await?;
        Ok(())
    }

    /// Removes a user's password (they sign in by magic link until they set one by reset link).
    pub async fn clear_password(&self, user: &UserId) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE users SET password_hash = NULL WHERE id = $1",
                &common::args![user.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Counts a failed login (for the per-account delay); `None` resets the count.
    pub async fn login_failed(&self, user: &UserId, at: Option<Millis>) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            match at {
                Some(at) => sqlx::query(
                    "UPDATE users SET failed_logins = failed_logins + 1, last_failed_login_at = $2 \
                     WHERE id = $1",
                )
                .bind(user.as_str())
                .bind(at)
                .execute(pool)
                .await,
                None => sqlx::query(
                    "UPDATE users SET failed_logins = 0, last_failed_login_at = NULL WHERE id = $1",
                )
                .bind(user.as_str())
                .execute(pool)
                .await,
            }
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}

// After the macros above, which the submodules use.
mod links;
mod mfa;
mod sessions;
mod throttle;
