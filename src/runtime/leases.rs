//! Leases: which process works on a chat's turns, or polls a bot, right now.
//!
//! A lease is a row with an owner and an expiry. Claiming is one atomic statement that takes
//! a resource only when nobody holds a live lease on it; the holder renews it while working.
//! A process that dies stops renewing, and its work is taken over once the lease expires.
//! No transaction stays open during the work, so the subscriptions' horizon is never held
//! back by a slow LLM call.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Clone)]
pub struct Leases {
    pool: PgPool,
    /// This process's identity as a lease holder.
    owner: Uuid,
    duration: Duration,
}

pub fn chat_resource(chat_id: Uuid) -> String {
    format!("chat:{chat_id}")
}

pub fn bot_resource(bot_id: Uuid) -> String {
    format!("bot:{bot_id}")
}

impl Leases {
    pub fn new(pool: PgPool, owner: Uuid, duration: Duration) -> Self {
        Self {
            pool,
            owner,
            duration,
        }
    }

    /// How long a claim lasts unless renewed.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The database the leases are kept in.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This process's identity as a lease holder.
    pub fn owner(&self) -> Uuid {
        self.owner
    }

    fn millis(&self) -> i64 {
        self.duration.as_millis() as i64
    }

    /// Takes `resource` if nobody holds it (or this process already does).
    pub async fn try_claim(&self, resource: &str) -> Result<bool, sqlx::Error> {
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (resource, owner, expires_at)
             VALUES ($1, $2, now() + $3 * interval '1 millisecond')
             ON CONFLICT (resource) DO UPDATE
                SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                WHERE leases.expires_at <= now() OR leases.owner = EXCLUDED.owner
             RETURNING resource",
        )
        .bind(resource)
        .bind(self.owner)
        .bind(self.millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// Claims those of `chats` that nobody holds a live lease on (the fast path: chats that
    /// just got a turn in this process).
    pub async fn claim_chats(&self, chats: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO leases (resource, owner, expires_at)
             SELECT 'chat:' || id, $2, now() + $3 * interval '1 millisecond'
             FROM unnest($1::uuid[]) AS id
             ON CONFLICT (resource) DO UPDATE
                SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                WHERE leases.expires_at <= now()
             RETURNING substr(resource, 6)::uuid",
        )
        .bind(chats)
        .bind(self.owner)
        .bind(self.millis())
        .fetch_all(&self.pool)
        .await
    }

    /// Extends a lease this process holds; false when it was lost (expired and taken).
    pub async fn renew(&self, resource: &str) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = now() + $3 * interval '1 millisecond'
             WHERE resource = $1 AND owner = $2",
        )
        .bind(resource)
        .bind(self.owner)
        .bind(self.millis())
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives back several leases this process holds, in one statement.
    pub async fn release_all(&self, resources: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE resource = ANY($1) AND owner = $2")
            .bind(resources)
            .bind(self.owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn release(&self, resource: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE resource = $1 AND owner = $2")
            .bind(resource)
            .bind(self.owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
