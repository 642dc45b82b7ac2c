//! The `profile_blobs` reference counts: taking a reference to a new blob while its object is
//! written, dropping an unused one, and collecting blobs nothing references any more.

use common::{StoreError, clock::Millis, db::BeginWrite, on_db};

use super::ProfileStore;

impl ProfileStore {
    /// Adds a reference to `address`, creating its row if needed, and runs `write` (which puts
    /// the object) while the row is locked, so a concurrent collection cannot delete it.
    pub async fn reference_new_blob<F>(
        &self,
        address: &str,
        bytes: u64,
        now: Millis,
        write: F,
    ) -> Result<(), StoreError>
    where
        F: AsyncFnOnce() -> anyhow::Result<()>,
    {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO profile_blobs (address, refs, bytes, created_at) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET refs = profile_blobs.refs + 1",
            )
            .bind(address)
            .bind(bytes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            write().await.map_err(StoreError::Internal)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Drops a reference taken by [`Self::reference_new_blob`] that will not be used.
    pub async fn unreference(&self, address: &str) -> Result<(), StoreError> {
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            drop_ref!(tx, address).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes the blob at `address` if nothing references it any more. `delete` runs while the
    /// blob's row is locked; if it fails, nothing changes (the blob is tried again next time).
    pub async fn collect<F>(&self, address: &str, delete: F) -> Result<bool, StoreError>
    where
        F: AsyncFnOnce() -> anyhow::Result<()>,
    {
        let collected = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            // A no-op update takes the row lock on both backends.
            let refs: Option<i64> = sqlx::query_scalar(
                "UPDATE profile_blobs SET refs = refs WHERE address = $1 RETURNING refs",
            )
            .bind(address)
            .fetch_optional(&mut *tx)
            .await?;
            if refs.is_some_and(|r| r <= 0) {
                delete().await.map_err(StoreError::Internal)?;
                sqlx::query("DELETE FROM profile_blobs WHERE address = $1")
                    .bind(address)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                true
            } else {
                false
            }
        });
        Ok(collected)
    }

    /// Addresses of blobs nothing references (left by an interrupted collection).
    pub async fn unreferenced(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .scalar_all(
                "SELECT address FROM profile_blobs WHERE refs <= 0",
                &common::args![],
            )
            .await
    }
}
