//! Several sealing keys at once: the current one seals, retired ones still open what they
//! sealed (the event log is immutable, so old ciphertexts are never re-sealed).
//!
//! A key is known by its [`KeyId`], eight characters derived from it that reveal nothing of
//! it; every sealed value carries the id of its key. The ring is kept in the store
//! (`sealing_keys`, see the `keyring` room) with each retired key sealed under the current
//! one, so the current key is the only secret an operator keeps.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;

use super::{hmac_sha256, TokenKey};

/// A key's public name: safe to log, show and store beside what it sealed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for KeyId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TokenKey {
    /// This key's id: 48 bits of an HMAC under it, base64url (no `.`, so it can sit in a
    /// dotted sealed value).
    pub fn id(&self) -> KeyId {
        let mac = hmac_sha256(&self.0, b"botfleet/key-id/v1");
        KeyId(URL_SAFE_NO_PAD.encode(&mac[..6]))
    }

    /// What the store keeps to recognise this key at start: an HMAC under it, useless
    /// without it.
    pub fn check_value(&self) -> String {
        URL_SAFE_NO_PAD.encode(hmac_sha256(&self.0, b"botfleet/key-check/v1"))
    }

    /// Seals `other` under this key, for the store's ring of retired keys.
    pub fn seal_key(&self, other: &TokenKey) -> String {
        let cipher = self.ring_cipher();
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let id = other.id();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &other.0,
                    aad: id.as_str().as_bytes(),
                },
            )
            .expect("AES-GCM sealing cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// Opens a key sealed by [`TokenKey::seal_key`] under this one; `id` must be its id.
    pub fn open_key(&self, sealed: &str, id: &KeyId) -> Option<TokenKey> {
        let bytes = STANDARD.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, body) = bytes.split_at(12);
        let plain = self
            .ring_cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: id.as_str().as_bytes(),
                },
            )
            .ok()?;
        let key = TokenKey::from_bytes(plain.try_into().ok()?);
        (key.id() == *id).then_some(key)
    }

    fn ring_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.derive("botfleet/key-ring/v1")).expect("32-byte key")
    }
}

/// The keys a process seals and opens with.
#[derive(Clone)]
pub struct KeyRing {
    current: TokenKey,
    retired: Vec<TokenKey>,
    /// The store's first key: values without a key id were sealed with it, and fingerprints
    /// and webhook secrets stay derived from it.
    root: KeyId,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.id())
            .field(
                "retired",
                &self.retired.iter().map(TokenKey::id).collect::<Vec<_>>(),
            )
            .field("root", &self.root)
            .finish()
    }
}

impl KeyRing {
    /// One key, current and root: a store that never rotated.
    pub fn single(key: TokenKey) -> Self {
        let root = key.id();
        Self {
            current: key,
            retired: Vec::new(),
            root,
        }
    }

    /// `root` must be the id of `current` or of one of `retired`; otherwise the current key
    /// stands in for it.
    pub fn new(current: TokenKey, retired: Vec<TokenKey>, root: KeyId) -> Self {
        Self {
            current,
            retired,
            root,
        }
    }

    /// The key that seals.
    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    /// Every key that opens: the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &TokenKey> {
        std::iter::once(&self.current).chain(&self.retired)
    }

    pub fn get(&self, id: &KeyId) -> Option<&TokenKey> {
        self.keys().find(|k| k.id() == *id)
    }

    /// The key that values without a key id were sealed with.
    pub fn root(&self) -> &TokenKey {
        self.get(&self.root).unwrap_or(&self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sealed_under_another_opens_only_with_it_and_its_own_id() {
        let (current, old) = (TokenKey::from_bytes([1; 32]), TokenKey::from_bytes([2; 32]));
        let sealed = current.seal_key(&old);
        assert_eq!(current.open_key(&sealed, &old.id()).unwrap().id(), old.id());
        assert!(old.open_key(&sealed, &old.id()).is_none(), "another key");
        assert!(
            current.open_key(&sealed, &current.id()).is_none(),
            "another id"
        );
    }

    #[test]
    fn ids_and_check_values_differ_per_key_and_reveal_nothing_printable() {
        let (a, b) = (TokenKey::from_bytes([1; 32]), TokenKey::from_bytes([2; 32]));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().as_str().len(), 8);
        assert!(!a.id().as_str().contains('.'));
        assert_ne!(a.check_value(), b.check_value());
        let ring = KeyRing::new(b.clone(), vec![a.clone()], a.id());
        assert_eq!(ring.root().id(), a.id());
        assert_eq!(ring.keys().count(), 2);
        assert!(!format!("{ring:?}").contains("[1, 1"));
    }
}
