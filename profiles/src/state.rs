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
