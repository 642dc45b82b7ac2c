//! The tier table: what each plan allows. Defaults live in code; `DRIFTSTACK_TIERS_FILE` (JSON,
//! tier name → tier) replaces or adds tiers, which is how a self-hosted operator sets the caps of
//! `self_hosted`. A `null` limit means "no limit".

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Human name shown on the dashboard and in billing.
    pub display_name: String,
    /// Whether this tier may hold `ds_live_` keys (otherwise only `ds_test_`).
    pub live_keys: bool,
    /// Price in US cents; a one-time pack or per month, per `billing`.
    pub price_cents: Option<u32>,
    /// `one_time`, `monthly` or `none`.
    pub billing: String,
    pub max_concurrent_sessions: Option<u32>,
    /// The longest a session may live; a request may lower it, never raise it.
    pub max_session_seconds: u32,
    /// The default idle timeout; a request may lower it, never raise it.
    pub idle_timeout_seconds: u32,
    pub monthly_sessions: Option<u64>,
    pub monthly_session_minutes: Option<u64>,
    /// Sustained requests per second per key.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub max_profiles: Option<u32>,
    /// The largest profile state blob, after compression.
    pub max_profile_state_bytes: u64,
    /// The largest file a session may download; a larger one is cancelled (`too_large`).
    #[serde(default = "default_download_bytes")]
    pub max_download_bytes: u64,
    /// All the downloads of one session together.
    #[serde(default = "default_session_download_bytes")]
    pub max_session_download_bytes: u64,
    /// The largest file one upload may carry.
    #[serde(default = "default_upload_bytes")]
    pub max_upload_bytes: u64,
    /// All the uploads of one session together.
    #[serde(default = "default_session_upload_bytes")]
    pub max_session_upload_bytes: u64,
    /// Days a session's downloads are kept after they began; then they are deleted.
    #[serde(default = "default_download_retention_days")]
    pub download_retention_days: u32,
    /// Bytes of log entries (console, page, network, CDP) one session keeps; later entries are
    /// dropped and the session says `logs.truncated`.
    #[serde(default = "default_session_log_bytes")]
    pub max_session_log_bytes: u64,
    /// Days a session's logs are kept; then they are deleted.
    #[serde(default = "default_log_retention_days")]
    pub log_retention_days: u32,
    /// Sessions are recorded unless the create request says `"record": false`.
    #[serde(default)]
    pub record_by_default: bool,
    /// Stored (compressed) bytes of one session's recording; past them the recording stops
    /// (`recording.truncated`).
    #[serde(default = "default_session_recording_bytes")]
    pub max_session_recording_bytes: u64,
}

/// Download and upload limits of a tier that does not name them (the blob store reads back at
/// most 256 MiB).
fn default_download_bytes() -> u64 {
    100 << 20
}
fn default_session_download_bytes() -> u64 {
    256 << 20
}
fn default_upload_bytes() -> u64 {
    50 << 20
}
fn default_session_upload_bytes() -> u64 {
    256 << 20
}
fn default_download_retention_days() -> u32 {
    30
}
fn default_session_log_bytes() -> u64 {
    20 << 20
}
fn default_log_retention_days() -> u32 {
    30
}
fn default_session_recording_bytes() -> u64 {
    50 << 20
}

impl Tier {
    /// The largest profile state the plan keeps, in bytes (after compression).
    pub fn profile_state_limit(&self) -> usize {
        usize::try_from(self.max_profile_state_bytes).unwrap_or(usize::MAX)
    }

    /// Whether any monthly meter of this tier is capped (so usage must be read to enforce it).
    pub fn has_monthly_caps(&self) -> bool {
        self.monthly_sessions.is_some() || self.monthly_session_minutes.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct Tiers(BTreeMap<String, Tier>);

pub const TRIAL: &str = "trial";
pub const SELF_HOSTED: &str = "self_hosted";

impl Default for Tiers {
    fn default() -> Self {
        let mut map = BTreeMap::new();
        map.insert(
            TRIAL.into(),
            Tier {
                display_name: "Trial pack".into(),
                live_keys: false,
                price_cents: Some(299),
                billing: "one_time".into(),
                max_concurrent_sessions: Some(2),
                max_session_seconds: 15 * 60,
                idle_timeout_seconds: 5 * 60,
                monthly_sessions: Some(100),
                monthly_session_minutes: Some(300),
                rate_limit_per_second: 5,
                rate_limit_burst: 20,
                max_profiles: Some(5),
                max_profile_state_bytes: 1 << 20,
                max_download_bytes: 10 << 20,
                max_session_download_bytes: 25 << 20,
                max_upload_bytes: 10 << 20,
                max_session_upload_bytes: 25 << 20,
                download_retention_days: 7,
                max_session_log_bytes: 5 << 20,
                log_retention_days: 1,
                record_by_default: false,
                max_session_recording_bytes: 10 << 20,
            },
        );
        map.insert(
            "starter".into(),
            Tier {
                display_name: "Starter".into(),
                live_keys: true,
                price_cents: Some(3900),
                billing: "monthly".into(),
                max_concurrent_sessions: Some(5),
                max_session_seconds: 60 * 60,
                idle_timeout_seconds: 10 * 60,
                monthly_sessions: Some(5_000),
                monthly_session_minutes: Some(10_000),
                rate_limit_per_second: 20,
                rate_limit_burst: 60,
                max_profiles: Some(100),
                max_profile_state_bytes: 5 << 20,
                max_download_bytes: 100 << 20,
                max_session_download_bytes: 256 << 20,
                max_upload_bytes: 50 << 20,
                max_session_upload_bytes: 256 << 20,
                download_retention_days: 30,
                max_session_log_bytes: 20 << 20,
                log_retention_days: 7,
                record_by_default: false,
                max_session_recording_bytes: 50 << 20,
            },
        );
        map.insert(
            "pro".into(),
            Tier {
                display_name: "Pro".into(),
                live_keys: true,
                price_cents: Some(19900),
                billing: "monthly".into(),
                max_concurrent_sessions: Some(25),
                max_session_seconds: 6 * 60 * 60,
                idle_timeout_seconds: 30 * 60,
                monthly_sessions: Some(50_000),
                monthly_session_minutes: Some(100_000),
                rate_limit_per_second: 100,
                rate_limit_burst: 300,
                max_profiles: Some(2_000),
                max_profile_state_bytes: 20 << 20,
                max_download_bytes: 256 << 20,
                max_session_download_bytes: 256 << 20,
                max_upload_bytes: 100 << 20,
                max_session_upload_bytes: 256 << 20,
                download_retention_days: 90,
                max_session_log_bytes: 50 << 20,
                log_retention_days: 30,
                record_by_default: false,
                max_session_recording_bytes: 200 << 20,
            },
        );
        map.insert(
            SELF_HOSTED.into(),
            Tier {
                display_name: "Self-hosted".into(),
                live_keys: true,
                price_cents: None,
                billing: "none".into(),
                max_concurrent_sessions: None,
                max_session_seconds: 24 * 60 * 60,
                idle_timeout_seconds: 30 * 60,
                monthly_sessions: None,
                monthly_session_minutes: None,
                rate_limit_per_second: 1_000,
                rate_limit_burst: 2_000,
                max_profiles: None,
                max_profile_state_bytes: 50 << 20,
                max_download_bytes: 256 << 20,
                max_session_download_bytes: 256 << 20,
                max_upload_bytes: 100 << 20,
                max_session_upload_bytes: 256 << 20,
                download_retention_days: 30,
                max_session_log_bytes: 50 << 20,
                log_retention_days: 30,
                record_by_default: false,
                max_session_recording_bytes: 200 << 20,
            },
        );
        Tiers(map)
    }
}

impl Tiers {
    /// The defaults, with the tiers of `file` (if any) replacing or adding entries.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut tiers = Tiers::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("DRIFTSTACK_TIERS_FILE: cannot read {}", path.display())
            })?;
            let extra: BTreeMap<String, Tier> = serde_json::from_str(&text).with_context(|| {
                format!("DRIFTSTACK_TIERS_FILE: {} is not valid", path.display())
            })?;
            tiers.0.extend(extra);
        }
        Ok(tiers)
    }

    pub fn get(&self, name: &str) -> Option<&Tier> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_trial_two_paid_tiers_and_self_hosted() {
        let tiers = Tiers::default();
        assert!(!tiers.get(TRIAL).expect("trial").live_keys);
        let paid = tiers
            .names()
            .filter(|n| tiers.get(n).is_some_and(|t| t.billing == "monthly"))
            .count();
        assert!(paid >= 2);
        assert!(
            tiers
                .get(SELF_HOSTED)
                .expect("self_hosted")
                .max_concurrent_sessions
                .is_none()
        );
    }
}
