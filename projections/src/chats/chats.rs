//! Queries on the `chats` table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A row of `chats`. Its title and username are sealed per person, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChatRow {
    pub id: Uuid,
    pub bot_id: Uuid,
    pub telegram_chat_id: i64,
    pub chat_type: String,
    pub title: Option<String>,
    pub username: Option<String>,
    pub telegram_user_id: Option<i64>,
    pub previous_response_id: Option<String>,
    pub message_count: i64,
    pub total_cost_micro_usd: i64,
    pub blocked: bool,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub version: i64,
}

const CHAT_COLUMNS: &str =
    "id, bot_id, telegram_chat_id, chat_type, title, username, telegram_user_id,
    previous_response_id, message_count, total_cost_micro_usd, blocked, created_at,
    last_activity_at, version";

pub async fn find_chat(
    conn: impl sqlx::PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ChatRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Which chats to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatFilter {
    pub bot_id: Option<Uuid>,
    /// A Telegram user: chats they wrote last in, or wrote in at all.
    pub telegram_user_id: Option<i64>,
    /// Only chats Telegram refuses (`true`), or only those it does not (`false`).
    pub blocked: Option<bool>,
    /// Only chats with a turn that failed for good and was not retried.
    pub failing: bool,
}

/// A page of chats, newest activity first, after the `(last_activity_at, id)` cursor.
pub async fn list_chats(
    conn: impl sqlx::PgExecutor<'_>,
    filter: ChatFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ChatRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {CHAT_COLUMNS} FROM chats
         WHERE ($1::uuid IS NULL OR bot_id = $1)
           AND ($2::bigint IS NULL OR telegram_user_id = $2
                OR id IN (SELECT chat_id FROM messages WHERE telegram_user_id = $2))
           AND ($3::timestamptz IS NULL OR (last_activity_at, id) < ($3, $4))
           AND ($6::boolean IS NULL OR blocked = $6)
           AND (NOT $7 OR EXISTS (SELECT 1 FROM messages f WHERE f.chat_id = chats.id
                                   AND f.role = 'user' AND f.status = 'failed'))
         ORDER BY last_activity_at DESC, id DESC
         LIMIT $5"
    ))
    .bind(filter.bot_id)
    .bind(filter.telegram_user_id)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .bind(filter.blocked)
    .bind(filter.failing)
    .fetch_all(conn)
    .await
}
