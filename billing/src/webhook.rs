//! Stripe webhook signatures: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "{t}.{raw body}">` (several `v1` allowed, e.g. during a secret roll), checked in constant time
//! within a tolerance of the current time, then the event's envelope.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a signature's timestamp may be from now.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// The envelope of a Stripe event.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

fn sign(secret: &str, timestamp: &str, payload: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as hmac::KeyInit>::new(&Default::default()));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// The header value Stripe would send for `payload` at `timestamp` (for tests and tools).
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let hex: String = sign(secret, &timestamp.to_string(), payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `header` for `payload` against `secret` at `now` (Unix seconds).
pub fn verify(payload: &[u8], header: &str, secret: &str, now: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => signatures.push(unhex(sig).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    let at: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - at).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, t, payload);
    let matched = signatures
        .iter()
        .fold(0u8, |acc, s| acc | u8::from(bool::from(s.ct_eq(&expected))));
    if matched == 1 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_stale_wrong_and_malformed() {
        let body = br#"{"id":"evt_1","type":"x","data":{"object":{}}}"#;
        let header = signature_header("whsec_test", 1_700_000_000, body);
        assert_eq!(verify(body, &header, "whsec_test", 1_700_000_100), Ok(()));
        assert_eq!(
            verify(body, &header, "whsec_test", 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(body, &header, "whsec_other", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"{}", &header, "whsec_test", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        // Several v1 values: one matching is enough.
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(verify(body, &two, "whsec_test", 1_700_000_000), Ok(()));
        for bad in [
            "",
            "t=abc,v1=00",
            "v1=00",
            "t=1700000000",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify(body, bad, "whsec_test", 1_700_000_000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
