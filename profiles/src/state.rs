//! What a profile remembers between sessions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A cookie with every attribute Chromium reports, session cookies included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    /// Unix seconds; `None` for a session cookie.
    pub expires: Option<f64>,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`, when set.
    pub same_site: Option<String>,
    /// CHIPS partition key (top-level site), when Chromium gives one.
    pub partition_key: Option<String>,
}

/// localStorage of one origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginStorage {
    pub local_storage: BTreeMap<String, String>,
}

/// The state of a profile. Versioned, so later fields (IndexedDB) can be added compatibly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    pub version: u32,
    pub cookies: Vec<Cookie>,
    /// Origin (e.g. `https://example.com`) → its storage.
    pub origins: BTreeMap<String, OriginStorage>,
    /// Reserved for IndexedDB contents; absent today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_db: Option<serde_json::Value>,
}

impl ProfileState {
    pub const VERSION: u32 = 1;

    /// Cookies per domain, for verifying what a save landed.
    pub fn cookie_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.cookies {
            *counts.entry(c.domain.clone()).or_insert(0) += 1;
        }
        counts
    }
}

impl ProfileState {
    /// What a save of this state should be seen to have stored.
    pub fn summary(&self, bytes: u64) -> StateSummary {
        StateSummary {
            cookies: self.cookies.len(),
            cookies_by_domain: self.cookie_counts(),
            origins: self.origins.len(),
            local_storage_items: self.origins.values().map(|o| o.local_storage.len()).sum(),
            bytes,
        }
    }
}

/// What a saved state holds, counted again from the stored blob after each save (so an empty or
/// partial save cannot go unnoticed), and shown to users on the profile and its snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSummary {
    pub cookies: usize,
    pub cookies_by_domain: BTreeMap<String, usize>,
    /// Origins with localStorage.
    pub origins: usize,
    pub local_storage_items: usize,
    /// Size of the stored (compressed, encrypted) blob.
    pub bytes: u64,
}

impl StateSummary {
    /// The same contents, whatever the blob's size.
    pub fn same_contents(&self, other: &StateSummary) -> bool {
        self.cookies == other.cookies
            && self.cookies_by_domain == other.cookies_by_domain
            && self.origins == other.origins
            && self.local_storage_items == other.local_storage_items
    }
}

/// A viewport size in CSS pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// A fixed position reported to pages that ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geolocation {
    pub latitude: f64,
    pub longitude: f64,
    /// Metres; default 50.
    pub accuracy: Option<f64>,
}

/// How a profile presents itself: applied to every session created on it (a session's own
/// settings override these one by one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub user_agent: Option<String>,
    pub viewport: Option<Size>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub geolocation: Option<Geolocation>,
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
}
