//! Sign-in sessions and their access and refresh tokens (digests only).

use common::{StoreError, clock::Millis, db::BeginWrite, ids::UserId, on_db};

use super::*;

impl IdentityStore {
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
        self.db.fetch_optional("SELECT t.session_id, s.user_id, t.kind, t.expires_at AS token_expires_at, t.used_at, \
                 s.last_active_at, s.expires_at AS session_expires_at, s.step_up_at, s.revoked_at \
                 FROM auth_tokens t JOIN auth_sessions s ON s.id = t.session_id \
                 WHERE t.token_hash = $1", &common::args![hash]).await
    }

    /// Marks a refresh token used, if it was not yet: false means it was (reuse).
    pub async fn use_token(&self, hash: &str, now: Millis) -> Result<bool, StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE auth_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                &common::args![hash, now],
            )
            .await?;
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
        self.db
            .execute(
                "UPDATE auth_sessions SET last_active_at = $2 WHERE id = $1",
                &common::args![session, now],
            )
            .await?;
        Ok(())
    }

    pub async fn revoke_session(
        &self,
        session: &str,
        reason: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE auth_sessions SET revoked_at = $2, revoke_reason = $3 \
                 WHERE id = $1 AND revoked_at IS NULL",
                &common::args![session, now, reason],
            )
            .await?;
        Ok(())
    }

    /// Revokes every sign-in session of a user (password reset, account disable).
    pub async fn revoke_user_sessions(
        &self,
        user: &UserId,
        reason: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        self.db
            .execute(
                "UPDATE auth_sessions SET revoked_at = $2, revoke_reason = $3 \
                 WHERE user_id = $1 AND revoked_at IS NULL",
                &common::args![user.as_str(), now, reason],
            )
            .await
    }
}
