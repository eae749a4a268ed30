//! Admin accounts: an id, an email and an argon2id hash, in the `admins` table.

use sqlx::PgPool;
use uuid::Uuid;

use super::passwords;
use crate::secrets::Redacted;

/// An admin's email, trimmed and roughly checked: it is a login name, not a mailbox we write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEmail(String);

impl AdminEmail {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        let well_formed = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !email.chars().any(char::is_whitespace);
        if email.len() > 254 {
            Err("must be at most 254 characters".to_owned())
        } else if !well_formed {
            Err("must be an email address, e.g. admin@example.com".to_owned())
        } else {
            Ok(Self(email.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An admin as stored. The hash stays inside this module and [`super`].
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    pub(super) password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    #[error("an admin with this email already exists")]
    Exists,
    #[error("the password {0}")]
    WeakPassword(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub async fn find_by_email(
    pool: &PgPool,
    email: &AdminEmail,
) -> Result<Option<Admin>, sqlx::Error> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        // A disabled admin is not found: the login answers as for an unknown email.
        "SELECT id, email, password_hash FROM admins
         WHERE lower(email) = lower($1) AND disabled_at IS NULL",
    )
    .bind(email.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, email, password_hash)| Admin {
        id,
        email,
        password_hash,
    }))
}

pub async fn exists_any(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admins)")
        .fetch_one(pool)
        .await
}

/// Creates an admin. With `only_if_none`, nothing happens when any admin exists already (the
/// first admin from the environment), and two processes starting at once create one admin.
pub async fn create(
    pool: &PgPool,
    email: &AdminEmail,
    password: Redacted,
    only_if_none: bool,
) -> Result<Option<Uuid>, CreateAdminError> {
    passwords::check_strength(&password).map_err(CreateAdminError::WeakPassword)?;
    let hash = passwords::hash(password).await?;
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO admins (id, email, password_hash)
         SELECT $1, $2, $3
         WHERE NOT $4 OR NOT EXISTS (SELECT 1 FROM admins)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(email.as_str())
    .bind(hash)
    .bind(only_if_none)
    .fetch_optional(pool)
    .await
    .map_err(|e| CreateAdminError::Failed(e.into()))?;
    match inserted {
        Some(id) => Ok(Some(id)),
        None if only_if_none => Ok(None),
        None => Err(CreateAdminError::Exists),
    }
}

#[cfg(test)]
mod tests {
    use super::AdminEmail;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            AdminEmail::parse(" ops@example.com ").unwrap().as_str(),
            "ops@example.com"
        );
        for bad in ["", "ops", "@example.com", "ops@", "o ps@example.com"] {
            assert!(AdminEmail::parse(bad).is_err(), "{bad:?}");
        }
    }
}
