//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`
//! keyed with the base64 part of a `whsec_…` secret. During a rotation both secrets sign and the
//! signatures are sent space-separated.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::{TryRngCore, rngs::OsRng};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    OsRng.try_fill_bytes(&mut key)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The `v1,<base64>` signature of one message with one secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|_| anyhow::anyhow!("a webhook secret is not base64"))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| anyhow::anyhow!("a webhook secret is empty"))?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The header value for all current secrets (one during normal times, two during a rotation).
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> anyhow::Result<String> {
    let sigs = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(sigs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .expect("sign");
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn rotation_sends_both_signatures() {
        let a = generate_secret().expect("a");
        let b = generate_secret().expect("b");
        assert!(a.starts_with("whsec_") && a.len() == 6 + 44);
        let header = signature_header(&[&a, &b], "msg_1", 1, b"{}").expect("header");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "msg_1", 1, b"{}").expect("a"));
        assert_eq!(parts[1], sign(&b, "msg_1", 1, b"{}").expect("b"));
    }
}
