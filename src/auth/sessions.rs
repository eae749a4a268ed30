//! Admin sessions, server-side in `admin_sessions`: logout deletes the row and expiry is
//! checked at every request, so neither depends on what the browser does with its cookie.
//!
//! The browser holds a random 256-bit token (inside the encrypted cookie); the table holds
//! only its SHA-256, so a leaked table or backup opens no session. The CSRF token is an HMAC
//! of the session token: nothing more to store, and it dies with the session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use crate::secrets::Redacted;

/// The secret that proves a session. `Debug` does not print it.
#[derive(Clone)]
pub struct SessionToken([u8; 32]);

impl SessionToken {
    fn generate() -> Self {
        Self(rand::random())
    }

    /// The token as it travels (inside the encrypted cookie).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .map(Self)
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0).to_vec()
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// A live session, as the guard hands it to a handler.
#[derive(Debug, Clone)]
pub struct Session {
    /// Not secret: names the session in rate limits and logs.
    pub id: Uuid,
    pub admin_id: Uuid,
    pub email: String,
    pub expires_at: DateTime<Utc>,
    /// What the client must echo in `X-CSRF-Token` on a state-changing request.
    pub csrf_token: Redacted,
}

#[derive(Clone)]
pub struct Sessions {
    pool: PgPool,
    ttl: Duration,
    csrf_key: [u8; 32],
}

impl Sessions {
    pub fn new(pool: PgPool, ttl: Duration, csrf_key: [u8; 32]) -> Self {
        Self {
            pool,
            ttl,
            csrf_key,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `admin_id`; also sweeps the sessions that have expired.
    pub async fn start(
        &self,
        admin_id: Uuid,
        email: String,
    ) -> Result<(SessionToken, Session), sqlx::Error> {
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= now()")
            .execute(&self.pool)
            .await?;
        let token = SessionToken::generate();
        let id = Uuid::now_v7();
        let expires_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO admin_sessions (id, token_hash, admin_id, expires_at)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
             RETURNING expires_at",
        )
        .bind(id)
        .bind(token.hash())
        .bind(admin_id)
        .bind(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await?;
        let session = Session {
            id,
            admin_id,
            email,
            expires_at,
            csrf_token: self.csrf_token(&token),
        };
        Ok((token, session))
    }

    /// The live session `token` proves, if any: unknown, logged-out and expired ones are not.
    pub async fn find(&self, token: &SessionToken) -> Result<Option<Session>, sqlx::Error> {
        let row: Option<(Uuid, Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT s.id, s.admin_id, a.email, s.expires_at
             FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
             WHERE s.token_hash = $1 AND s.expires_at > now() AND a.disabled_at IS NULL",
        )
        .bind(token.hash())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, admin_id, email, expires_at)| Session {
            id,
            admin_id,
            email,
            expires_at,
            csrf_token: self.csrf_token(token),
        }))
    }

    /// Ends a session for good.
    pub async fn end(&self, session_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM admin_sessions WHERE id = $1")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session's CSRF token: a keyed hash of its token, so it cannot be computed
    /// without both the cookie secret and the session.
    pub fn csrf_token(&self, token: &SessionToken) -> Redacted {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.csrf_key).expect("any key length");
        mac.update(&token.0);
        Redacted::new(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::SessionToken;

    #[test]
    fn a_token_round_trips_and_does_not_print() {
        let token = SessionToken::generate();
        let decoded = SessionToken::decode(&token.encode()).unwrap();
        assert_eq!(decoded.0, token.0);
        assert!(!format!("{token:?}").contains(&token.encode()));
        assert!(SessionToken::decode("short").is_none());
    }
}
