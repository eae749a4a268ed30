//! Failed logins, counted per account and per client address in Postgres.
//!
//! After `max_failures` failures within `lockout`, the subject is locked for `lockout`: its
//! login attempts are refused (429) without looking at the password, so a locked account
//! cannot be guessed at, and being locked says nothing about whether a guess was right. The
//! count lives in the database, not in the process, so restarting or adding replicas does
//! not give an attacker more guesses. An account that does not exist is throttled like one
//! that does, so the lockout does not reveal which emails are admins.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::PgPool;

use crate::rate_limit::RetryAfter;

#[derive(Clone)]
pub struct LoginThrottle {
    pool: PgPool,
    max_failures: u32,
    lockout: Duration,
}

/// What a failed login is counted against.
pub fn subjects(email: &str, ip: Option<IpAddr>) -> Vec<String> {
    let mut subjects = vec![format!("account:{}", email.trim().to_lowercase())];
    if let Some(ip) = ip {
        subjects.push(format!("ip:{ip}"));
    }
    subjects
}

impl LoginThrottle {
    pub fn new(pool: PgPool, max_failures: u32, lockout: Duration) -> Self {
        Self {
            pool,
            max_failures: max_failures.max(1),
            lockout,
        }
    }

    fn lockout_secs(&self) -> f64 {
        self.lockout.as_secs_f64()
    }

    /// How long the longest lock among `subjects` still lasts, if any is locked.
    pub async fn locked(&self, subjects: &[String]) -> Result<Option<RetryAfter>, sqlx::Error> {
        let remaining: Option<f64> = sqlx::query_scalar(
            "SELECT max(extract(epoch FROM locked_until - now()))::float8 FROM login_throttle
             WHERE subject = ANY($1) AND locked_until > now()",
        )
        .bind(subjects)
        .fetch_one(&self.pool)
        .await?;
        Ok(remaining.map(|secs| RetryAfter(Duration::from_secs_f64(secs.max(0.0)))))
    }

    /// Counts a failure against each subject, locking those that reach the limit. A window
    /// older than the lockout starts over, so a typo a day never adds up to a lock.
    pub async fn record_failure(&self, subjects: &[String]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for subject in subjects {
            let failures: i32 = sqlx::query_scalar(
                "INSERT INTO login_throttle AS t (subject, failures, window_started_at)
                 VALUES ($1, 1, now())
                 ON CONFLICT (subject) DO UPDATE SET
                    failures = CASE WHEN t.window_started_at > now() - $2 * interval '1 second'
                                    THEN t.failures + 1 ELSE 1 END,
                    window_started_at = CASE WHEN t.window_started_at > now() - $2 * interval '1 second'
                                    THEN t.window_started_at ELSE now() END
                 RETURNING failures",
            )
            .bind(subject)
            .bind(self.lockout_secs())
            .fetch_one(&mut *tx)
            .await?;
            if failures >= i32::try_from(self.max_failures).unwrap_or(i32::MAX) {
                // The count starts over, so after the lock the subject gets its full quota.
                sqlx::query(
                    "UPDATE login_throttle
                     SET locked_until = now() + $2 * interval '1 second',
                         failures = 0, window_started_at = now()
                     WHERE subject = $1",
                )
                .bind(subject)
                .bind(self.lockout_secs())
                .execute(&mut *tx)
                .await?;
                tracing::warn!(subject = subject.as_str(), "too many failed logins: locked");
            }
        }
        tx.commit().await
    }

    /// A successful login clears the account's count (not the address's: one admin's
    /// success must not wipe the failures of guesses at other accounts from that address).
    pub async fn record_success(&self, account_subject: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1")
            .bind(account_subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A subject whose logins are refused until `locked_until`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Lockout {
    /// `account:<email>` or `ip:<address>`.
    pub subject: String,
    pub locked_until: chrono::DateTime<chrono::Utc>,
}

/// The locks in force, the longest first.
pub async fn list_locked(pool: &PgPool) -> Result<Vec<Lockout>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subject, locked_until FROM login_throttle WHERE locked_until > now()
         ORDER BY locked_until DESC, subject",
    )
    .fetch_all(pool)
    .await
}

/// Lifts a lock (an admin vouched for the account or address) and forgets its failures;
/// `false` when the subject was not locked.
pub async fn lift(pool: &PgPool, subject: &str) -> Result<bool, sqlx::Error> {
    let lifted =
        sqlx::query("DELETE FROM login_throttle WHERE subject = $1 AND locked_until > now()")
            .bind(subject)
            .execute(pool)
            .await?
            .rows_affected()
            == 1;
    Ok(lifted)
}
