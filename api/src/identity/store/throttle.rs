//! Throttling windows: counting and atomically taking attempts in a bucket.

use common::{StoreError, clock::Millis, db::BeginWrite, on_db};

use super::*;

impl IdentityStore {
    /// Requests in `bucket` since `since`, and the latest one.
    pub async fn throttle_count(
        &self,
        bucket: &str,
        since: Millis,
    ) -> Result<(i64, Option<i64>), StoreError> {
        self.db
            .fetch_one(
                "SELECT COUNT(*), MAX(at) FROM auth_throttle WHERE bucket = $1 AND at > $2",
                &common::args![bucket, since],
            )
            .await
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
