//! Queries on the `turn_attempts` table: every failed attempt of a chat's turns.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One failed attempt at a turn's step.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TurnAttemptRow {
    pub update_id: i64,
    /// 1, 2, …; starts over after an admin's retry.
    pub attempt: i32,
    /// `generate` (the LLM) or `send` (Telegram).
    pub step: String,
    /// `fatal`, `retryable` or `terminal`.
    pub class: String,
    pub error: String,
    pub failed_at: DateTime<Utc>,
    pub retry_at: Option<DateTime<Utc>>,
}

/// The failed attempts of some of a chat's turns (those of a page of its history), in the
/// order they happened.
pub async fn list_attempts(
    conn: impl sqlx::PgExecutor<'_>,
    chat_id: Uuid,
    update_ids: &[i64],
) -> Result<Vec<TurnAttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT update_id, attempt, step, class, error, failed_at, retry_at
         FROM turn_attempts
         WHERE chat_id = $1 AND update_id = ANY($2)
         ORDER BY sequence",
    )
    .bind(chat_id)
    .bind(update_ids)
    .fetch_all(conn)
    .await
}
