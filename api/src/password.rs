//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1, per OWASP) and the length rules:
//! at least 8 characters, at most 1,024, never truncated, no composition rules.

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 1024;

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Why a password is refused.
pub fn check_rules(password: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err("must be at least 8 characters");
    }
    if len > MAX_LEN {
        return Err("must be at most 1024 characters");
    }
    Ok(())
}

/// The PHC string of an argon2id hash of `password` with a fresh salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let hash: PasswordHash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Whether a stored hash was made with other (older, weaker) parameters than today's.
pub fn needs_rehash(phc: &str) -> bool {
    !phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
}

/// Whether `password` matches the stored PHC string.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterz", &phc));
        assert!(!needs_rehash(&phc));
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
        assert!(check_rules("short").is_err());
        assert!(check_rules(&"x".repeat(64)).is_ok());
    }
}
