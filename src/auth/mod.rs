//! Who may use the admin API: admin accounts, their sessions, and the failed-login throttle.
//!
//! - [`accounts`]: admins (email and argon2id hash), the first one from the environment or
//!   `botfleet admin create`.
//! - [`setup`]: the one-time set-up link that creates the first admin without either.
//! - [`admins`]: administering them: the list, adding, disabling, one's own password.
//! - [`passwords`]: hashing and checking, off the async runtime.
//! - [`sessions`]: server-side sessions; the browser holds only a random token.
//! - [`throttle`]: five failed logins (per account, per address) lock for fifteen minutes.
//!
//! The HTTP side (the cookie, the guard every admin operation takes, the endpoints) is in
//! `http::guard`, `http::session_cookie` and `http::auth`.

pub mod accounts;
pub mod admins;
pub mod passwords;
pub mod sessions;
pub mod setup;
pub mod throttle;

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

use crate::rate_limit::RetryAfter;
use crate::secrets::Redacted;
use accounts::AdminEmail;
pub use sessions::{Session, SessionToken, Sessions};
use throttle::LoginThrottle;

/// How admins sign in, as configured.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// At least 32 bytes (`COOKIE_SECRET`); keys the session cookie's encryption and the CSRF
    /// tokens.
    pub cookie_secret: Redacted,
    /// From ADMIN_EMAIL and ADMIN_PASSWORD, both or neither.
    pub first_admin: Option<(AdminEmail, Redacted)>,
    pub session_ttl: std::time::Duration,
    /// Failed logins per account or address that lock it, within `login_lockout`.
    pub login_max_failures: u32,
    pub login_lockout: std::time::Duration,
}

/// Everything authentication needs. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pool: PgPool,
    pub sessions: Sessions,
    throttle: LoginThrottle,
}

/// A successful login: the token goes into the cookie, never into a response body or a log.
pub struct LoggedIn {
    pub token: SessionToken,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong email or wrong password: deliberately the same answer.
    #[error("the email or password is wrong")]
    Invalid,
    #[error("too many failed logins; try again later")]
    Locked(RetryAfter),
    #[error("logging in failed")]
    Store(#[from] sqlx::Error),
}

/// Derives a purpose-specific key from COOKIE_SECRET, so the cookie encryption key and the
/// CSRF key are never the same bytes.
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Auth {
    pub fn new(pool: PgPool, settings: &AuthSettings) -> Self {
        Self {
            sessions: Sessions::new(
                pool.clone(),
                settings.session_ttl,
                derive_key(
                    settings.cookie_secret.expose().as_bytes(),
                    "botfleet csrf v1",
                ),
            ),
            throttle: LoginThrottle::new(
                pool.clone(),
                settings.login_max_failures,
                settings.login_lockout,
            ),
            pool,
        }
    }

    /// Checks the credentials (unless a lock is in force) and starts a session.
    pub async fn login(
        &self,
        email: &AdminEmail,
        password: Redacted,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, LoginError> {
        let subjects = throttle::subjects(email.as_str(), ip);
        if let Some(retry) = self.throttle.locked(&subjects).await? {
            return Err(LoginError::Locked(retry));
        }
        let admin = accounts::find_by_email(&self.pool, email).await?;
        // With no such admin the decoy hash is checked: the same work, so timing tells nothing.
        let stored = admin.as_ref().map(|a| a.password_hash.clone());
        let verified = passwords::verify(password, stored).await;
        match admin {
            Some(admin) if verified => {
                self.throttle.record_success(&subjects[0]).await?;
                let (token, session) = self.sessions.start(admin.id, admin.email).await?;
                tracing::info!(admin_id = %admin.id, session_id = %session.id, "admin logged in");
                Ok(LoggedIn { token, session })
            }
            _ => {
                self.throttle.record_failure(&subjects).await?;
                tracing::info!(ip = ?ip, "failed admin login");
                Err(LoginError::Invalid)
            }
        }
    }
}

/// Creates the first admin from ADMIN_EMAIL and ADMIN_PASSWORD when no admin exists yet.
/// Without them, and without any admin, returns a one-time set-up token for the start to
/// print as a link.
pub async fn ensure_first_admin(
    pool: &PgPool,
    settings: &AuthSettings,
) -> anyhow::Result<Option<setup::SetupToken>> {
    match &settings.first_admin {
        Some((email, password)) => {
            match accounts::create(pool, email, password.clone(), true).await? {
                Some(id) => {
                    tracing::info!(admin_id = %id, email = email.as_str(), "created the first admin from ADMIN_EMAIL")
                }
                None => {
                    tracing::debug!("an admin exists; ADMIN_EMAIL and ADMIN_PASSWORD are not used")
                }
            }
            Ok(None)
        }
        None => Ok(setup::issue(pool).await?),
    }
}
