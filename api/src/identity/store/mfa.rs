//! TOTP secrets (sealed by the caller), accepted steps, and recovery codes (digests only).

use common::{StoreError, clock::Millis, db::BeginWrite, ids::UserId, on_db};

use super::*;

impl IdentityStore {
    pub async fn set_pending_totp(&self, user: &UserId, sealed: &[u8]) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE users SET totp_pending_enc = $2 WHERE id = $1",
                &common::args![user.as_str(), sealed],
            )
            .await?;
        Ok(())
    }

    /// Accepts TOTP step `step` for the user unless it is at or before the last one accepted.
    pub async fn accept_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
        let n = self
            .db
            .execute(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                &common::args![user.as_str(), step],
            )
            .await?;
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
        let n = self
            .db
            .execute(
                "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 \
                 AND used_at IS NULL",
                &common::args![user.as_str(), hash, now],
            )
            .await?;
        Ok(n == 1)
    }
}
