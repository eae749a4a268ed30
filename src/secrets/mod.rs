//! Keeping secrets out of the event log, the read models, the logs and the API.
//!
//! One master key (TOKEN_ENCRYPTION_KEY) is split by HMAC-SHA256 into purpose-bound subkeys,
//! so that a fingerprint or a webhook secret can never be used to open a sealed token.
//!
//! Keys rotate ([`key_ring`]): a sealed value names the key that sealed it (`v2.<key id>.…`),
//! the current key seals, and retired keys still open what they sealed. A value sealed
//! before key ids existed (`v1.…`) was sealed with the store's first key, its root.

pub mod key_ring;

pub use key_ring::{KeyId, KeyRing};

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use aggregates::bot::{BotToken, SealedToken, TokenSealer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A string that never prints itself: for API keys and passwords held in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The master key from configuration. `Debug` does not print it.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn from_base64(raw: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(raw.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(raw.trim()))
            .map_err(|_| {
                "must be base64 (generate one with `openssl rand -base64 32`)".to_owned()
            })?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("must decode to exactly 32 bytes, not {}", b.len()))?;
        Ok(Self(key))
    }

    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// A subkey bound to one purpose, for another module's cipher.
    pub fn derive_for(&self, purpose: &str) -> [u8; 32] {
        self.derive(purpose)
    }

    /// A subkey bound to one purpose.
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.0, purpose.as_bytes())
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

/// Why a sealed token could not be opened: a key not in the ring, or a damaged ciphertext.
#[derive(Debug, thiserror::Error)]
#[error("the sealed bot token cannot be opened with TOKEN_ENCRYPTION_KEY or the keys it retired")]
pub struct UnsealError;

/// Seals bot tokens with AES-256-GCM and fingerprints them with a keyed HMAC.
#[derive(Clone)]
pub struct TokenCipher {
    /// Seals every new token.
    current: (KeyId, Aes256Gcm),
    /// Opens tokens by the key id they carry: the current key and every retired one.
    by_id: HashMap<KeyId, Aes256Gcm>,
    /// Opens tokens sealed before key ids existed (`v1.`).
    root: Aes256Gcm,
    /// Fingerprints and webhook secrets come from the root key and never rotate: a webhook
    /// registered with Telegram keeps its secret, and a token keeps its fingerprint, so that
    /// "is this token used by another bot?" compares like with like across rotations.
    fingerprint_key: [u8; 32],
    webhook_key: [u8; 32],
}

/// Prefix of a token sealed before key ids existed: under the root key.
const SEALED_PREFIX_V1: &str = "v1.";
/// Prefix of the sealed form with a key id: `v2.<key id>.<base64>`.
const SEALED_PREFIX_V2: &str = "v2.";

const TOKEN_PURPOSE: &str = "botfleet/token-encryption/v1";

fn token_cipher(key: &TokenKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&key.derive(TOKEN_PURPOSE)).expect("32-byte key")
}

impl TokenCipher {
    /// A cipher with one key, which is also the root (a store without rotations, and tests).
    pub fn new(key: &TokenKey) -> Self {
        Self::from_ring(&KeyRing::single(key.clone()))
    }

    pub fn from_ring(ring: &KeyRing) -> Self {
        let current = ring.current();
        Self {
            current: (current.id(), token_cipher(current)),
            by_id: ring.keys().map(|k| (k.id(), token_cipher(k))).collect(),
            root: token_cipher(ring.root()),
            fingerprint_key: ring.root().derive("botfleet/token-fingerprint/v1"),
            webhook_key: ring.root().derive("botfleet/webhook-secret/v1"),
        }
    }

    pub fn open(&self, sealed: &str) -> Result<BotToken, UnsealError> {
        let (cipher, encoded) = if let Some(rest) = sealed.strip_prefix(SEALED_PREFIX_V2) {
            let (id, encoded) = rest.split_once('.').ok_or(UnsealError)?;
            (
                self.by_id.get(&KeyId::from(id)).ok_or(UnsealError)?,
                encoded,
            )
        } else {
            let encoded = sealed.strip_prefix(SEALED_PREFIX_V1).ok_or(UnsealError)?;
            (&self.root, encoded)
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| UnsealError)?;
        if bytes.len() < 12 {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| UnsealError)?;
        let text = String::from_utf8(plain).map_err(|_| UnsealError)?;
        BotToken::parse(&text).map_err(|_| UnsealError)
    }

    /// The secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` for one bot's
    /// webhook: derived, so it is unique per bot, never stored, and never the bot token.
    pub fn webhook_secret(&self, bot_id: uuid::Uuid) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.webhook_key, bot_id.as_bytes()))
    }
}

/// Whether `sealed` has the shape of a sealed token (a prefix, then a nonce and at least an
/// authentication tag in base64): only such a value that fails to open says "another key".
pub fn looks_sealed(sealed: &str) -> bool {
    let encoded = match sealed.strip_prefix(SEALED_PREFIX_V2) {
        Some(rest) => rest.split_once('.').map(|(_, encoded)| encoded),
        None => sealed.strip_prefix(SEALED_PREFIX_V1),
    };
    encoded
        .and_then(|e| STANDARD.decode(e).ok())
        .is_some_and(|bytes| bytes.len() >= 12 + 16)
}

impl TokenSealer for TokenCipher {
    fn seal(&self, token: &BotToken) -> SealedToken {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let (key_id, cipher) = &self.current;
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), token.expose().as_bytes())
            .expect("AES-GCM encryption of a short token cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        SealedToken {
            ciphertext: format!("{SEALED_PREFIX_V2}{key_id}.{}", STANDARD.encode(sealed)),
            fingerprint: self.fingerprint(token),
            hint: token.hint(),
        }
    }

    fn fingerprint(&self, token: &BotToken) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(
            &self.fingerprint_key,
            token.expose().as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1";

    fn cipher(byte: u8) -> TokenCipher {
        TokenCipher::new(&TokenKey::from_bytes([byte; 32]))
    }

    #[test]
    fn a_sealed_token_opens_with_its_key_and_hides_the_plaintext() {
        let token = BotToken::parse(TOKEN).unwrap();
        let sealed = cipher(1).seal(&token);
        assert!(!sealed.ciphertext.contains("AAHdq"));
        assert!(!sealed.fingerprint.contains("AAHdq"));
        assert_eq!(cipher(1).open(&sealed.ciphertext).unwrap(), token);
        assert!(cipher(2).open(&sealed.ciphertext).is_err());
    }

    #[test]
    fn sealing_twice_differs_but_fingerprints_agree() {
        let token = BotToken::parse(TOKEN).unwrap();
        let (a, b) = (cipher(1).seal(&token), cipher(1).seal(&token));
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, cipher(2).fingerprint(&token));
    }

    #[test]
    fn a_token_names_its_key_and_retired_keys_still_open_theirs() {
        let token = BotToken::parse(TOKEN).unwrap();
        let (old, new) = (TokenKey::from_bytes([1; 32]), TokenKey::from_bytes([2; 32]));
        let sealed_old = cipher(1).seal(&token).ciphertext;
        assert!(
            sealed_old.starts_with(&format!("v2.{}.", old.id())),
            "{sealed_old}"
        );

        let rotated =
            TokenCipher::from_ring(&KeyRing::new(new.clone(), vec![old.clone()], old.id()));
        let sealed_new = rotated.seal(&token).ciphertext;
        assert!(
            sealed_new.starts_with(&format!("v2.{}.", new.id())),
            "{sealed_new}"
        );
        assert_eq!(rotated.open(&sealed_old).unwrap(), token);
        assert_eq!(rotated.open(&sealed_new).unwrap(), token);
        assert!(
            cipher(1).open(&sealed_new).is_err(),
            "the old key alone cannot"
        );
        // Fingerprints and webhook secrets stay the root's.
        assert_eq!(rotated.fingerprint(&token), cipher(1).fingerprint(&token));
        let bot = uuid::Uuid::from_u128(7);
        assert_eq!(rotated.webhook_secret(bot), cipher(1).webhook_secret(bot));
    }

    #[test]
    fn a_token_sealed_before_key_ids_opens_with_the_root_key() {
        // The format of earlier releases: "v1." and the nonce and ciphertext, under the root.
        let token = BotToken::parse(TOKEN).unwrap();
        let root = TokenKey::from_bytes([1; 32]);
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut bytes = nonce.to_vec();
        bytes.extend(
            token_cipher(&root)
                .encrypt(Nonce::from_slice(&nonce), TOKEN.as_bytes())
                .unwrap(),
        );
        let legacy = format!("v1.{}", STANDARD.encode(bytes));
        assert_eq!(cipher(1).open(&legacy).unwrap(), token);
        let new = TokenKey::from_bytes([2; 32]);
        let rotated = TokenCipher::from_ring(&KeyRing::new(new, vec![root.clone()], root.id()));
        assert_eq!(rotated.open(&legacy).unwrap(), token);
        assert!(cipher(2).open(&legacy).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(TokenKey::from_base64("not base64!").is_err());
        assert!(TokenKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(TokenKey::from_base64(&STANDARD.encode([0u8; 32])).is_ok());
        assert_eq!(
            format!("{:?}", TokenKey::from_bytes([9; 32])),
            "TokenKey([redacted])"
        );
    }

    #[test]
    fn webhook_secrets_are_per_bot_and_in_telegrams_alphabet() {
        let c = cipher(1);
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        assert_ne!(c.webhook_secret(a), c.webhook_secret(b));
        assert!(c
            .webhook_secret(a)
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || x == b'_' || x == b'-'));
    }
}
