//! The API key format: `ds_live_` or `ds_test_`, 32 random base62 characters (≈190 bits from the
//! OS CSPRNG), then a 6-character base62 CRC-32 checksum so scanners can validate a key offline and
//! we can reject typos without a database round trip. Keys are stored only as SHA-256 digests.

use rand::{TryRngCore, rngs::OsRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

/// Live keys need a paid (or self-hosted) tier; test keys belong to the trial tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyMode::Live => "ds_live_",
            KeyMode::Test => "ds_test_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(KeyMode::Live),
            "test" => Some(KeyMode::Test),
            _ => None,
        }
    }
}

fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

/// A fresh key in plain text, to be shown once.
pub fn generate(mode: KeyMode) -> anyhow::Result<String> {
    let mut random = String::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 64];
    while random.len() < RANDOM_LEN {
        OsRng.try_fill_bytes(&mut buf)?;
        // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
        for &byte in buf
            .iter()
            .filter(|&&b| b < 248)
            .take(RANDOM_LEN - random.len())
        {
            random.push(BASE62[(byte % 62) as usize] as char);
        }
    }
    let body = format!("{}{random}", mode.prefix());
    let sum = checksum(&body);
    Ok(format!("{body}{sum}"))
}

/// The mode of a well-formed key with a valid checksum; `None` for anything else.
pub fn check_format(key: &str) -> Option<KeyMode> {
    let mode = if key.starts_with(KeyMode::Live.prefix()) {
        KeyMode::Live
    } else if key.starts_with(KeyMode::Test.prefix()) {
        KeyMode::Test
    } else {
        return None;
    };
    let rest = &key[mode.prefix().len()..];
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    (checksum(body) == sum).then_some(mode)
}

/// The SHA-256 digest under which a credential is stored, as lowercase hex.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub use common::crypto::hex;

/// The last four characters, shown in listings.
pub fn last4(key: &str) -> String {
    key[key.len().saturating_sub(4)..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_pass_the_offline_check() {
        for mode in [KeyMode::Live, KeyMode::Test] {
            let key = generate(mode).expect("key");
            assert_eq!(key.len(), mode.prefix().len() + 38);
            assert_eq!(check_format(&key), Some(mode));
        }
    }

    #[test]
    fn a_changed_character_fails_the_checksum() {
        let key = generate(KeyMode::Live).expect("key");
        let mut chars: Vec<char> = key.chars().collect();
        let i = 12;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(check_format(&typo), None);
        assert_eq!(check_format("ds_live_short"), None);
        assert_eq!(check_format("Bearer nonsense"), None);
        assert_eq!(check_format(&key.replace("ds_live_", "ds_prod_")), None);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
