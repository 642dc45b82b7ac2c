//! The clock every time-dependent rule reads (key grace periods, expiries, timeouts).
//!
//! Production uses the system clock. Tests that start the real binary need to move time forward
//! (for a 24-hour grace period, say) without waiting, so `DRIFTSTACK_TEST_CLOCK_FILE` may name a file
//! holding an offset in seconds that is added to the system time. The file is re-read at most every
//! 50 ms so that tests see a change almost at once while the hot path stays cheap.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Milliseconds since the Unix epoch, the unit every stored timestamp uses.
pub type Millis = i64;

#[derive(Clone, Default)]
pub struct Clock {
    offset_file: Option<Arc<OffsetFile>>,
}

struct OffsetFile {
    path: PathBuf,
    cached: Mutex<(Instant, i64)>,
}

const RELOAD_EVERY: Duration = Duration::from_millis(50);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The system clock shifted by the number of seconds written in `path` (0 if absent).
    pub fn with_offset_file(path: PathBuf) -> Self {
        let stale = Instant::now()
            .checked_sub(RELOAD_EVERY * 2)
            .unwrap_or_else(Instant::now);
        Self {
            offset_file: Some(Arc::new(OffsetFile {
                path,
                cached: Mutex::new((stale, 0)),
            })),
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> Millis {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        system + self.offset_seconds() * 1000
    }

    fn offset_seconds(&self) -> i64 {
        let Some(file) = &self.offset_file else {
            return 0;
        };
        let mut cached = match file.cached.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cached.0.elapsed() >= RELOAD_EVERY {
            let offset = std::fs::read_to_string(&file.path)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            *cached = (Instant::now(), offset);
        }
        cached.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_file_moves_time_forward() {
        let dir = std::env::temp_dir().join(format!("ds-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("offset");
        let clock = Clock::with_offset_file(path.clone());
        let before = clock.now_ms();
        std::fs::write(&path, "86400").expect("write offset");
        std::thread::sleep(RELOAD_EVERY + Duration::from_millis(10));
        let after = clock.now_ms();
        assert!(
            after - before >= 86_400_000,
            "offset not applied: {before} -> {after}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision,
/// e.g. `2026-11-23T11:50:42.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

/// The calendar month (UTC) containing `ms`: its first and the next month's first millisecond.
pub fn month_of(ms: Millis) -> (Millis, Millis) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let start = time::Date::from_calendar_date(t.year(), t.month(), 1)
        .unwrap_or(time::Date::MIN)
        .midnight()
        .assume_utc();
    let (y, m) = match t.month() {
        time::Month::December => (t.year() + 1, time::Month::January),
        m => (t.year(), m.next()),
    };
    let end = time::Date::from_calendar_date(y, m, 1)
        .unwrap_or(time::Date::MAX)
        .midnight()
        .assume_utc();
    let to_ms =
        |d: time::OffsetDateTime| i64::try_from(d.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    (to_ms(start), to_ms(end))
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn months() {
        let (s, e) = month_of(parse_rfc3339("2026-12-15T10:00:00Z").unwrap_or(0));
        assert_eq!(rfc3339(s), "2026-12-01T00:00:00.000Z");
        assert_eq!(rfc3339(e), "2027-01-01T00:00:00.000Z");
        let (s, _) = month_of(parse_rfc3339("2026-11-01T00:00:00Z").unwrap_or(0));
        assert_eq!(rfc3339(s), "2026-11-01T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_649_367_553_123), "2022-04-07T21:39:13.123Z");
        assert_eq!(
            parse_rfc3339("2022-04-07T21:39:13.123Z"),
            Some(1_649_367_553_123)
        );
        assert_eq!(
            parse_rfc3339("2022-04-07T23:39:13.123+02:00"),
            Some(1_649_367_553_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
