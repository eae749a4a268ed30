//! The group previews that are up right now (`group_previews`), so that a preview left by a
//! process that died mid-stream is deleted by the next attempt instead of staying beside the
//! answer. A private chat's draft needs none of this: it vanishes by itself.

use sqlx::PgPool;
use uuid::Uuid;

/// Remembers that `message_id` in the group is a preview, before anything else can happen.
pub(super) async fn remember(
    pool: &PgPool,
    bot_id: Uuid,
    chat_id: i64,
    message_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO group_previews (bot_id, telegram_chat_id, message_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(bot_id)
    .bind(chat_id)
    .bind(message_id)
    .execute(pool)
    .await
    .map(drop)
}

/// Forgets a preview that is gone (deleted, or beyond deleting).
pub(super) async fn forget(
    pool: &PgPool,
    bot_id: Uuid,
    chat_id: i64,
    message_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM group_previews
         WHERE bot_id = $1 AND telegram_chat_id = $2 AND message_id = $3",
    )
    .bind(bot_id)
    .bind(chat_id)
    .bind(message_id)
    .execute(pool)
    .await
    .map(drop)
}

/// Previews an earlier attempt in this group left up. The chat's lease makes its holder the
/// only one streaming there, so every row found is an orphan.
pub(super) async fn left_over(pool: &PgPool, bot_id: Uuid, chat_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT message_id FROM group_previews WHERE bot_id = $1 AND telegram_chat_id = $2",
    )
    .bind(bot_id)
    .bind(chat_id)
    .fetch_all(pool)
    .await
}
