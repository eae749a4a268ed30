//! Queries on the `messages` table: a chat's history, and the turns that failed for good.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A row of `messages`: a person's message, the bot's answer, or an admin's message. Its text
/// is sealed per person, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    pub update_id: i64,
    pub role: String,
    pub text: String,
    pub status: String,
    pub telegram_message_ids: Vec<i64>,
    pub response_kind: Option<String>,
    pub model: Option<String>,
    pub response_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_micro_usd: Option<i64>,
    pub media: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub edited_at: Option<DateTime<Utc>>,
    /// A person's message that failed for good: `fatal`, `retryable` or `terminal`.
    pub failure_class: Option<String>,
    /// On an answer: how long it took from the person's message being received to the
    /// answer being generated, in milliseconds (both as recorded in the events).
    pub response_ms: Option<i64>,
    /// An answer the person stopped while it was written: its text is what was written by
    /// then, its tokens an estimate.
    pub stopped: bool,
}

/// The columns of a [`MessageRow`] (of `messages m`).
const MESSAGE_COLUMNS: &str = "m.update_id, m.role, m.text, m.status, m.telegram_message_ids,
    m.response_kind, m.model, m.response_id, m.input_tokens, m.cached_input_tokens,
    m.output_tokens, m.reasoning_tokens, m.cost_micro_usd, m.media, m.attempts, m.last_error,
    m.created_at, m.sent_at, m.edited_at, m.failure_class, m.stopped,
    CASE WHEN m.role = 'bot' THEN
        (SELECT (extract(epoch FROM m.created_at - q.created_at) * 1000)::bigint
         FROM messages q
         WHERE q.chat_id = m.chat_id AND q.update_id = m.update_id AND q.role = 'user')
    END AS response_ms";

/// Where a page of a chat's history starts: after this message.
#[derive(Debug, Clone)]
pub struct MessageCursor {
    pub created_at: DateTime<Utc>,
    pub update_id: i64,
    pub role: String,
}

/// A page of a chat's history in the order it happened; within a turn, the person's message
/// comes before the answer.
pub async fn list_messages(
    conn: impl sqlx::PgExecutor<'_>,
    chat_id: Uuid,
    after: Option<&MessageCursor>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS}
         FROM messages m
         WHERE m.chat_id = $1
           AND ($2::timestamptz IS NULL
                OR (m.created_at, m.update_id, array_position(ARRAY['user', 'bot', 'admin'], m.role))
                   > ($2, $3, array_position(ARRAY['user', 'bot', 'admin'], $4::text)))
         ORDER BY m.created_at, m.update_id, array_position(ARRAY['user', 'bot', 'admin'], m.role)
         LIMIT $5"
    ))
    .bind(chat_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.update_id))
    .bind(after.map(|c| c.role.clone()))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The newest page of a chat's history before the `before` message (the newest of all
/// without it), in the order it happened: a conversation as a messenger opens it.
pub async fn list_latest_messages(
    conn: impl sqlx::PgExecutor<'_>,
    chat_id: Uuid,
    before: Option<&MessageCursor>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    let mut rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS}
         FROM messages m
         WHERE m.chat_id = $1
           AND ($2::timestamptz IS NULL
                OR (m.created_at, m.update_id, array_position(ARRAY['user', 'bot', 'admin'], m.role))
                   < ($2, $3, array_position(ARRAY['user', 'bot', 'admin'], $4::text)))
         ORDER BY m.created_at DESC, m.update_id DESC,
                  array_position(ARRAY['user', 'bot', 'admin'], m.role) DESC
         LIMIT $5"
    ))
    .bind(chat_id)
    .bind(before.map(|c| c.created_at))
    .bind(before.map(|c| c.update_id))
    .bind(before.map(|c| c.role.clone()))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// A turn that failed for good: its message got no answer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FailedTurnRow {
    pub turn_id: Uuid,
    pub bot_id: Uuid,
    pub chat_id: Uuid,
    pub telegram_chat_id: i64,
    pub update_id: i64,
    pub failure_class: Option<String>,
    pub failure_step: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i32,
    pub failed_at: Option<DateTime<Utc>>,
    /// What the user got: `error_message_sent`, `error_message_pending`, or `nothing_sent`.
    pub outcome: String,
}

/// Failed turns, newest first, of one bot or all, before `before`.
pub async fn list_failed_turns(
    conn: impl sqlx::PgExecutor<'_>,
    bot_id: Option<Uuid>,
    before: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<FailedTurnRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.turn_id, c.bot_id, m.chat_id, c.telegram_chat_id, m.update_id,
                m.failure_class, m.failure_step, m.last_error, m.attempts, m.failed_at,
                CASE WHEN b.status = 'sent' THEN 'error_message_sent'
                     WHEN b.status IS NOT NULL THEN 'error_message_pending'
                     ELSE 'nothing_sent' END AS outcome
         FROM messages m JOIN chats c ON c.id = m.chat_id
         LEFT JOIN messages b ON b.chat_id = m.chat_id AND b.update_id = m.update_id
                             AND b.role = 'bot' AND b.response_kind = 'error_message'
         WHERE m.role = 'user' AND m.status = 'failed'
           AND ($1::uuid IS NULL OR c.bot_id = $1)
           AND ($2::timestamptz IS NULL OR m.failed_at < $2)
         ORDER BY m.failed_at DESC, m.turn_id
         LIMIT $3",
    )
    .bind(bot_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The chat and update of a turn, by the turn's id.
pub async fn find_turn(
    conn: impl sqlx::PgExecutor<'_>,
    turn_id: Uuid,
) -> Result<Option<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT chat_id, update_id FROM messages WHERE turn_id = $1 AND role = 'user'")
        .bind(turn_id)
        .fetch_optional(conn)
        .await
}

/// How many people's messages failed for good, in all.
pub async fn count_failed(conn: impl sqlx::PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE role = 'user' AND status = 'failed'")
        .fetch_one(conn)
        .await
}
