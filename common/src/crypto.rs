//! Secrets at rest (endpoint secrets, TOTP secrets, stored idempotent answers): AES-256-GCM with
//! a key derived from the master key for each use. Stored form: version byte 1, 12-byte random
//! nonce, ciphertext with tag.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, OsRng, rand_core::RngCore},
};

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// Keys of earlier master keys: still opened, never used to seal.
    previous: Vec<Aes256Gcm>,
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
            previous: Vec::new(),
        }
    }

    /// Also opens secrets sealed under `keys` (after a master key rotation).
    pub fn with_previous(mut self, keys: &[[u8; 32]]) -> Self {
        self.previous
            .extend(keys.iter().map(|k| Aes256Gcm::new(k.into())));
        self
    }

    pub fn seal(&self, plaintext: &str) -> anyhow::Result<Vec<u8>> {
        self.seal_bytes(plaintext.as_bytes())
    }

    pub fn seal_bytes(&self, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext)
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<String> {
        Ok(String::from_utf8(self.open_bytes(sealed)?)?)
    }

    pub fn open_bytes(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < 13 || sealed[0] != 1 {
            anyhow::bail!("unknown secret format");
        }
        let nonce: [u8; 12] = sealed[1..13]
            .try_into()
            .map_err(|_| anyhow::anyhow!("unknown secret format"))?;
        let nonce = Nonce::from(nonce);
        std::iter::once(&self.cipher)
            .chain(&self.previous)
            .find_map(|c| c.decrypt(&nonce, &sealed[13..]).ok())
            .ok_or_else(|| anyhow::anyhow!("a secret could not be decrypted (wrong master key?)"))
    }
}

/// Lowercase hex of some bytes (digests, addresses).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let b = SecretBox::new(&[3u8; 32]);
        let sealed = b.seal("whsec_abc").expect("seal");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        // After a rotation, secrets sealed under the old key still open.
        let rotated = SecretBox::new(&[4u8; 32]).with_previous(&[[3u8; 32]]);
        assert_eq!(rotated.open(&sealed).expect("open old"), "whsec_abc");
        assert!(SecretBox::new(&[4u8; 32]).open(&sealed).is_err());
        assert_eq!(b.open(&sealed).expect("open"), "whsec_abc");
        assert!(SecretBox::new(&[4u8; 32]).open(&sealed).is_err());
    }
}
