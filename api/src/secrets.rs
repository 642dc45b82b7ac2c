//! The master key and the keys derived from it.
//!
//! The master key comes from `DRIFTSTACK_MASTER_KEY` or, in embedded mode, from
//! `$DRIFTSTACK_DATA_DIR/master.key`, generated on first start with mode 0600. Purpose-specific
//! keys are derived with HMAC-SHA256(master, purpose), so a key used for one thing (signing CDP
//! connect tokens) can never be confused with another (encrypting profile state).

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::{TryRngCore, rngs::OsRng};
use sha2::Sha256;

use crate::config::Config;

#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// The configured key, or — for the embedded single node only — the one in the data dir
    /// (created when missing). On PostgreSQL, on API-only nodes and on runner nodes a generated
    /// key is refused: every node of a cluster needs the same key, so the operator sets it.
    pub fn load(config: &Config, backend: common::db::Backend) -> anyhow::Result<Self> {
        if let Some(key) = &config.master_key {
            return Ok(MasterKey(*key.expose()));
        }
        let clustered = backend == common::db::Backend::Postgres
            || !config.embedded_runner
            || config.runner_only;
        if clustered {
            anyhow::bail!(
                "DRIFTSTACK_MASTER_KEY: must be set on PostgreSQL and on cluster nodes, the same \
                 on every node (`head -c 32 /dev/urandom | base64`; a node that generated one \
                 keeps it in $DRIFTSTACK_DATA_DIR/master.key)"
            );
        }
        Self::load_or_create_file(&config.data_dir.join("master.key"))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        MasterKey(key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn load_or_create_file(path: &Path) -> anyhow::Result<Self> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = b64
                    .decode(text.trim())
                    .with_context(|| format!("{} is not base64", path.display()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
                Ok(MasterKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                OsRng.try_fill_bytes(&mut key)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, b64.encode(key).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(MasterKey(key))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The codec for profile state: encrypted under a key derived from this master key (its key
    /// id names it), still able to read blobs written under `previous` master keys.
    pub fn profile_codec(&self, previous: &[[u8; 32]]) -> profiles::BlobCodec {
        let (id, key) = profile_key(self);
        let mut keyring = profiles::Keyring::new(&id, key);
        for old in previous {
            let (id, key) = profile_key(&MasterKey(*old));
            keyring = keyring.with_old(&id, key);
        }
        profiles::BlobCodec::new(keyring, self.derive("profile-state-address"))
    }

    /// The keys `previous` master keys derive for `purpose` (to read what they protected).
    pub fn derive_all(previous: &[[u8; 32]], purpose: &str) -> Vec<[u8; 32]> {
        previous
            .iter()
            .map(|k| MasterKey(*k).derive(purpose))
            .collect()
    }

    /// A 32-byte key for one purpose.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A master key's profile-state key and its id (a fingerprint of the key, safe to store).
fn profile_key(master: &MasterKey) -> (String, [u8; 32]) {
    use sha2::Digest;
    let key = master.derive("profile-state-encryption");
    let digest = Sha256::digest(key);
    let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    (format!("mk-{id}"), key)
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The credential a live link's page gets for one link in exchange for its one-time token:
/// `lv.<link id>.<mode>.<expiry unix seconds>.<base64url HMAC-SHA256(key, "viewer" session link
/// mode expiry)>`. It opens only the live view (never raw CDP), in the link's mode, while the
/// link is neither revoked nor expired (checked at the socket, too).
pub mod viewer_token {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    fn mac(key: &[u8; 32], session_id: &str, link: &str, mode: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| super::unreachable_hmac());
        for part in ["viewer", session_id, link, mode, &expires.to_string()] {
            mac.update(part.as_bytes());
            mac.update(b"|");
        }
        mac
    }

    pub fn sign(key: &[u8; 32], session_id: &str, link: &str, mode: &str, expires: i64) -> String {
        let sig = mac(key, session_id, link, mode, expires)
            .finalize()
            .into_bytes();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
        format!("lv.{link}.{mode}.{expires}.{sig}")
    }

    /// The link and mode `token` was signed for, if it is for `session_id` and not expired at
    /// `now` (unix seconds).
    pub fn verify(
        key: &[u8; 32],
        session_id: &str,
        token: &str,
        now: i64,
    ) -> Option<(String, String)> {
        let mut parts = token.split('.');
        let (Some("lv"), Some(link), Some(mode), Some(exp), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expires = exp.parse::<i64>().ok()?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .ok()?;
        (now < expires
            && mac(key, session_id, link, mode, expires)
                .verify_slice(&sig)
                .is_ok())
        .then(|| (link.to_owned(), mode.to_owned()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn tokens_bind_session_link_mode_and_expiry() {
            let key = [7u8; 32];
            let t = sign(&key, "ses_a", "lvl_1", "view", 1_000);
            assert_eq!(
                verify(&key, "ses_a", &t, 999),
                Some(("lvl_1".into(), "view".into()))
            );
            assert_eq!(verify(&key, "ses_a", &t, 1_000), None, "expired");
            assert_eq!(verify(&key, "ses_b", &t, 999), None, "other session");
            let upgraded = t.replacen(".view.", ".interact.", 1);
            assert_eq!(
                verify(&key, "ses_a", &upgraded, 999),
                None,
                "mode is signed"
            );
            assert_eq!(verify(&[8u8; 32], "ses_a", &t, 999), None, "other key");
        }
    }
}

/// Short-lived tokens that let a `connect_url` open a session's CDP socket without a header:
/// `<expiry unix seconds>.<base64url HMAC-SHA256(key, "session_id.expiry")>`.
pub mod connect_token {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    fn mac(key: &[u8; 32], session_id: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| super::unreachable_hmac());
        mac.update(session_id.as_bytes());
        mac.update(b".");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    pub fn sign(key: &[u8; 32], session_id: &str, expires: i64) -> String {
        let sig = mac(key, session_id, expires).finalize().into_bytes();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
        format!("{expires}.{sig}")
    }

    /// Whether `token` was signed for `session_id` and has not expired at `now` (unix seconds).
    pub fn verify(key: &[u8; 32], session_id: &str, token: &str, now: i64) -> bool {
        let Some((exp, sig)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires) = exp.parse::<i64>() else {
            return false;
        };
        let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        now < expires && mac(key, session_id, expires).verify_slice(&sig).is_ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn tokens_bind_session_and_expiry() {
            let key = [7u8; 32];
            let t = sign(&key, "ses_a", 1_000);
            assert!(verify(&key, "ses_a", &t, 999));
            assert!(!verify(&key, "ses_a", &t, 1_000), "expired");
            assert!(!verify(&key, "ses_b", &t, 999), "other session");
            assert!(!verify(&[8u8; 32], "ses_a", &t, 999), "other key");
            let tampered = t.replacen("1000", "9999", 1);
            assert!(!verify(&key, "ses_a", &tampered, 999), "tampered expiry");
            assert!(!verify(&key, "ses_a", "garbage", 0));
        }
    }
}
