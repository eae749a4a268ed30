//! The first admin without editing the environment: a one-time set-up link.
//!
//! A start that finds no admin (and no ADMIN_EMAIL/ADMIN_PASSWORD) makes a random token and
//! prints a link with it; whoever opens the link first names the first admin. The token is
//! good once, for an hour, and only while no admin exists; the table keeps only its SHA-256,
//! like sessions', so a copy of the database opens nothing.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::accounts::AdminEmail;
use super::passwords;
use crate::secrets::Redacted;

/// How long a set-up link stays valid.
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The secret in a set-up link. `Debug` does not print it.
pub struct SetupToken(String);

impl SetupToken {
    /// The token as it goes into the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SetupToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupToken([redacted])")
    }
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new set-up token when no admin exists yet; `None` when one does. Expired tokens are
/// cleared on the way.
pub async fn issue(pool: &PgPool) -> Result<Option<SetupToken>, sqlx::Error> {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let inserted = sqlx::query(
        "WITH expired AS (DELETE FROM admin_setup_tokens WHERE expires_at <= now())
         INSERT INTO admin_setup_tokens (token_hash, expires_at)
         SELECT $1, now() + make_interval(secs => $2)
         WHERE NOT EXISTS (SELECT 1 FROM admins)",
    )
    .bind(hash(&token))
    .bind(SETUP_TOKEN_TTL.as_secs_f64())
    .execute(pool)
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(SetupToken(token)))
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Used, expired, or never issued: deliberately one answer.
    #[error("the set-up link is not valid: it was used, it expired, or it was never issued")]
    InvalidToken,
    #[error("an admin exists already: log in, or ask an admin to create your account")]
    AdminExists,
    #[error("the password {0}")]
    WeakPassword(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for SetupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// Creates the first admin with a set-up token. The token is spent only when the admin is
/// created: a weak password can be corrected with the same link.
pub async fn redeem(
    pool: &PgPool,
    token: &str,
    email: &AdminEmail,
    password: Redacted,
) -> Result<Uuid, SetupError> {
    passwords::check_strength(&password).map_err(SetupError::WeakPassword)?;
    let valid: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM admin_setup_tokens WHERE token_hash = $1 AND expires_at > now())",
    )
    .bind(hash(token))
    .fetch_one(pool)
    .await?;
    if !valid {
        return Err(SetupError::InvalidToken);
    }
    // Hashing takes a while on purpose; do it before the transaction, not inside it.
    let password_hash = passwords::hash(password).await?;
    let mut tx = pool.begin().await?;
    // Spending the token and creating the admin commit together: two uses of one link, or of
    // two links, create one admin.
    let spent =
        sqlx::query("DELETE FROM admin_setup_tokens WHERE token_hash = $1 AND expires_at > now()")
            .bind(hash(token))
            .execute(&mut *tx)
            .await?;
    if spent.rows_affected() == 0 {
        return Err(SetupError::InvalidToken);
    }
    sqlx::query("LOCK TABLE admins IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let id = Uuid::now_v7();
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO admins (id, email, password_hash)
         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM admins)
         RETURNING id",
    )
    .bind(id)
    .bind(email.as_str())
    .bind(password_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = created else {
        return Err(SetupError::AdminExists);
    };
    sqlx::query("DELETE FROM admin_setup_tokens")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(admin_id = %id, "created the first admin with a set-up link");
    Ok(id)
}
