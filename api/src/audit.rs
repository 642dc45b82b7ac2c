//! The audit log: one append-only row per security-relevant action, written through
//! [`Audit::record`] only. Rows of one account form a hash chain (each row's hash covers the
//! previous row's hash and its own fields), so a row edited or removed later breaks the chain.
//! Rows never hold secrets: callers pass ids, emails and outcomes, never passwords, tokens, codes
//! or cookie values.

use common::{Db, StoreError, clock::Millis, db::BeginWrite, ids::AccountId, on_db};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The account it concerns; `None` for actions outside any account (a failed login for an
    /// unknown email).
    pub account_id: Option<AccountId>,
    /// `usr_…`, `key_…`, or `anonymous`.
    /// (`ip` and `user_agent` left `None` are taken from the request being served.)
    pub actor: String,
    /// e.g. `auth.login_succeeded`.
    pub action: &'static str,
    /// The object acted on, e.g. a user or key id.
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Redacted details: ids, names, counts, outcomes.
    pub data: Value,
}

impl Entry {
    /// An entry for an action of `p` (its account, actor, address and user agent).
    pub fn by(
        p: &crate::auth::Principal,
        action: &'static str,
        target: Option<String>,
        data: Value,
    ) -> Self {
        Entry {
            account_id: Some(p.account_id.clone()),
            actor: p.actor.id().to_owned(),
            action,
            target,
            ip: None,
            user_agent: None,
            data,
        }
    }
}

/// An entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub seq: i64,
    pub id: String,
    pub account_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub data: String,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// What to list.
#[derive(Debug, Default)]
pub struct Filter {
    pub action: Option<String>,
    /// An action prefix such as `team.`.
    pub action_prefix: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

/// A break in an account's chain.
#[derive(Debug)]
pub struct Break {
    pub account_id: Option<String>,
    pub entry_id: String,
    pub reason: &'static str,
}

/// A URL as the audit log keeps it: no credentials, no query, no fragment (they may hold tokens).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(invalid URL)".to_owned(),
    }
}

#[derive(Clone)]
pub struct Audit {
    db: Db,
}

/// The fields an entry's hash covers, in order.
struct Fields<'a> {
    prev: &'a str,
    id: &'a str,
    account: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    ip: &'a str,
    user_agent: &'a str,
    request_id: &'a str,
    data: &'a str,
    at: Millis,
}

fn chain_hash(f: &Fields<'_>) -> String {
    let mut h = Sha256::new();
    let at = f.at.to_string();
    for part in [
        f.prev,
        f.id,
        f.account,
        f.actor,
        f.action,
        f.target,
        f.ip,
        f.user_agent,
        f.request_id,
        f.data,
        &at,
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    crate::apikey::hex(&h.finalize())
}

impl Audit {
    pub fn new(db: Db) -> Self {
        Audit { db }
    }

    /// Appends `entry`. A failure is logged, never returned: the action it describes already
    /// happened and must not be undone by a failing audit write.
    pub async fn record(&self, entry: Entry, now: Millis) {
        if let Err(e) = self.append(&entry, now).await {
            tracing::error!(action = entry.action, error = %e, "audit entry not written");
        }
    }

    async fn append(&self, e: &Entry, now: Millis) -> Result<(), StoreError> {
        let id = common::ids::AuditId::generate();
        let account = e.account_id.as_ref().map(AccountId::as_str);
        let chain = account.unwrap_or("");
        let request_id = crate::error::current_request_id();
        // Address and user agent of the request being served, unless the caller gave them.
        let (ip, user_agent) = crate::error::current_origin();
        let e = &Entry {
            ip: e.ip.clone().or(ip),
            user_agent: e.user_agent.clone().or(user_agent),
            ..e.clone()
        };
        on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            if self.db.backend() == common::db::Backend::Postgres {
                // One writer per chain at a time (SQLite's write lock already serializes).
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(chain)
                    .execute(&mut *tx)
                    .await?;
            }
            // The chain's last entry, by the (account_id, seq) index: an account's own rows, or
            // the system chain's (no account). A COALESCE here would scan other accounts' rows.
            let prev: Option<String> = match account {
                Some(account) => {
                    sqlx::query_scalar(
                        "SELECT hash FROM audit_log WHERE account_id = $1 \
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .bind(account)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query_scalar(
                        "SELECT hash FROM audit_log WHERE account_id IS NULL \
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            let prev = prev.unwrap_or_default();
            let data = e.data.to_string();
            let hash = chain_hash(&Fields {
                prev: &prev,
                id: id.as_str(),
                account: chain,
                actor: &e.actor,
                action: e.action,
                target: e.target.as_deref().unwrap_or(""),
                ip: e.ip.as_deref().unwrap_or(""),
                user_agent: e.user_agent.as_deref().unwrap_or(""),
                request_id: request_id.as_deref().unwrap_or(""),
                data: &data,
                at: now,
            });
            sqlx::query(
                "INSERT INTO audit_log (id, account_id, actor, action, target, ip, user_agent, \
                 request_id, data, created_at, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id.as_str())
            .bind(account)
            .bind(&e.actor)
            .bind(e.action)
            .bind(&e.target)
            .bind(&e.ip)
            .bind(&e.user_agent)
            .bind(&request_id)
            .bind(&data)
            .bind(now)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// One page of an account's entries, newest first.
    pub async fn list(
        &self,
        account: &AccountId,
        f: &Filter,
        starting_after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<Row>, bool), StoreError> {
        let prefix = f.action_prefix.as_ref().map(|p| format!("{p}%"));
        let rows: Vec<Row> = self
            .db
            .fetch_all(
                "SELECT seq, id, account_id, actor, action, target, ip, user_agent, request_id, \
                 data, created_at, prev_hash, hash FROM audit_log WHERE account_id = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
                 AND (CAST($3 AS TEXT) IS NULL OR action LIKE $3) \
                 AND (CAST($4 AS TEXT) IS NULL OR actor = $4) \
                 AND (CAST($5 AS TEXT) IS NULL OR target = $5) \
                 AND (CAST($6 AS BIGINT) IS NULL OR created_at >= $6) \
                 AND (CAST($7 AS BIGINT) IS NULL OR created_at < $7) \
                 AND (CAST($8 AS TEXT) IS NULL OR seq < \
                      (SELECT seq FROM audit_log WHERE id = $8 AND account_id = $1)) \
                 ORDER BY seq DESC LIMIT $9",
                &common::args![
                    account.as_str(),
                    &f.action,
                    &prefix,
                    &f.actor,
                    &f.target,
                    f.since,
                    f.until,
                    starting_after,
                    limit + 1
                ],
            )
            .await?;
        Ok(common::db::split_page(rows, limit))
    }

    /// Recomputes every chain (each account's, and the one of entries without an account) and
    /// returns the first break of each broken chain, and how many entries were checked.
    pub async fn verify(&self) -> Result<(u64, Vec<Break>), StoreError> {
        let rows: Vec<Row> = self
            .db
            .fetch_all(
                "SELECT seq, id, account_id, actor, action, target, ip, user_agent, request_id, \
                 data, created_at, prev_hash, hash FROM audit_log ORDER BY seq",
                &common::args![],
            )
            .await?;
        let mut last: std::collections::HashMap<String, String> = Default::default();
        let mut broken: std::collections::HashMap<String, Break> = Default::default();
        for r in &rows {
            let chain = r.account_id.clone().unwrap_or_default();
            if broken.contains_key(&chain) {
                continue;
            }
            let expected_prev = last.get(&chain).cloned().unwrap_or_default();
            let computed = chain_hash(&Fields {
                prev: &r.prev_hash,
                id: &r.id,
                account: &chain,
                actor: &r.actor,
                action: &r.action,
                target: r.target.as_deref().unwrap_or(""),
                ip: r.ip.as_deref().unwrap_or(""),
                user_agent: r.user_agent.as_deref().unwrap_or(""),
                request_id: r.request_id.as_deref().unwrap_or(""),
                data: &r.data,
                at: r.created_at,
            });
            let reason = if r.prev_hash != expected_prev {
                Some(
                    "its previous hash does not match the entry before it (an entry was removed or inserted)",
                )
            } else if computed != r.hash {
                Some("its content does not match its hash (the entry was edited)")
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    broken.insert(
                        chain.clone(),
                        Break {
                            account_id: r.account_id.clone(),
                            entry_id: r.id.clone(),
                            reason,
                        },
                    );
                }
                None => {
                    last.insert(chain, r.hash.clone());
                }
            }
        }
        Ok((rows.len() as u64, broken.into_values().collect()))
    }
}
