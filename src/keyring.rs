//! The store's sealing keys (`sealing_keys`): which key is current, which are retired, and the
//! check that refuses to start with a key that cannot open what is stored.
//!
//! Without the check, a service restarted with another TOKEN_ENCRYPTION_KEY starts, and its
//! bots silently stop answering (each token fails to open, once per poll). With it, the start
//! is refused with one line that names both keys by id.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::secrets::{KeyId, KeyRing, TokenCipher, TokenKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "TOKEN_ENCRYPTION_KEY (key id {configured}) cannot open what this database stores, which \
         is sealed under key id {current}: start with that key (README, Keys); refusing to run a \
         fleet whose bot tokens cannot be opened"
    )]
    Mismatch { configured: KeyId, current: KeyId },
    #[error(
        "TOKEN_ENCRYPTION_KEY (key id {configured}) was retired by `botfleet keys rotate` on \
         {retired_at}: start with the current key, id {current} (README, Keys)"
    )]
    Retired {
        configured: KeyId,
        retired_at: String,
        current: KeyId,
    },
    #[error(
        "TOKEN_ENCRYPTION_KEY (key id {configured}) cannot open the bot tokens this database \
         already holds: start with the key they were sealed with (README, Keys)"
    )]
    CannotOpenStored { configured: KeyId },
    #[error("the key ring is damaged: the retired key {0} cannot be opened with the current key")]
    Damaged(KeyId),
    #[error("the new key is already in the ring (key id {0})")]
    AlreadyKnown(KeyId),
    #[error("reading the sealing keys failed")]
    Store(#[from] sqlx::Error),
}

/// A row of `sealing_keys`, as `botfleet keys status` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub key_id: String,
    pub state: String,
    pub check_value: String,
    pub sealed_key: Option<String>,
    pub is_root: bool,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub async fn rows(pool: &PgPool) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key_id, state, check_value, sealed_key, is_root, created_at, retired_at
         FROM sealing_keys ORDER BY created_at, key_id",
    )
    .fetch_all(pool)
    .await
}

/// The ring the configured key opens, after checking it is the store's current key. A store
/// without keys yet (new, or from a release before key ids) takes the configured key as its
/// first, once it has shown it opens the tokens already stored.
pub async fn open(pool: &PgPool, configured: &TokenKey) -> Result<KeyRing, KeyCheckError> {
    let mut stored = rows(pool).await?;
    if stored.is_empty() {
        register_first(&mut *pool.acquire().await?, configured).await?;
        stored = rows(pool).await?;
    }
    ring_from(&stored, configured)
}

fn ring_from(stored: &[KeyRow], configured: &TokenKey) -> Result<KeyRing, KeyCheckError> {
    let configured_id = configured.id();
    let check = configured.check_value();
    let current = stored
        .iter()
        .find(|r| r.state == "current")
        .ok_or(KeyCheckError::Store(sqlx::Error::RowNotFound))?;
    if current.check_value != check {
        let current_id = KeyId::from(current.key_id.as_str());
        return Err(
            match stored
                .iter()
                .find(|r| r.state == "retired" && r.check_value == check)
            {
                Some(retired) => KeyCheckError::Retired {
                    configured: configured_id,
                    retired_at: retired
                        .retired_at
                        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default(),
                    current: current_id,
                },
                None => KeyCheckError::Mismatch {
                    configured: configured_id,
                    current: current_id,
                },
            },
        );
    }
    let mut retired = Vec::new();
    for row in stored.iter().filter(|r| r.state == "retired") {
        let id = KeyId::from(row.key_id.as_str());
        let key = row
            .sealed_key
            .as_deref()
            .and_then(|sealed| configured.open_key(sealed, &id))
            .ok_or_else(|| KeyCheckError::Damaged(id.clone()))?;
        retired.push(key);
    }
    let root = stored
        .iter()
        .find(|r| r.is_root)
        .map_or_else(|| configured_id.clone(), |r| KeyId::from(r.key_id.as_str()));
    Ok(KeyRing::new(configured.clone(), retired, root))
}

/// Records `key` as the store's first key, unless it cannot open a token already stored
/// (a store from a release before key ids). Two processes starting at once record one.
async fn register_first(
    conn: &mut sqlx::PgConnection,
    key: &TokenKey,
) -> Result<(), KeyCheckError> {
    // The newest registration is the likeliest to be under the key in use. A store with
    // people's keys always has bots too, so a bot token is proof enough.
    let sealed: Option<String> = sqlx::query_scalar(
        "SELECT payload #>> '{BotCreated,token,ciphertext}' FROM events
         WHERE aggregate_type = 'Bot' AND event_type = 'BotCreated'
         ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    // Only a well-formed sealed value that fails to open proves another key.
    if let Some(sealed) = sealed.filter(|s| crate::secrets::looks_sealed(s)) {
        if TokenCipher::new(key).open(&sealed).is_err() {
            return Err(KeyCheckError::CannotOpenStored {
                configured: key.id(),
            });
        }
    }
    sqlx::query(
        "INSERT INTO sealing_keys (key_id, state, check_value, is_root)
         VALUES ($1, 'current', $2, true)
         ON CONFLICT DO NOTHING",
    )
    .bind(key.id().as_str())
    .bind(key.check_value())
    .execute(&mut *conn)
    .await?;
    tracing::info!(key_id = %key.id(), "the store recorded its first sealing key");
    Ok(())
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    pub retired: KeyId,
    pub current: KeyId,
    /// Every key now retired, the one just retired included.
    pub retired_count: usize,
}

/// Makes `new` the current key: `current` (which must be the store's current key) and every
/// key it had retired are kept, sealed under `new`. One transaction: a crash leaves the ring
/// as it was, or rotated.
pub async fn rotate(
    pool: &PgPool,
    current: &TokenKey,
    new: &TokenKey,
) -> Result<Rotated, KeyCheckError> {
    let mut tx = pool.begin().await?;
    // Serialises rotations: each sees the ring the previous one left.
    sqlx::query("LOCK TABLE sealing_keys IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let stored: Vec<KeyRow> = sqlx::query_as(
        "SELECT key_id, state, check_value, sealed_key, is_root, created_at, retired_at
         FROM sealing_keys ORDER BY created_at, key_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let ring = if stored.is_empty() {
        // A store that never started with key ids: the current key becomes its root here.
        register_first(&mut tx, current).await?;
        KeyRing::single(current.clone())
    } else {
        ring_from(&stored, current)?
    };
    if ring.get(&new.id()).is_some() {
        return Err(KeyCheckError::AlreadyKnown(new.id()));
    }
    // Every key the ring holds, the current one included, is kept sealed under the new key.
    let mut retired_count = 0;
    for key in ring.keys() {
        sqlx::query(
            "UPDATE sealing_keys
             SET state = 'retired', sealed_key = $2, retired_at = COALESCE(retired_at, now())
             WHERE key_id = $1",
        )
        .bind(key.id().as_str())
        .bind(new.seal_key(key))
        .execute(&mut *tx)
        .await?;
        retired_count += 1;
    }
    sqlx::query(
        "INSERT INTO sealing_keys (key_id, state, check_value, is_root)
         VALUES ($1, 'current', $2, false)",
    )
    .bind(new.id().as_str())
    .bind(new.check_value())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Rotated {
        retired: current.id(),
        current: new.id(),
        retired_count,
    })
}
