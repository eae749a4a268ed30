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

    pub fn duration(&self) -> Duration {
        self.duration
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

    /// Claims up to `limit` chats that have turns due and no live lease, oldest due first;
    /// not those of `drained` that were worked through the sequence chat_work shows (the
    /// projection has not seen the end of their turns yet).
    pub async fn claim_due_chats(
        &self,
        limit: i64,
        drained: &[Uuid],
        drained_sequences: &[i64],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "WITH due AS (
                SELECT w.chat_id FROM chat_work w
                WHERE w.open_turns > 0 AND w.available_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM leases l
                                  WHERE l.resource = 'chat:' || w.chat_id AND l.expires_at > now())
                  AND NOT EXISTS (SELECT 1 FROM unnest($4::uuid[], $5::bigint[]) AS d(chat_id, sequence)
                                  WHERE d.chat_id = w.chat_id AND d.sequence >= w.last_sequence)
                ORDER BY w.available_at
                LIMIT $1
             ), claimed AS (
                INSERT INTO leases (resource, owner, expires_at)
                SELECT 'chat:' || chat_id, $2, now() + $3 * interval '1 millisecond' FROM due
                ON CONFLICT (resource) DO UPDATE
                   SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
                   WHERE leases.expires_at <= now()
                RETURNING resource
             )
             SELECT substr(resource, 6)::uuid FROM claimed",
        )
        .bind(limit)
        .bind(self.owner)
        .bind(self.millis())
        .bind(drained)
        .bind(drained_sequences)
        .fetch_all(&self.pool)
        .await
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

    /// When the next chat whose turns wait for a backoff becomes due, if any does.
    pub async fn next_due_in(&self) -> Result<Option<Duration>, sqlx::Error> {
        let millis: Option<f64> = sqlx::query_scalar(
            "SELECT (extract(epoch FROM (min(available_at) - now())) * 1000)::float8 FROM chat_work
             WHERE open_turns > 0 AND available_at > now()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(millis.map(|ms| Duration::from_millis(ms.max(0.0) as u64)))
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
