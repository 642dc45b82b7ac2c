//! Usage meters per account and calendar month (UTC): sessions started, session minutes, API
//! calls and data transfer, with the caps of the account's tier.
//!
//! Session meters are read from the `sessions` rows the runner writes at every transition (plus
//! the live counters of sessions still running), so they are exact and survive any crash. API
//! calls are counted in memory — no database write per request — and added to `usage_counters` on
//! an interval and at graceful shutdown; a crash loses at most one interval of API-call counts.
//! The same loop announces `usage.threshold_reached` (80 % and 100 %, once per meter and period)
//! through the events outbox.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use common::{
    Clock, Db, StoreError,
    clock::{Millis, month_of},
    db::BeginWrite,
    ids::AccountId,
    on_db,
    outbox::NewEvent,
};
use serde_json::json;

use crate::tiers::Tier;

/// One meter's reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub used: f64,
    pub limit: Option<f64>,
}

impl Reading {
    pub fn percent(&self) -> Option<f64> {
        self.limit.map(|l| {
            if l <= 0.0 {
                100.0
            } else {
                (self.used / l * 10_000.0).round() / 100.0
            }
        })
    }

    pub fn exhausted(&self) -> bool {
        self.limit.is_some_and(|l| self.used >= l)
    }
}

/// An account's usage in the current period.
#[derive(Clone, Debug)]
pub struct Report {
    pub period_start: Millis,
    pub period_end: Millis,
    pub sessions: Reading,
    pub session_minutes: Reading,
    pub api_calls: Reading,
    pub data_transfer_bytes: Reading,
    pub download_bytes: Reading,
    pub recording_bytes: Reading,
    pub active_sessions: u64,
    pub concurrency_limit: Option<u32>,
}

/// Live byte counts of sessions still running (from the runner), by account.
pub type LiveBytes = u64;

pub struct Usage {
    db: Db,
    clock: Clock,
    pending: Mutex<HashMap<AccountId, u64>>,
    touched: Mutex<HashSet<AccountId>>,
}

/// One UTC day of a period (see [`Usage::daily`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    /// Midnight UTC.
    pub start: Millis,
    pub sessions: u64,
    /// Session wall time within the day.
    pub ms: i64,
}

#[derive(sqlx::FromRow)]
struct SessionTotals {
    started: i64,
    ms: Option<i64>,
    bytes: Option<i64>,
    active: i64,
}

impl Usage {
    pub fn new(db: Db, clock: Clock) -> Self {
        Usage {
            db,
            clock,
            pending: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashSet::new()),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        match m.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Counts one authenticated API call (memory only).
    pub fn count_api_call(&self, account: &AccountId) {
        *Self::lock(&self.pending)
            .entry(account.clone())
            .or_insert(0) += 1;
        self.touch(account);
    }

    /// Marks an account for the next threshold check.
    pub fn touch(&self, account: &AccountId) {
        Self::lock(&self.touched).insert(account.clone());
    }

    /// Writes the API calls counted in memory. On failure they are put back for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let batch: Vec<(AccountId, u64)> = Self::lock(&self.pending).drain().collect();
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let (period, _) = month_of(now);
        let result: Result<(), StoreError> = async {
            on_db!(&self.db, pool => {
                let mut tx = pool.begin_write().await?;
                for (account, n) in &batch {
                    sqlx::query(
                        "INSERT INTO usage_counters (account_id, period_start, api_calls, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, period_start) \
                         DO UPDATE SET api_calls = usage_counters.api_calls + excluded.api_calls, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(account.as_str())
                    .bind(period)
                    .bind(i64::try_from(*n).unwrap_or(i64::MAX))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            });
            Ok(())
        }
        .await;
        if result.is_err() {
            let mut pending = Self::lock(&self.pending);
            for (account, n) in batch {
                *pending.entry(account).or_insert(0) += n;
            }
        }
        result
    }

    /// The account's usage now. `live_bytes`: bytes of its sessions still running.
    pub async fn report(
        &self,
        account: &AccountId,
        tier: &Tier,
        live_bytes: LiveBytes,
    ) -> Result<Report, StoreError> {
        let now = self.clock.now_ms();
        let (start, end) = month_of(now);
        let totals: SessionTotals = self.db.fetch_one("SELECT \
                   COUNT(CASE WHEN started_at >= $2 THEN 1 END) AS started, \
                   CAST(SUM(CASE WHEN COALESCE(ended_at, $4) < $3 THEN COALESCE(ended_at, $4) ELSE $3 END \
                       - CASE WHEN started_at > $2 THEN started_at ELSE $2 END) AS BIGINT) AS ms, \
                   CAST(SUM(CASE WHEN ended_at IS NOT NULL THEN bytes_received + bytes_sent ELSE 0 END) \
                       AS BIGINT) AS bytes, \
                   COUNT(CASE WHEN status IN ('starting', 'active', 'closing') THEN 1 END) AS active \
                 FROM sessions WHERE account_id = $1 AND started_at IS NOT NULL \
                 AND started_at < $3 AND (ended_at IS NULL OR ended_at > $2)", &common::args![account.as_str(), start, end, now]).await?;
        let stored: Option<i64> = self
            .db
            .scalar_optional(
                "SELECT api_calls FROM usage_counters WHERE account_id = $1 AND period_start = $2",
                &common::args![account.as_str(), start],
            )
            .await?;
        let downloaded: i64 = self
            .db
            .scalar(
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM session_downloads \
                 WHERE account_id = $1 AND state = 'completed' AND completed_at >= $2 \
                 AND completed_at < $3",
                &common::args![account.as_str(), start, end],
            )
            .await?;
        let recorded: i64 = self
            .db
            .scalar(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM session_recording_chunks \
                 WHERE account_id = $1 AND created_at >= $2 AND created_at < $3",
                &common::args![account.as_str(), start, end],
            )
            .await?;
        let pending = Self::lock(&self.pending).get(account).copied().unwrap_or(0);
        let api_calls = u64::try_from(stored.unwrap_or(0)).unwrap_or(0) + pending;
        let seconds = (totals.ms.unwrap_or(0).max(0) / 1000) as f64;
        let bytes = u64::try_from(totals.bytes.unwrap_or(0)).unwrap_or(0) + live_bytes;
        Ok(Report {
            period_start: start,
            period_end: end,
            sessions: Reading {
                used: totals.started as f64,
                limit: tier.monthly_sessions.map(|l| l as f64),
            },
            session_minutes: Reading {
                used: (seconds / 60.0 * 10_000.0).round() / 10_000.0,
                limit: tier.monthly_session_minutes.map(|l| l as f64),
            },
            api_calls: Reading {
                used: api_calls as f64,
                limit: None,
            },
            data_transfer_bytes: Reading {
                used: bytes as f64,
                limit: None,
            },
            download_bytes: Reading {
                used: downloaded.max(0) as f64,
                limit: None,
            },
            recording_bytes: Reading {
                used: recorded.max(0) as f64,
                limit: None,
            },
            active_sessions: u64::try_from(totals.active).unwrap_or(0),
            concurrency_limit: tier.max_concurrent_sessions,
        })
    }

    /// The current period day by day (UTC), from its first day to today: sessions started and
    /// session minutes, each session's wall time split exactly at midnights, live sessions up
    /// to now. The days add up to the month's `sessions` and `session_minutes` meters.
    pub async fn daily(
        &self,
        account: &AccountId,
    ) -> Result<(Millis, Millis, Vec<Day>), StoreError> {
        const DAY: Millis = 86_400_000;
        let now = self.clock.now_ms();
        let (start, end) = month_of(now);
        let spans: Vec<(i64, i64)> = self
            .db
            .fetch_all(
                "SELECT started_at, COALESCE(ended_at, $4) FROM sessions \
                 WHERE account_id = $1 AND started_at IS NOT NULL AND started_at < $3 \
                 AND (ended_at IS NULL OR ended_at > $2)",
                &common::args![account.as_str(), start, end, now],
            )
            .await?;
        let days = usize::try_from((now.min(end - 1) - start) / DAY + 1).unwrap_or(0);
        let mut out: Vec<Day> = (0..days)
            .map(|i| Day {
                start: start + DAY * i as i64,
                sessions: 0,
                ms: 0,
            })
            .collect();
        for (from, to) in spans {
            let (from_c, to_c) = (from.max(start), to.min(end));
            if from >= start
                && let Some(day) = out.get_mut(usize::try_from((from - start) / DAY).unwrap_or(0))
            {
                day.sessions += 1;
            }
            for day in &mut out {
                let (d0, d1) = (day.start, day.start + DAY);
                day.ms += (to_c.min(d1) - from_c.max(d0)).max(0);
            }
        }
        Ok((start, end, out))
    }

    /// Accounts touched since the last call.
    pub fn take_touched(&self) -> Vec<AccountId> {
        Self::lock(&self.touched).drain().collect()
    }

    /// Records `usage.threshold_reached` for each 80 % / 100 % mark of a capped meter reached for
    /// the first time this period. Returns how many events were recorded.
    pub async fn announce_thresholds(
        &self,
        account: &AccountId,
        report: &Report,
    ) -> Result<u32, StoreError> {
        let now = self.clock.now_ms();
        let mut recorded = 0;
        for (meter, reading) in [
            ("sessions", &report.sessions),
            ("session_minutes", &report.session_minutes),
        ] {
            let Some(percent) = reading.percent() else {
                continue;
            };
            for threshold in [80_i32, 100] {
                if percent < f64::from(threshold) {
                    continue;
                }
                let event = NewEvent::new(
                    account,
                    "usage.threshold_reached",
                    json!({
                        "meter": meter, "threshold": threshold, "percent_used": percent,
                        "used": reading.used, "limit": reading.limit,
                        "period_start": common::clock::rfc3339(report.period_start),
                    }),
                    now,
                );
                let inserted = on_db!(&self.db, pool => {
                    let mut tx = pool.begin_write().await?;
                    let n = sqlx::query(
                        "INSERT INTO usage_thresholds (account_id, period_start, meter, threshold, \
                         reached_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(account.as_str())
                    .bind(report.period_start)
                    .bind(meter)
                    .bind(threshold)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        common::insert_event!(event).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    n
                });
                recorded += u32::try_from(inserted).unwrap_or(0);
            }
        }
        Ok(recorded)
    }
}
