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
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as(Q).bind(email).fetch_optional(pool).await
        })?)
    }

    pub async fn user(&self, id: &UserId) -> Result<UserAuth, StoreError> {
        const Q: &str = "SELECT id, email, name, password_hash, email_verified_at, \
             totp_secret_enc, totp_pending_enc, totp_last_step, failed_logins, \
             last_failed_login_at FROM users WHERE id = $1";
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as(Q).bind(id.as_str()).fetch_one(pool).await
        })?)
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
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $1",
            )
            .bind(user.as_str())
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn set_password(&self, user: &UserId, hash: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user.as_str())
                .bind(hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Removes a user's password (they sign in by magic link until they set one by reset link).
    pub async fn clear_password(&self, user: &UserId) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1")
                .bind(user.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
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

    // -- sign-in sessions and tokens ------------------------------------------------------------

    /// Starts a sign-in session with its first tokens.
    pub async fn create_session(
        &self,
        s: &NewSession<'_>,
        tokens: &[NewToken<'_>],
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO auth_sessions (id, user_id, created_at, last_active_at, expires_at, \
                 step_up_at) VALUES ($1, $2, $3, $3, $4, $5)",
            )
            .bind(s.id)
            .bind(s.user_id.as_str())
            .bind(s.now)
            .bind(s.expires_at)
            .bind(s.step_up.then_some(s.now))
            .execute(&mut *tx)
            .await?;
            for t in tokens {
                sqlx::query(
                    "INSERT INTO auth_tokens (token_hash, session_id, kind, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t.hash)
                .bind(s.id)
                .bind(t.kind)
                .bind(t.expires_at)
                .bind(s.now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn find_token(&self, hash: &str) -> Result<Option<TokenSession>, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT t.session_id, s.user_id, t.kind, t.expires_at AS token_expires_at, t.used_at, \
                 s.last_active_at, s.expires_at AS session_expires_at, s.step_up_at, s.revoked_at \
                 FROM auth_tokens t JOIN auth_sessions s ON s.id = t.session_id \
                 WHERE t.token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Marks a refresh token used, if it was not yet: false means it was (reuse).
    pub async fn use_token(&self, hash: &str, now: Millis) -> Result<bool, StoreError> {
        let n = on_db!(&self.db, pool => {
            sqlx::query("UPDATE auth_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
                .bind(hash)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Adds tokens to a live session, drops its older access tokens, records activity and,
    /// with `step_up`, a fresh verification.
    pub async fn rotate(
        &self,
        session: &str,
        tokens: &[NewToken<'_>],
        now: Millis,
        step_up: bool,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM auth_tokens WHERE session_id = $1 AND kind = 'access'")
                .bind(session)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE auth_tokens SET used_at = $2 WHERE session_id = $1 AND kind = 'refresh' \
                 AND used_at IS NULL",
            )
            .bind(session)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for t in tokens {
                sqlx::query(
                    "INSERT INTO auth_tokens (token_hash, session_id, kind, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t.hash)
                .bind(session)
                .bind(t.kind)
                .bind(t.expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE auth_sessions SET last_active_at = $2, \
                 step_up_at = CASE WHEN $3 THEN $2 ELSE step_up_at END WHERE id = $1",
            )
            .bind(session)
            .bind(now)
            .bind(step_up)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn touch_session(&self, session: &str, now: Millis) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE auth_sessions SET last_active_at = $2 WHERE id = $1")
                .bind(session)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn revoke_session(
        &self,
        session: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $2, revoke_reason = $3 \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(session)
            .bind(now)
            .bind(reason)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Revokes every sign-in session of a user (password reset, account disable).
    pub async fn revoke_user_sessions(
        &self,
        user: &UserId,
        reason: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE auth_sessions SET revoked_at = $2, revoke_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user.as_str())
            .bind(now)
            .bind(reason)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    // -- one-time links -------------------------------------------------------------------------

    pub async fn create_link(
        &self,
        hash: &str,
        kind: &'static str,
        user: &UserId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO auth_links (token_hash, kind, user_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(kind)
            .bind(user.as_str())
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Uses a link of `kind` once: the user it names, if it is valid, unexpired and unused.
    pub async fn consume_link(
        &self,
        hash: &str,
        kind: &'static str,
        now: Millis,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "UPDATE auth_links SET used_at = $3 WHERE token_hash = $1 AND kind = $2 \
                 AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
            )
            .bind(hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(user.map(UserId::from_trusted))
    }

    /// The user a valid, unused link of `kind` names, without using it.
    pub async fn find_link(
        &self,
        hash: &str,
        kind: &'static str,
        now: Millis,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = on_db!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT user_id FROM auth_links WHERE token_hash = $1 AND kind = $2 \
                 AND used_at IS NULL AND expires_at > $3",
            )
            .bind(hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(user.map(UserId::from_trusted))
    }

    /// When a sign-in session ends at the latest.
    pub async fn session_expires_at(&self, id: &str) -> Result<Millis, StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_scalar("SELECT expires_at FROM auth_sessions WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Voids a user's unused links of `kind` (a new reset link voids the old ones).
    pub async fn void_links(
        &self,
        user: &UserId,
        kind: &'static str,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE auth_links SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL",
            )
            .bind(user.as_str())
            .bind(kind)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    // -- TOTP and recovery codes ----------------------------------------------------------------

    pub async fn set_pending_totp(&self, user: &UserId, sealed: &[u8]) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            sqlx::query("UPDATE users SET totp_pending_enc = $2 WHERE id = $1")
                .bind(user.as_str())
                .bind(sealed)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Accepts TOTP step `step` for the user unless it is at or before the last one accepted.
    pub async fn accept_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(user.as_str())
            .bind(step)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Turns MFA on with the pending secret and replaces the recovery codes.
    pub async fn activate_totp(
        &self,
        user: &UserId,
        step: i64,
        code_hashes: &[String],
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE users SET totp_secret_enc = totp_pending_enc, totp_pending_enc = NULL, \
                 totp_last_step = $2 WHERE id = $1",
            )
            .bind(user.as_str())
            .bind(step)
            .execute(&mut *tx)
            .await?;
            replace_codes!(tx, user, code_hashes, now);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn disable_totp(&self, user: &UserId) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE users SET totp_secret_enc = NULL, totp_pending_enc = NULL, \
                 totp_last_step = NULL WHERE id = $1",
            )
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn replace_recovery_codes(
        &self,
        user: &UserId,
        code_hashes: &[String],
        now: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            replace_codes!(tx, user, code_hashes, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Uses a recovery code once.
    pub async fn use_recovery_code(
        &self,
        user: &UserId,
        hash: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let n = on_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 \
                 AND used_at IS NULL",
            )
            .bind(user.as_str())
            .bind(hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    // -- throttling -----------------------------------------------------------------------------

    /// Requests in `bucket` since `since`, and the latest one.
    pub async fn throttle_count(
        &self,
        bucket: &str,
        since: Millis,
    ) -> Result<(i64, Option<i64>), StoreError> {
        Ok(on_db!(&self.db, pool => {
            sqlx::query_as("SELECT COUNT(*), MAX(at) FROM auth_throttle WHERE bucket = $1 AND at > $2")
                .bind(bucket)
                .bind(since)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Takes one attempt from `bucket` if fewer than `limit` were taken since `since`: the count
    /// and the record are one step (SQLite's write lock; a transaction-scoped advisory lock on
    /// the bucket on PostgreSQL), so concurrent attempts cannot all see room. `false`: none left.
    pub async fn throttle_take(
        &self,
        bucket: &str,
        since: Millis,
        limit: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM auth_throttle WHERE bucket = $1 AND at > $2";
        const INSERT: &str = "INSERT INTO auth_throttle (bucket, at) VALUES ($1, $2)";
        let postgres = self.db.backend() == common::db::Backend::Postgres;
        let taken = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            if postgres {
                // SQLite's write transaction is already exclusive.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(bucket)
                    .execute(&mut *tx)
                    .await?;
            }
            let (count,): (i64,) = sqlx::query_as(COUNT)
                .bind(bucket)
                .bind(since)
                .fetch_one(&mut *tx)
                .await?;
            if count < limit {
                sqlx::query(INSERT).bind(bucket).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            count < limit
        });
        Ok(taken)
    }

    /// Records requests in buckets and forgets ones older than `forget_before`.
    pub async fn throttle_hit(
        &self,
        buckets: &[&str],
        now: Millis,
        forget_before: Millis,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            for b in buckets {
                sqlx::query("INSERT INTO auth_throttle (bucket, at) VALUES ($1, $2)")
                    .bind(*b)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM auth_throttle WHERE at < $1")
                .bind(forget_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
