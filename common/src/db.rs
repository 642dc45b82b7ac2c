//! The database handle: one enum over a native SQLite or PostgreSQL pool.
//!
//! Stores write one SQL text (`$1` placeholders, `RETURNING`, `ON CONFLICT`, TEXT ids, BIGINT
//! epoch-millisecond timestamps) and run it on whichever pool is active with [`on_db!`], so each
//! backend keeps its native types and speed. Where the dialects truly differ, a store branches on
//! [`Db::backend`] in one visible place. Migrations live in `migrations/sqlite` and
//! `migrations/postgres` with the same version numbers.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Splits a page fetched with `LIMIT limit + 1` into the page and whether another one follows.
pub fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    (rows, has_more)
}

/// Runs the same code against whichever pool is active. `$pool` is bound to the native pool.
///
/// ```ignore
/// let n: i64 = on_db!(&db, pool => sqlx::query_scalar("SELECT 1").fetch_one(pool).await)?;
/// ```
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Starts a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
/// `SQLITE_BUSY` in WAL mode when another connection committed in between, and the busy timeout
/// cannot help it. On PostgreSQL it is a plain `BEGIN`.
pub trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// Binds each of `args` in order to a query of either backend.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(*v),
                Arg::OptText(v) => query.bind(*v),
                Arg::Int(v) => query.bind(*v),
                Arg::OptInt(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Bytes(v) => query.bind(*v),
                Arg::OptBytes(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// A single column value both backends can read.
pub trait AnyValue:
    for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
    + Send
    + Unpin
{
}

impl<T> AnyValue for T where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + Send
        + Unpin
{
}

/// A value bound to a statement by [`Db::execute`] (see [`args!`](crate::args)).
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::OptText(v.as_deref())
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Arg::OptBytes(v)
    }
}

/// The arguments of a [`Db::execute`] statement, in `$n` order:
/// `db.execute("UPDATE t SET a = $2 WHERE id = $1", &args![id.as_str(), now])`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Arg::from($value)),*]
    };
}

/// A row type both backends can read (`#[derive(sqlx::FromRow)]` gives both).
pub trait AnyRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> AnyRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A failure seen by a store, named from the caller's side.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflicts with an existing record")]
    Conflict,
    /// The database could not be reached or answered with an error that is not the caller's fault.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(err),
            _ => StoreError::Internal(anyhow::Error::new(err).context("database error")),
        }
    }
}

impl Db {
    /// Opens the database named by `url`: `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .context("cannot connect to PostgreSQL")?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("invalid SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // A bounded page cache per connection (512 KiB, SQLite's default is 2 MiB): the
                // database is small and hot pages live in the OS cache anyway, and eight
                // connections' caches filling up read as memory growth over a long run.
                .pragma("cache_size", "-512");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("cannot open the SQLite database")?;
            Ok(Db::Sqlite(pool))
        } else {
            anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)")
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration of the active backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .context("migrations failed")
    }

    /// A cheap round trip, for readiness checks.
    /// The one row `sql` selects with `args` (`NotFound` when there is none).
    pub async fn fetch_one<R: AnyRow>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<R, StoreError> {
        Ok(
            on_db!(self, pool => bind_all!(sqlx::query_as::<_, R>(sql), args).fetch_one(pool).await)?,
        )
    }

    /// The row `sql` selects with `args`, if there is one.
    pub async fn fetch_optional<R: AnyRow>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<R>, StoreError> {
        Ok(on_db!(self, pool => {
            bind_all!(sqlx::query_as::<_, R>(sql), args).fetch_optional(pool).await
        })?)
    }

    /// Every row `sql` selects with `args`.
    pub async fn fetch_all<R: AnyRow>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<R>, StoreError> {
        Ok(
            on_db!(self, pool => bind_all!(sqlx::query_as::<_, R>(sql), args).fetch_all(pool).await)?,
        )
    }

    /// The single value `sql` selects with `args` (`NotFound` when there is no row).
    pub async fn scalar<T: AnyValue>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<T, StoreError> {
        Ok(on_db!(self, pool => {
            bind_all!(sqlx::query_scalar::<_, T>(sql), args).fetch_one(pool).await
        })?)
    }

    /// The single value `sql` selects with `args`, if there is a row.
    pub async fn scalar_optional<T: AnyValue>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>, StoreError> {
        Ok(on_db!(self, pool => {
            bind_all!(sqlx::query_scalar::<_, T>(sql), args).fetch_optional(pool).await
        })?)
    }

    /// The values of every row `sql` selects with `args`.
    pub async fn scalar_all<T: AnyValue>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>, StoreError> {
        Ok(on_db!(self, pool => {
            bind_all!(sqlx::query_scalar::<_, T>(sql), args).fetch_all(pool).await
        })?)
    }

    /// Runs one statement with `args` bound to `$1`, `$2`, … in order; returns the rows it
    /// touched. For the many single-statement writes of the stores.
    pub async fn execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        Ok(on_db!(self, pool => {
            bind_all!(sqlx::query(sql), args)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// One page of `account`'s rows, newest first, and whether more follow: `sql` binds `$1`
    /// to the account, `$2` to the cursor (rows with smaller ids follow it) and `$3` to the
    /// limit plus one.
    pub async fn fetch_page<R: AnyRow>(
        &self,
        sql: &'static str,
        account: &str,
        cursor: &str,
        limit: i64,
    ) -> Result<(Vec<R>, bool), StoreError> {
        let rows = on_db!(self, pool => {
            sqlx::query_as::<_, R>(sql)
                .bind(account)
                .bind(cursor)
                .bind(limit + 1)
                .fetch_all(pool)
                .await
        })?;
        Ok(split_page(rows, limit))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}
