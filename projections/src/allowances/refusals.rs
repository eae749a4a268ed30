//! The `refusals` table: who tried a bot and was refused, per person and reason.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub(super) struct Refusal<'a> {
    pub bot_id: uuid::Uuid,
    /// The Telegram user id, 0 when the update named none.
    pub person: i64,
    pub reason: &'a str,
    pub chat_id: uuid::Uuid,
    pub telegram_chat_id: i64,
    pub at: DateTime<Utc>,
}

pub(super) async fn record(tx: &mut PgConnection, r: &Refusal<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refusals (bot_id, person, reason, attempts, first_at, last_at, chat_id,
            telegram_chat_id)
         VALUES ($1, $2, $3, 1, $4, $4, $5, $6)
         ON CONFLICT (bot_id, person, reason) DO UPDATE SET
            attempts = refusals.attempts + 1, last_at = EXCLUDED.last_at,
            chat_id = EXCLUDED.chat_id, telegram_chat_id = EXCLUDED.telegram_chat_id",
    )
    .bind(r.bot_id)
    .bind(r.person)
    .bind(r.reason)
    .bind(r.at)
    .bind(r.chat_id)
    .bind(r.telegram_chat_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A person (or group) refused, as admins see them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefusalRow {
    pub person: i64,
    pub reason: String,
    pub attempts: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub chat_id: uuid::Uuid,
    pub telegram_chat_id: i64,
    /// The person's @username and first name as the chats read model knows them (sealed
    /// columns: opened by the caller).
    pub username: Option<String>,
    pub first_name: Option<String>,
}

/// The bot's refusals, most recent first, before the `(last_at, person, reason)` cursor when
/// given; at most `limit`.
pub async fn list(
    conn: impl sqlx::PgExecutor<'_>,
    bot_id: uuid::Uuid,
    before: Option<(DateTime<Utc>, i64, String)>,
    limit: i64,
) -> Result<Vec<RefusalRow>, sqlx::Error> {
    let (before_at, before_person, before_reason) = before
        .map(|(at, person, reason)| (Some(at), person, reason))
        .unwrap_or((None, 0, String::new()));
    sqlx::query_as(
        "SELECT r.person, r.reason, r.attempts, r.first_at, r.last_at, r.chat_id,
                r.telegram_chat_id, u.username, u.first_name
         FROM refusals r LEFT JOIN telegram_users u ON u.id = r.person
         WHERE r.bot_id = $1
           AND ($2::timestamptz IS NULL OR (r.last_at, r.person, r.reason) < ($2, $3, $4))
         ORDER BY r.last_at DESC, r.person DESC, r.reason DESC
         LIMIT $5",
    )
    .bind(bot_id)
    .bind(before_at)
    .bind(before_person)
    .bind(before_reason)
    .bind(limit)
    .fetch_all(conn)
    .await
}
