//! SQL for the counts of calls to deprecated routes: one row per account, credential, route and
//! UTC day (`deprecated_calls`), so an account can see which of its keys still call what, and an
//! operator every account's.

use common::{Db, StoreError, clock::Millis};
use serde::Serialize;
use utoipa::ToSchema;

/// Calls of one credential to one deprecated route on one day.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeprecatedCalls {
    /// `acct_…`; empty for calls without a credential.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_id: String,
    /// `key_…`, `usr_…` or `anonymous`.
    pub actor: String,
    pub method: String,
    /// The route, as in the OpenAPI document.
    pub path: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub calls: i64,
    /// The last call (unix milliseconds).
    pub last_at: i64,
}

#[derive(Clone)]
pub struct DeprecatedCallStore {
    db: Db,
}

/// `YYYY-MM-DD` of `ms` (UTC).
fn day(ms: Millis) -> String {
    common::clock::rfc3339(ms).chars().take(10).collect()
}

impl DeprecatedCallStore {
    pub fn new(db: Db) -> Self {
        DeprecatedCallStore { db }
    }

    /// Counts one call.
    pub async fn count(
        &self,
        account: &str,
        actor: &str,
        method: &str,
        path: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let day = day(now);
        self.db
            .execute(
                "INSERT INTO deprecated_calls (account_id, actor, method, path, day, calls, last_at) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6) \
                 ON CONFLICT (account_id, actor, method, path, day) \
                 DO UPDATE SET calls = deprecated_calls.calls + 1, last_at = excluded.last_at",
                &common::args![account, actor, method, path, &day, now],
            )
            .await?;
        Ok(())
    }

    /// The account's counts since `since`, newest day first.
    pub async fn of_account(
        &self,
        account: &str,
        since: Millis,
    ) -> Result<Vec<DeprecatedCalls>, StoreError> {
        self.db
            .fetch_all(
                "SELECT account_id, actor, method, path, day, calls, last_at FROM deprecated_calls \
                 WHERE account_id = $1 AND last_at >= $2 \
                 ORDER BY day DESC, path, method, actor LIMIT 1000",
                &common::args![account, since],
            )
            .await
    }

    /// Every account's counts (for the operator's CLI), newest day first.
    pub async fn all(&self) -> Result<Vec<DeprecatedCalls>, StoreError> {
        self.db
            .fetch_all(
                "SELECT account_id, actor, method, path, day, calls, last_at FROM deprecated_calls \
                 ORDER BY day DESC, account_id, path, method, actor",
                &[],
            )
            .await
    }
}
