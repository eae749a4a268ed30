//! Admin passwords: argon2id hashes in the PHC string format, checked off the async runtime.
//!
//! argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation) costs
//! tens of milliseconds of CPU on purpose, so hashing runs on the blocking pool, never on a
//! runtime worker that other requests are waiting for.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::secrets::Redacted;

/// The shortest password an admin account accepts.
pub const MIN_LENGTH: usize = 12;
/// The longest: enough for any passphrase, short enough that nobody makes us hash megabytes.
pub const MAX_LENGTH: usize = 1024;

/// A password, or why it cannot be one.
pub fn check_strength(password: &Redacted) -> Result<(), String> {
    let length = password.expose().chars().count();
    if length < MIN_LENGTH {
        Err(format!("must be at least {MIN_LENGTH} characters"))
    } else if length > MAX_LENGTH {
        Err(format!("must be at most {MAX_LENGTH} characters"))
    } else {
        Ok(())
    }
}

/// Hashes `password` with a fresh salt. Blocking: call [`hash`] from async code.
fn hash_blocking(password: &Redacted) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)?
        .to_string())
}

pub async fn hash(password: Redacted) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// A hash of a password nobody knows, checked when the email matches no admin, so that an
/// unknown email takes as long to refuse as a wrong password (no account enumeration by
/// timing).
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_blocking(&Redacted::new("decoy password, never matches".to_owned()))
        .expect("hashing a constant succeeds")
});

/// Whether `password` matches `stored` (a PHC string). With no stored hash the decoy is
/// checked and the answer is always no.
pub async fn verify(password: Redacted, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DECOY_HASH.clone());
        let matches = PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        });
        known && matches
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_argon2id_and_verifies_only_its_password() {
        let stored = hash(Redacted::new("correct horse battery".to_owned()))
            .await
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(
            verify(
                Redacted::new("correct horse battery".to_owned()),
                Some(stored.clone())
            )
            .await
        );
        assert!(
            !verify(
                Redacted::new("wrong horse battery".to_owned()),
                Some(stored)
            )
            .await
        );
        assert!(
            !verify(
                Redacted::new("decoy password, never matches".to_owned()),
                None
            )
            .await
        );
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_strength(&Redacted::new("short".to_owned())).is_err());
        assert!(check_strength(&Redacted::new("long enough password".to_owned())).is_ok());
    }
}
