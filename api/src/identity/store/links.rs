//! One-time links (verification, magic sign-in, reset; digests only).

use common::{StoreError, clock::Millis, ids::UserId};

use super::*;

impl IdentityStore {
    pub async fn create_link(
        &self,
        hash: &str,
        kind: &'static str,
        user: &UserId,
        expires_at: Millis,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO auth_links (token_hash, kind, user_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &common::args![hash, kind, user.as_str(), expires_at, now],
            )
            .await?;
        Ok(())
    }

    /// Uses a link of `kind` once: the user it names, if it is valid, unexpired and unused.
    pub async fn consume_link(
        &self,
        hash: &str,
        kind: &'static str,
        now: Millis,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = self
            .db
            .scalar_optional(
                "UPDATE auth_links SET used_at = $3 WHERE token_hash = $1 AND kind = $2 \
                 AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
                &common::args![hash, kind, now],
            )
            .await?;
        Ok(user.map(UserId::from_trusted))
    }

    /// The user a valid, unused link of `kind` names, without using it.
    pub async fn find_link(
        &self,
        hash: &str,
        kind: &'static str,
        now: Millis,
    ) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = self
            .db
            .scalar_optional(
                "SELECT user_id FROM auth_links WHERE token_hash = $1 AND kind = $2 \
                 AND used_at IS NULL AND expires_at > $3",
                &common::args![hash, kind, now],
            )
            .await?;
        Ok(user.map(UserId::from_trusted))
    }

    /// When a sign-in session ends at the latest.
    pub async fn session_expires_at(&self, id: &str) -> Result<Millis, StoreError> {
        self.db
            .scalar(
                "SELECT expires_at FROM auth_sessions WHERE id = $1",
                &common::args![id],
            )
            .await
    }

    /// Voids a user's unused links of `kind` (a new reset link voids the old ones).
    pub async fn void_links(
        &self,
        user: &UserId,
        kind: &'static str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute("UPDATE auth_links SET used_at = $3 WHERE user_id = $1 AND kind = $2 AND used_at IS NULL", &common::args![user.as_str(), kind, now]).await?;
        Ok(())
    }
}
