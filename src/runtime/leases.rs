//! Leases: which process works on a chat's turns, or polls a bot, right now.
//!
//! A lease is a row with an owner, the owner's liveness key and an expiry. Claiming is one
//! atomic statement that takes a resource only when nobody holds a live lease on it: one that
//! has not expired and whose holder is alive ([`super::liveness`]). A process that dies loses
//! its liveness lock with its database session, so its leases are taken over at the next
//! claim, not when they expire; the holder renews them while working, so that expiry stays a
//! fallback (a holder cut off by a silent network). No transaction stays open during the
//! work, so the subscriptions' horizon is never held back by a slow LLM call.

use std::time::Duration;

use sqlx::PgPool;

use super::liveness::{Identity, Liveness, HOLDER_IS_GONE};

#[derive(Clone)]
pub struct Leases {
    pool: PgPool,
    /// This process's identity as a lease holder (a new one after a lost database session).
    liveness: Liveness,
    duration: Duration,
}

pub fn chat_resource(chat_id: uuid::Uuid) -> String {
    format!("chat:{chat_id}")
}

pub fn bot_resource(bot_id: uuid::Uuid) -> String {
    format!("bot:{bot_id}")
}

impl Leases {
    pub fn new(pool: PgPool, liveness: Liveness, duration: Duration) -> Self {
        Self {
            pool,
            liveness,
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

    /// Who claims now; `None` while this process has no liveness session (claim nothing then:
    /// a lease taken without one would look dead to everyone).
    pub fn identity(&self) -> Option<Identity> {
        self.liveness.current()
    }

    /// This process's liveness, whose changes a claimer may wait for.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    fn millis(&self) -> i64 {
        self.duration.as_millis() as i64
    }

    /// Takes `resource` if nobody holds it (or this process already does), under `identity`.
    pub async fn try_claim_as(
        &self,
        identity: &Identity,
        resource: &str,
    ) -> Result<bool, sqlx::Error> {
        let claimed: Option<String> = sqlx::query_scalar(&format!(
            "INSERT INTO leases (resource, owner, owner_key, expires_at)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
             ON CONFLICT (resource) DO UPDATE
                SET owner = EXCLUDED.owner, owner_key = EXCLUDED.owner_key,
                    expires_at = EXCLUDED.expires_at
                WHERE leases.expires_at <= now() OR leases.owner = EXCLUDED.owner
                   OR {HOLDER_IS_GONE}
             RETURNING resource"
        ))
        .bind(resource)
        .bind(identity.owner)
        .bind(identity.key)
        .bind(self.millis())
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    /// Takes `resource` if nobody holds it (or this process already does).
    pub async fn try_claim(&self, resource: &str) -> Result<bool, sqlx::Error> {
        match self.identity() {
            Some(identity) => self.try_claim_as(&identity, resource).await,
            None => Ok(false),
        }
    }

    /// Claims, under `identity`, those of `chats` that nobody holds a live lease on (the fast
    /// path: chats that just got a turn in this process), each with its newest sequence.
    pub async fn claim_chats(
        &self,
        identity: &Identity,
        chats: &[uuid::Uuid],
    ) -> Result<Vec<(uuid::Uuid, Option<usize>)>, sqlx::Error> {
        let claimed: Vec<(uuid::Uuid, Option<i64>)> = sqlx::query_as(&format!(
            "WITH claimed AS (
                INSERT INTO leases (resource, owner, owner_key, expires_at)
                SELECT 'chat:' || id, $2, $3, now() + $4 * interval '1 millisecond'
                FROM unnest($1::uuid[]) AS id
                ON CONFLICT (resource) DO UPDATE
                   SET owner = EXCLUDED.owner, owner_key = EXCLUDED.owner_key,
                       expires_at = EXCLUDED.expires_at
                   WHERE leases.expires_at <= now() OR {HOLDER_IS_GONE}
                RETURNING substr(resource, 6)::uuid AS chat_id
             )
             SELECT chat_id, {} FROM claimed",
            projections::chat_work::current_sequence("claimed.chat_id")
        ))
        .bind(chats)
        .bind(identity.owner)
        .bind(identity.key)
        .bind(self.millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(claimed
            .into_iter()
            .map(|(chat, sequence)| (chat, sequence.map(|s| s as usize)))
            .collect())
    }

    /// Extends a lease held under `identity`; false when it was lost (taken by another).
    pub async fn renew(&self, identity: &Identity, resource: &str) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = now() + $3 * interval '1 millisecond'
             WHERE resource = $1 AND owner = $2",
        )
        .bind(resource)
        .bind(identity.owner)
        .bind(self.millis())
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives back several leases held under `identity`, in one statement.
    pub async fn release_all(
        &self,
        identity: &Identity,
        resources: &[String],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE resource = ANY($1) AND owner = $2")
            .bind(resources)
            .bind(identity.owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn release(&self, identity: &Identity, resource: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE resource = $1 AND owner = $2")
            .bind(resource)
            .bind(identity.owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
