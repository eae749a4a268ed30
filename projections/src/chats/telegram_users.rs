//! Queries on the `telegram_users` table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A person who wrote to a bot, with the chats they wrote in. Names are sealed per person,
/// as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TelegramUserRow {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub chat_ids: Vec<Uuid>,
    /// What the answers to this person's messages cost, in micro-USD.
    pub spend_micro_usd: i64,
}

/// The columns of a [`TelegramUserRow`] (of `telegram_users u`): their chats, and what the
/// answers to their messages cost.
const USER_COLUMNS: &str = "u.id, u.is_bot, u.first_name, u.last_name, u.username,
    u.language_code, u.first_seen_at, u.last_seen_at,
    coalesce(array(SELECT DISTINCT m.chat_id FROM messages m
                   WHERE m.telegram_user_id = u.id), '{}') AS chat_ids,
    (SELECT coalesce(sum(a.cost_micro_usd), 0)::bigint
     FROM messages q JOIN messages a
       ON a.chat_id = q.chat_id AND a.update_id = q.update_id AND a.role = 'bot'
     WHERE q.telegram_user_id = u.id AND q.role = 'user') AS spend_micro_usd";

/// One person, by their Telegram user id.
pub async fn find_user(
    conn: impl sqlx::PgExecutor<'_>,
    id: i64,
) -> Result<Option<TelegramUserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM telegram_users u WHERE u.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A page of people, most recently seen first, after the `(last_seen_at, id)` cursor.
pub async fn list_users(
    conn: impl sqlx::PgExecutor<'_>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<TelegramUserRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM telegram_users u
         WHERE ($1::timestamptz IS NULL OR (u.last_seen_at, u.id) < ($1, $2))
         ORDER BY u.last_seen_at DESC, u.id DESC
         LIMIT $3"
    ))
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
