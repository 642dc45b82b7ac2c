//! The blob codec: `ProfileState` ⇄ stored bytes.
//!
//! Layout: `b"DSPB"`, version `1`, key-id length, key id, 12-byte nonce, then
//! AES-256-GCM(zstd(JSON)) with the header as associated data, so a blob cannot be moved under
//! another key id. Decoding picks the key by the id in the header: old blobs stay readable after
//! the current key changes. The blob's address is HMAC-SHA256(address key, JSON) in hex:
//! identical states share one address, and addresses reveal nothing of the content.

use std::collections::HashMap;

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, OsRng, Payload, rand_core::RngCore},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::ProfileState;

const MAGIC: &[u8; 4] = b"DSPB";
const VERSION: u8 = 1;
const ZSTD_LEVEL: i32 = 3;

/// Why a blob cannot be read (or written).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a profile blob")]
    NotABlob,
    #[error("profile blob version {0} is not supported")]
    Version(u8),
    #[error("no key with id `{0}` is configured")]
    UnknownKey(String),
    #[error("the blob does not decrypt (wrong key or corrupted)")]
    Decrypt,
    #[error("the blob decrypts but does not decode: {0}")]
    Decode(String),
    #[error("the state is larger than {limit} bytes after compression")]
    TooLarge { limit: usize },
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// The encryption keys by id; one is current (used to write).
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring(current: {}, {} keys)",
            self.current,
            self.keys.len()
        )
    }
}

impl Keyring {
    pub fn new(current_id: &str, key: [u8; 32]) -> Self {
        let mut keys = HashMap::new();
        keys.insert(current_id.to_owned(), key);
        Keyring {
            current: current_id.to_owned(),
            keys,
        }
    }

    /// Adds a key that can still decrypt older blobs.
    pub fn with_old(mut self, id: &str, key: [u8; 32]) -> Self {
        self.keys.entry(id.to_owned()).or_insert(key);
        self
    }
}

pub struct BlobCodec {
    keyring: Keyring,
    address_key: [u8; 32],
}

/// An encoded state.
pub struct Encoded {
    /// Content address (hex).
    pub address: String,
    pub bytes: Vec<u8>,
}

impl BlobCodec {
    pub fn new(keyring: Keyring, address_key: [u8; 32]) -> Self {
        BlobCodec {
            keyring,
            address_key,
        }
    }

    /// Serializes, compresses and encrypts `state`; refuses blobs over `limit` bytes.
    pub fn encode(&self, state: &ProfileState, limit: usize) -> Result<Encoded, CodecError> {
        let json = serde_json::to_vec(state).map_err(|e| CodecError::Encode(e.to_string()))?;
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.address_key)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        mac.update(&json);
        let address = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let compressed = zstd::bulk::compress(&json, ZSTD_LEVEL)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let key_id = &self.keyring.current;
        let key = self
            .keyring
            .keys
            .get(key_id)
            .ok_or_else(|| CodecError::UnknownKey(key_id.clone()))?;
        let id_len =
            u8::try_from(key_id.len()).map_err(|_| CodecError::Encode("key id too long".into()))?;
        let mut header = Vec::with_capacity(6 + key_id.len());
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.push(id_len);
        header.extend_from_slice(key_id.as_bytes());
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(key.into());
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &compressed,
                    aad: &header,
                },
            )
            .map_err(|_| CodecError::Encode("encryption failed".into()))?;
        let mut bytes = header;
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        if bytes.len() > limit {
            return Err(CodecError::TooLarge { limit });
        }
        Ok(Encoded { address, bytes })
    }

    /// Decrypts, decompresses and deserializes a blob, with the key its header names.
    pub fn decode(&self, bytes: &[u8]) -> Result<ProfileState, CodecError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(CodecError::NotABlob);
        }
        if bytes[4] != VERSION {
            return Err(CodecError::Version(bytes[4]));
        }
        let id_len = usize::from(bytes[5]);
        let header_len = 6 + id_len;
        if bytes.len() < header_len + 12 + 16 {
            return Err(CodecError::NotABlob);
        }
        let key_id =
            std::str::from_utf8(&bytes[6..header_len]).map_err(|_| CodecError::NotABlob)?;
        let key = self
            .keyring
            .keys
            .get(key_id)
            .ok_or_else(|| CodecError::UnknownKey(key_id.to_owned()))?;
        let nonce: [u8; 12] = bytes[header_len..header_len + 12]
            .try_into()
            .map_err(|_| CodecError::NotABlob)?;
        let compressed = Aes256Gcm::new(key.into())
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &bytes[header_len + 12..],
                    aad: &bytes[..header_len],
                },
            )
            .map_err(|_| CodecError::Decrypt)?;
        // A decompression bomb cannot grow past this.
        let json = zstd::bulk::decompress(&compressed, 256 << 20)
            .map_err(|e| CodecError::Decode(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| CodecError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::Rng;

    use super::*;
    use crate::state::{Cookie, OriginStorage};

    fn codec() -> BlobCodec {
        BlobCodec::new(Keyring::new("k1", [1u8; 32]), [9u8; 32])
    }

    fn random_state(rng: &mut impl Rng, cookies: usize, origins: usize) -> ProfileState {
        let text = |rng: &mut dyn rand::RngCore, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'a' + (rng.next_u32() % 26) as u8))
                .collect()
        };
        ProfileState {
            version: ProfileState::VERSION,
            cookies: (0..cookies)
                .map(|i| Cookie {
                    name: format!("c{i}"),
                    value: text(rng, 40),
                    domain: format!(".site{}.example", i % 50),
                    path: "/".into(),
                    expires: (i % 3 != 0).then_some(1.9e9),
                    http_only: i % 2 == 0,
                    secure: true,
                    same_site: Some("Lax".into()),
                    partition_key: (i % 7 == 0).then(|| "https://top.example".into()),
                })
                .collect(),
            origins: (0..origins)
                .map(|i| {
                    let mut ls = BTreeMap::new();
                    ls.insert("token".into(), text(rng, 64));
                    ls.insert("prefs".into(), text(rng, 200));
                    (
                        format!("https://site{i}.example"),
                        OriginStorage { local_storage: ls },
                    )
                })
                .collect(),
            indexed_db: None,
        }
    }

    #[test]
    fn round_trips_random_states_and_hides_the_plaintext() {
        let c = codec();
        let mut rng = rand::rng();
        for _ in 0..50 {
            let cookies = rng.random_range(0..300);
            let origins = rng.random_range(0..60);
            let state = random_state(&mut rng, cookies, origins);
            let enc = c.encode(&state, 16 << 20).expect("encode");
            assert_eq!(c.decode(&enc.bytes).expect("decode"), state);
            if let Some(cookie) = state.cookies.first() {
                let needle = cookie.value.as_bytes();
                assert!(
                    !enc.bytes.windows(needle.len()).any(|w| w == needle),
                    "plaintext in the blob"
                );
            }
        }
    }

    #[test]
    fn identical_states_share_an_address_but_not_bytes() {
        let c = codec();
        let state = random_state(&mut rand::rng(), 10, 3);
        let a = c.encode(&state, 1 << 20).expect("a");
        let b = c.encode(&state, 1 << 20).expect("b");
        assert_eq!(a.address, b.address);
        assert_ne!(a.bytes, b.bytes, "fresh nonce each time");
        let mut other = state.clone();
        other.cookies.pop();
        assert_ne!(c.encode(&other, 1 << 20).expect("c").address, a.address);
    }

    #[test]
    fn keys_rotate_and_tampering_is_detected() {
        let old = codec();
        let state = random_state(&mut rand::rng(), 5, 2);
        let blob = old.encode(&state, 1 << 20).expect("encode").bytes;
        let rotated = BlobCodec::new(
            Keyring::new("k2", [2u8; 32]).with_old("k1", [1u8; 32]),
            [9u8; 32],
        );
        assert_eq!(rotated.decode(&blob).expect("old blob still reads"), state);
        let without_old = BlobCodec::new(Keyring::new("k2", [2u8; 32]), [9u8; 32]);
        assert!(matches!(
            without_old.decode(&blob),
            Err(CodecError::UnknownKey(_))
        ));
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(old.decode(&tampered), Err(CodecError::Decrypt)));
        let mut relabelled = blob.clone();
        relabelled[6] = b'x';
        assert!(old.decode(&relabelled).is_err());
        assert!(matches!(old.decode(b"junk"), Err(CodecError::NotABlob)));
        assert!(matches!(old.decode(&[]), Err(CodecError::NotABlob)));
    }

    #[test]
    fn oversize_states_are_refused() {
        let c = codec();
        let state = random_state(&mut rand::rng(), 2000, 50);
        assert!(matches!(
            c.encode(&state, 1024),
            Err(CodecError::TooLarge { limit: 1024 })
        ));
    }
}
