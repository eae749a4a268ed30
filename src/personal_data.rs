//! The keys of personal data: sealing a person's names and texts, opening them, forgetting
//! the person (crypto-shredding).
//!
//! Each person (a Telegram user id) gets a random AES-256-GCM key, stored sealed under a
//! subkey of TOKEN_ENCRYPTION_KEY in `personal_keys` (`v2.<key id>.…`, the key id of the ring's
//! key that sealed it; a key stored before key ids existed is bare base64, under the root key). Forgetting deletes the key: from then
//! on every value sealed under it, wherever it was copied, is unreadable. Keys are cached in
//! each process for at most [`KEY_CACHE_TTL`], so a forget reaches other processes within it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aggregates::chat::{IncomingMessage, TelegramChat, TelegramUser};
use aggregates::personal::PersonalText;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sqlx::PgPool;

use crate::secrets::{KeyId, KeyRing, TokenKey};

/// How long a process trusts its cached copy of a key (or of its absence).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// What a forgotten value reads as.
pub const FORGOTTEN: &str = "[forgotten]";

pub struct PersonalDataVault {
    pool: PgPool,
    /// Seals new per-person keys at rest: the ring's current key.
    key_sealer: (KeyId, Aes256Gcm),
    /// Opens per-person keys by the id they carry: every key of the ring.
    key_openers: HashMap<KeyId, Aes256Gcm>,
    /// Opens per-person keys stored without a key id.
    root_opener: Aes256Gcm,
    cache: Mutex<HashMap<i64, CachedKey>>,
}

/// A key (or its absence: forgotten, or never made) and when it was read.
type CachedKey = (Instant, Option<[u8; 32]>);

fn seal_bytes(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("AES-GCM sealing cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

fn open_bytes(cipher: &Aes256Gcm, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, body) = bytes.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

/// The prefix of a per-person key sealed with a key id.
const SEALED_KEY_PREFIX: &str = "v2.";

fn key_sealer(master: &TokenKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&master.derive_for("botfleet/personal-keys/v1")).expect("32-byte key")
}

impl PersonalDataVault {
    pub fn new(pool: PgPool, ring: &KeyRing) -> Self {
        Self {
            pool,
            key_sealer: (ring.current().id(), key_sealer(ring.current())),
            key_openers: ring.keys().map(|k| (k.id(), key_sealer(k))).collect(),
            root_opener: key_sealer(ring.root()),
            cache: Mutex::default(),
        }
    }

    /// A new person's key, sealed under the ring's current key.
    fn seal_key(&self, key: &[u8; 32], subject: i64) -> String {
        let (id, sealer) = &self.key_sealer;
        let sealed = seal_bytes(sealer, key, &subject.to_be_bytes());
        format!("{SEALED_KEY_PREFIX}{id}.{sealed}")
    }

    /// A person's key as stored, opened with the ring key it names (or the root key).
    fn open_key(&self, stored: &str, subject: i64) -> Option<[u8; 32]> {
        let (opener, sealed) = match stored.strip_prefix(SEALED_KEY_PREFIX) {
            Some(rest) => {
                let (id, sealed) = rest.split_once('.')?;
                (self.key_openers.get(&KeyId::from(id))?, sealed)
            }
            // Bare base64 (it has no `.`): stored before key ids existed.
            None => (&self.root_opener, stored),
        };
        open_bytes(opener, sealed, &subject.to_be_bytes())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
    }

    fn cached(&self, subject: i64) -> Option<Option<[u8; 32]>> {
        let cache = self.cache.lock().expect("key cache");
        cache
            .get(&subject)
            .filter(|(at, _)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(_, key)| *key)
    }

    fn remember(&self, subject: i64, key: Option<[u8; 32]>) {
        let mut cache = self.cache.lock().expect("key cache");
        if cache.len() > 100_000 {
            cache.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
        }
        cache.insert(subject, (Instant::now(), key));
    }

    /// The subject's key; with `create`, made when there is none.
    async fn key(&self, subject: i64, create: bool) -> Result<Option<[u8; 32]>, sqlx::Error> {
        if let Some(key) = self.cached(subject) {
            if key.is_some() || !create {
                return Ok(key);
            }
        }
        let mut sealed: Option<String> = None;
        if create {
            let mut fresh = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut fresh);
            let proposed = self.seal_key(&fresh, subject);
            // One round trip: ours when new, the existing one otherwise (when another writer
            // made it after this statement's snapshot, neither shows: read it below).
            sealed = sqlx::query_scalar(
                "WITH made AS (
                    INSERT INTO personal_keys (subject, sealed_key) VALUES ($1, $2)
                    ON CONFLICT (subject) DO NOTHING
                    RETURNING sealed_key
                 )
                 SELECT sealed_key FROM made
                 UNION ALL
                 SELECT sealed_key FROM personal_keys WHERE subject = $1
                 LIMIT 1",
            )
            .bind(subject)
            .bind(proposed)
            .fetch_optional(&self.pool)
            .await?;
        }
        if sealed.is_none() {
            sealed = sqlx::query_scalar("SELECT sealed_key FROM personal_keys WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        }
        let key = sealed.and_then(|s| self.open_key(&s, subject));
        self.remember(subject, key);
        Ok(key)
    }

    /// Seals `text` under `subject`'s key (made on first use).
    pub async fn seal(&self, subject: i64, text: &str) -> Result<PersonalText, sqlx::Error> {
        let key = self
            .key(subject, true)
            .await?
            .expect("a key was just made for the subject");
        let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
        Ok(PersonalText::Sealed {
            subject,
            ciphertext: seal_bytes(&cipher, text.as_bytes(), &subject.to_be_bytes()),
        })
    }

    /// Seals a value that is still plain; a sealed one is left as it is.
    pub async fn seal_value(
        &self,
        subject: i64,
        value: PersonalText,
    ) -> Result<PersonalText, sqlx::Error> {
        match value {
            PersonalText::Plain(text) => self.seal(subject, &text).await,
            sealed => Ok(sealed),
        }
    }

    async fn seal_option(
        &self,
        subject: i64,
        value: Option<PersonalText>,
    ) -> Result<Option<PersonalText>, sqlx::Error> {
        match value {
            Some(value) => Ok(Some(self.seal_value(subject, value).await?)),
            None => Ok(None),
        }
    }

    /// The person a message's personal data belongs to: its sender, else its chat.
    pub fn subject_of(chat: &TelegramChat, from: Option<&TelegramUser>) -> i64 {
        from.map_or(chat.id, |user| user.id)
    }

    pub async fn seal_chat(
        &self,
        subject: i64,
        chat: TelegramChat,
    ) -> Result<TelegramChat, sqlx::Error> {
        Ok(TelegramChat {
            title: self.seal_option(subject, chat.title).await?,
            username: self.seal_option(subject, chat.username).await?,
            ..chat
        })
    }

    pub async fn seal_user(&self, user: TelegramUser) -> Result<TelegramUser, sqlx::Error> {
        let subject = user.id;
        Ok(TelegramUser {
            first_name: self.seal_value(subject, user.first_name).await?,
            last_name: self.seal_option(subject, user.last_name).await?,
            username: self.seal_option(subject, user.username).await?,
            ..user
        })
    }

    /// Seals every personal field of an incoming message.
    pub async fn seal_message(
        &self,
        message: IncomingMessage,
    ) -> Result<IncomingMessage, sqlx::Error> {
        let subject = Self::subject_of(&message.chat, message.from.as_ref());
        let from = match message.from {
            Some(user) => Some(self.seal_user(user).await?),
            None => None,
        };
        Ok(IncomingMessage {
            chat: self.seal_chat(subject, message.chat).await?,
            text: self.seal_value(subject, message.text).await?,
            from,
            ..message
        })
    }

    /// The plaintext, or `None` when its person was forgotten.
    pub async fn open(&self, value: &PersonalText) -> Result<Option<String>, sqlx::Error> {
        let (subject, ciphertext) = match value {
            PersonalText::Plain(text) => return Ok(Some(text.clone())),
            PersonalText::Sealed {
                subject,
                ciphertext,
            } => (*subject, ciphertext),
        };
        let Some(key) = self.key(subject, false).await? else {
            return Ok(None);
        };
        let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
        Ok(open_bytes(&cipher, ciphertext, &subject.to_be_bytes())
            .and_then(|bytes| String::from_utf8(bytes).ok()))
    }

    /// The plaintext, or [`FORGOTTEN`].
    pub async fn reveal(&self, value: &PersonalText) -> Result<String, sqlx::Error> {
        Ok(self
            .open(value)
            .await?
            .unwrap_or_else(|| FORGOTTEN.to_owned()))
    }

    /// A read-model column's plaintext (see `PersonalText::to_column`), or [`FORGOTTEN`].
    pub async fn reveal_column(&self, column: &str) -> Result<String, sqlx::Error> {
        match PersonalText::from_column(column) {
            Some(value) => self.reveal(&value).await,
            None => Ok(column.to_owned()),
        }
    }

    pub async fn reveal_column_option(
        &self,
        column: Option<&str>,
    ) -> Result<Option<String>, sqlx::Error> {
        match column {
            Some(column) => Ok(Some(self.reveal_column(column).await?)),
            None => Ok(None),
        }
    }

    /// Destroys `subject`'s key; returns whether there was one.
    pub async fn forget(&self, subject: i64) -> Result<bool, sqlx::Error> {
        let had_key = destroy_key(&self.pool, subject).await?;
        self.remember(subject, None);
        Ok(had_key)
    }
}

/// Deletes `subject`'s key; needs no key material, so the CLI can do it too.
async fn destroy_key(pool: &PgPool, subject: i64) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM personal_keys WHERE subject = $1")
        .bind(subject)
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Forgets a person everywhere: destroys their key and records that it happened. `vault`,
/// when given, also drops its cached copy at once (other processes drop theirs within
/// [`KEY_CACHE_TTL`]).
pub async fn forget_person(
    vault: Option<&PersonalDataVault>,
    pool: &PgPool,
    telegram_user_id: i64,
    actor: crate::event_store::Actor,
) -> anyhow::Result<bool> {
    use aggregates::person::{Person, PersonCommand};
    let had_data = match vault {
        Some(vault) => vault.forget(telegram_user_id).await?,
        None => destroy_key(pool, telegram_user_id).await?,
    };
    let people = crate::event_store::CommandGateway::<Person>::new(pool.clone(), ());
    people
        .execute(
            &telegram_user_id.to_string(),
            PersonCommand::RecordForgotten {
                telegram_user_id,
                had_data,
            },
            &crate::event_store::EventMetadata::new_request(actor),
        )
        .await
        .map_err(|e| anyhow::anyhow!("recording the erasure failed: {e}"))?;
    Ok(had_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(ring: &KeyRing) -> PersonalDataVault {
        // Never connected: these tests only seal and open keys in memory.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://unused@127.0.0.1:9/unused")
            .expect("a lazy pool");
        PersonalDataVault::new(pool, ring)
    }

    #[tokio::test]
    async fn a_persons_key_names_its_sealing_key_and_old_forms_open_with_the_root() {
        let (old, new) = (TokenKey::from_bytes([1; 32]), TokenKey::from_bytes([2; 32]));
        let key = [7u8; 32];
        let before = vault(&KeyRing::single(old.clone()));
        let sealed_before = before.seal_key(&key, 42);
        assert!(sealed_before.starts_with(&format!("v2.{}.", old.id())));
        // The form of earlier releases: bare base64 under the root key.
        let legacy = seal_bytes(&key_sealer(&old), &key, &42i64.to_be_bytes());

        let after = vault(&KeyRing::new(new.clone(), vec![old.clone()], old.id()));
        let sealed_after = after.seal_key(&key, 42);
        assert!(sealed_after.starts_with(&format!("v2.{}.", new.id())));
        for stored in [&sealed_before, &legacy, &sealed_after] {
            assert_eq!(after.open_key(stored, 42), Some(key), "{stored}");
        }
        assert_eq!(
            after.open_key(&sealed_before, 43),
            None,
            "bound to its person"
        );
        assert_eq!(
            before.open_key(&sealed_after, 42),
            None,
            "the new key is not the old"
        );
    }
}
