//! Administering the admins: who they are, adding one, disabling and enabling one, changing
//! one's own password. (Creating an account and checking a login are in [`super::accounts`];
//! failed-login locks in [`super::throttle`].)
//!
//! A disabled admin cannot log in (the login treats the account as unknown) and their
//! sessions end at once; the account stays, so the `admin:<id>` actors of the event log keep
//! naming someone. Two rules keep the fleet administrable: nobody disables their own
//! account, and the last enabled admin cannot be disabled.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::accounts::{self, AdminEmail, CreateAdminError};
use super::passwords;
use crate::secrets::Redacted;

/// An admin account as other admins see it (never its hash).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AdminAccount {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// `admin:<id>` of whoever added the account; absent for the first admin and the CLI's.
    pub created_by: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_by: Option<String>,
    /// Sessions that are live now.
    pub live_sessions: i64,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.email, a.created_at, a.created_by, a.disabled_at,
    a.disabled_by,
    (SELECT count(*) FROM admin_sessions s WHERE s.admin_id = a.id AND s.expires_at > now())
        AS live_sessions";

/// Every admin, oldest first (admins are few: a fleet has a handful).
pub async fn list(pool: &PgPool) -> Result<Vec<AdminAccount>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM admins a ORDER BY a.created_at, a.id"
    ))
    .fetch_all(pool)
    .await
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<AdminAccount>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM admins a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Adds an admin on behalf of `by` (an actor, e.g. `admin:<id>`).
pub async fn add(
    pool: &PgPool,
    email: &AdminEmail,
    password: Redacted,
    by: &str,
) -> Result<Uuid, CreateAdminError> {
    let id = accounts::create(pool, email, password, false)
        .await?
        .ok_or(CreateAdminError::Exists)?;
    sqlx::query("UPDATE admins SET created_by = $2 WHERE id = $1")
        .bind(id)
        .bind(by)
        .execute(pool)
        .await
        .map_err(|e| CreateAdminError::Failed(e.into()))?;
    tracing::info!(admin_id = %id, by, "admin added");
    Ok(id)
}

#[derive(Debug, thiserror::Error)]
pub enum DisableError {
    #[error("no admin has this id")]
    NotFound,
    #[error("you cannot disable your own account")]
    Yourself,
    #[error("this is the last enabled admin: add or enable another one first")]
    LastAdmin,
    #[error("disabling an admin failed")]
    Database(#[from] sqlx::Error),
}

/// Disables `id` on behalf of admin `by`: ends their sessions; they cannot log in again
/// until enabled. Disabling a disabled admin changes nothing.
pub async fn disable(pool: &PgPool, id: Uuid, by: Uuid) -> Result<(), DisableError> {
    if id == by {
        return Err(DisableError::Yourself);
    }
    let mut tx = pool.begin().await?;
    // The enabled admins, locked: two admins disabling each other at once cannot leave none.
    let enabled: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM admins WHERE disabled_at IS NULL FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admins WHERE id = $1)")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(DisableError::NotFound);
    }
    if !enabled.contains(&id) {
        return Ok(());
    }
    if enabled.len() <= 1 {
        return Err(DisableError::LastAdmin);
    }
    sqlx::query("UPDATE admins SET disabled_at = now(), disabled_by = $2 WHERE id = $1")
        .bind(id)
        .bind(format!("admin:{by}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM admin_sessions WHERE admin_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(admin_id = %id, by = %by, "admin disabled; their sessions ended");
    Ok(())
}

/// Lets a disabled admin log in again; `false` when no admin has this id.
pub async fn enable(pool: &PgPool, id: Uuid, by: Uuid) -> Result<bool, sqlx::Error> {
    let found =
        sqlx::query("UPDATE admins SET disabled_at = NULL, disabled_by = NULL WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            == 1;
    if found {
        tracing::info!(admin_id = %id, by = %by, "admin enabled");
    }
    Ok(found)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the current password is wrong")]
    WrongCurrent,
    #[error("the new password {0}")]
    Weak(String),
    #[error("changing the password failed")]
    Failed(#[from] anyhow::Error),
}

/// Changes admin `id`'s password after checking the current one, and ends their other
/// sessions (a password changed because it leaked must lock out whoever used it).
pub async fn change_password(
    pool: &PgPool,
    id: Uuid,
    current: Redacted,
    new: Redacted,
    keep_session: Uuid,
) -> Result<(), PasswordError> {
    passwords::check_strength(&new).map_err(PasswordError::Weak)?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM admins WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(anyhow::Error::from)?;
    if !passwords::verify(current, stored).await {
        return Err(PasswordError::WrongCurrent);
    }
    let hash = passwords::hash(new).await?;
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    sqlx::query("UPDATE admins SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
    sqlx::query("DELETE FROM admin_sessions WHERE admin_id = $1 AND id <> $2")
        .bind(id)
        .bind(keep_session)
        .execute(&mut *tx)
        .await
        .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    tracing::info!(admin_id = %id, "admin changed their password; their other sessions ended");
    Ok(())
}
