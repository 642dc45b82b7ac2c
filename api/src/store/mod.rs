//! SQL for the tables the API crate owns: accounts, users and memberships, API keys, and
//! idempotency records. Handlers never see SQL; these stores never see HTTP. Every tenant-owned
//! query takes the account id first.

pub mod accounts;
pub mod idempotency;
pub mod keys;

/// Cursor pages fetch one row more than asked to learn whether another page exists.
pub(crate) fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    (rows, has_more)
}
