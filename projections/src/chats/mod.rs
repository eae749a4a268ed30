//! The `chats`, `telegram_users`, `messages` and `turn_attempts` read models: conversations
//! as admins see them, with token usage and cost on every response and every failed attempt.
//!
//! This folder owns the four tables: the projector that writes them is here, and every query
//! on them is in the file named after its table.

// Each query file is named after its table, and one table is `chats` like the folder.
#[allow(clippy::module_inception)]
pub mod chats;
pub mod messages;
pub mod telegram_users;
pub mod turn_attempts;

use aggregates::chat::{Chat, ChatEvent, ResponseKind, TelegramChat, TelegramUser};
use aggregates::ids::{ChatId, TurnKey, UpdateId};
use aggregates::personal::PersonalText;

/// A personal value as its column stores it (`NULL` stays `NULL`).
fn column(value: &Option<PersonalText>) -> Option<String> {
    value.as_ref().map(PersonalText::to_column)
}
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{ProjectionError, Projector, RecordedEvent};

/// The projection's name (its checkpoint's).
pub const NAME: &str = "chats";

pub struct ChatProjector;

#[async_trait::async_trait]
impl Projector for ChatProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["turn_attempts", "messages", "chats", "telegram_users"]
    }

    /// One unreadable event costs one chat's view a message; stopping would freeze every
    /// chat's view and every admin write that waits for it.
    fn poison_policy(&self) -> crate::PoisonPolicy {
        crate::PoisonPolicy::Park
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != Chat::TYPE {
            return Ok(());
        }
        let chat_id = event.aggregate_uuid()?;
        let at = event.recorded_at;
        let version = event.sequence;
        match event.decode::<ChatEvent>()? {
            ChatEvent::MessageReceived {
                bot_id,
                update_id,
                message_id,
                chat,
                from,
                text,
                sent_at: _,
                media,
                files: _,
            } => {
                let incoming = Incoming {
                    chat_id,
                    bot_id: bot_id.0,
                    update_id: update_id.0,
                    message_id: Some(message_id),
                    chat: &chat,
                    from: from.as_ref(),
                    at,
                    version,
                };
                incoming
                    .record(tx, &text.to_column(), media.as_deref())
                    .await?;
            }
            ChatEvent::CallbackQueryReceived {
                bot_id,
                update_id,
                query_id: _,
                data,
                chat,
                from,
            } => {
                let incoming = Incoming {
                    chat_id,
                    bot_id: bot_id.0,
                    update_id: update_id.0,
                    message_id: None,
                    chat: &chat,
                    from: from.as_ref(),
                    at,
                    version,
                };
                let text = PersonalText::plain(format!("[button] {}", data.unwrap_or_default()));
                incoming
                    .record(tx, &text.to_column(), Some("callback_query"))
                    .await?;
            }
            ChatEvent::CallbackAnswered { update_id, text } => {
                sqlx::query(
                    "INSERT INTO messages (chat_id, update_id, role, text, status, response_kind,
                        created_at, sent_at)
                     VALUES ($1, $2, 'bot', $3, 'sent', 'callback_answer', $4, $4)",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(PersonalText::plain(text).to_column())
                .bind(at)
                .execute(&mut *tx)
                .await?;
                set_user_message(tx, chat_id, update_id, "answered", None).await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::MessageEdited {
                update_id: _,
                message_id,
                text,
            } => {
                // The edited message is the user message with this Telegram message id (kept
                // in the projector's own rows: a projector reads only its event and its
                // tables, never the raw event log, which would bypass the upcasters).
                sqlx::query(
                    "UPDATE messages SET text = $3, edited_at = $4
                     WHERE chat_id = $1 AND role = 'user' AND telegram_message_id = $2",
                )
                .bind(chat_id)
                .bind(message_id)
                .bind(text.to_column())
                .bind(at)
                .execute(&mut *tx)
                .await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::ChatBlocked { .. } => {
                sqlx::query("UPDATE chats SET blocked = true, version = $2 WHERE id = $1")
                    .bind(chat_id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
            ChatEvent::ChatMigrated { to_chat_id } => {
                sqlx::query(
                    "UPDATE chats SET telegram_chat_id = $2, chat_type = 'supergroup', version = $3
                     WHERE id = $1",
                )
                .bind(chat_id)
                .bind(to_chat_id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            ChatEvent::AdminMessageQueued {
                update_id,
                text,
                admin,
            } => {
                sqlx::query(
                    "INSERT INTO messages (chat_id, update_id, role, text, status, response_kind,
                        model, created_at, turn_id)
                     VALUES ($1, $2, 'admin', $3, 'generated', 'admin', $4, $5, $6)",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(text.to_column())
                .bind(&admin)
                .bind(at)
                .bind(update_id.turn_id(ChatId(chat_id)))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE chats SET message_count = message_count + 1, last_activity_at = $2,
                        version = $3 WHERE id = $1",
                )
                .bind(chat_id)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            ChatEvent::TurnRetried { update_id } => {
                set_user_message(tx, chat_id, update_id, "received", None).await?;
                sqlx::query("UPDATE chats SET blocked = false WHERE id = $1")
                    .bind(chat_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM messages WHERE chat_id = $1 AND update_id = $2 AND role = 'bot'
                        AND status <> 'sent' AND response_kind = 'error_message'",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .execute(&mut *tx)
                .await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::ResponseGenerated {
                update_id,
                response,
            } => {
                let stopped = matches!(response.kind, ResponseKind::Llm { stopped: true, .. });
                let (kind, model, response_id, usage, cost) = match &response.kind {
                    ResponseKind::Llm {
                        model,
                        response_id,
                        usage,
                        cost_micro_usd,
                        ..
                    } => (
                        "llm",
                        Some(model.clone()),
                        response_id.clone(),
                        Some(*usage),
                        *cost_micro_usd,
                    ),
                    ResponseKind::Command { .. } => ("command", None, None, None, 0),
                    ResponseKind::ErrorMessage { .. } => ("error_message", None, None, None, 0),
                    ResponseKind::Notice => ("notice", None, None, None, 0),
                    ResponseKind::Refusal { .. } => ("refusal", None, None, None, 0),
                    ResponseKind::Admin { .. } => ("admin", None, None, None, 0),
                };
                let tokens = |f: fn(&aggregates::chat::TokenUsage) -> u64| {
                    usage.as_ref().map(|u| f(u) as i64)
                };
                sqlx::query(
                    "WITH chat AS (
                        UPDATE chats SET message_count = message_count + 1,
                            total_cost_micro_usd = total_cost_micro_usd + $13,
                            previous_response_id = CASE WHEN $14 THEN $6 ELSE previous_response_id END,
                            last_activity_at = $12, version = $15
                        WHERE id = $1
                     )
                     INSERT INTO messages (chat_id, update_id, role, text, status, response_kind,
                        model, response_id, input_tokens, cached_input_tokens, output_tokens,
                        reasoning_tokens, cost_micro_usd, created_at, stopped)
                     VALUES ($1, $2, 'bot', $3, 'generated', $4, $5, $6, $7, $8, $9, $10, $11, $12,
                        $16)
                     -- A retried turn answered again: the new answer takes the row.
                     ON CONFLICT (chat_id, update_id, role) DO UPDATE SET
                        text = EXCLUDED.text, status = 'generated',
                        response_kind = EXCLUDED.response_kind, model = EXCLUDED.model,
                        response_id = EXCLUDED.response_id,
                        input_tokens = EXCLUDED.input_tokens,
                        cached_input_tokens = EXCLUDED.cached_input_tokens,
                        output_tokens = EXCLUDED.output_tokens,
                        reasoning_tokens = EXCLUDED.reasoning_tokens,
                        cost_micro_usd = EXCLUDED.cost_micro_usd, stopped = EXCLUDED.stopped,
                        telegram_message_ids = '{}', sent_at = NULL,
                        created_at = EXCLUDED.created_at",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(response.text.to_column())
                .bind(kind)
                .bind(&model)
                .bind(&response_id)
                .bind(tokens(|u| u.input_tokens))
                .bind(tokens(|u| u.cached_input_tokens))
                .bind(tokens(|u| u.output_tokens))
                .bind(tokens(|u| u.reasoning_tokens))
                .bind(usage.map(|_| cost))
                .bind(at)
                .bind(cost)
                .bind(kind == "llm")
                .bind(version)
                .bind(stopped)
                .execute(&mut *tx)
                .await?;
                if let ResponseKind::ErrorMessage { class, error } = &response.kind {
                    // The model failed for good: the user is told so, and the turn is a
                    // failure admins see (and may retry).
                    sqlx::query(
                        "UPDATE messages SET status = 'failed', failure_class = $3,
                            failure_step = 'generate', failed_at = $4, last_error = $5
                         WHERE chat_id = $1 AND update_id = $2 AND role = 'user'",
                    )
                    .bind(chat_id)
                    .bind(update_id.stored())
                    .bind(serde_plain(class))
                    .bind(at)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            ChatEvent::ResponseSent {
                update_id,
                telegram_message_ids,
            } => {
                // One statement (the hot path: one per turn): the response is sent, the
                // user's message answered, the chat touched.
                sqlx::query(
                    "WITH response AS (
                        UPDATE messages SET status = 'sent', telegram_message_ids = $3, sent_at = $4
                        WHERE chat_id = $1 AND update_id = $2 AND role IN ('bot', 'admin')
                     ), question AS (
                        UPDATE messages SET status = 'answered'
                        WHERE chat_id = $1 AND update_id = $2 AND role = 'user'
                          AND status NOT IN ('failed', 'refused')
                     )
                     UPDATE chats SET last_activity_at = $4, version = $5 WHERE id = $1",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(&telegram_message_ids)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            ChatEvent::ConversationReset { .. } | ChatEvent::ConversationResetByAdmin { .. } => {
                sqlx::query(
                    "UPDATE chats SET previous_response_id = NULL, version = $2 WHERE id = $1",
                )
                .bind(chat_id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            ChatEvent::AttemptFailed {
                update_id,
                step,
                attempt,
                class,
                error,
                retry_at,
            } => {
                sqlx::query(
                    "INSERT INTO turn_attempts (chat_id, sequence, update_id, attempt, step, class,
                        error, failed_at, retry_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(chat_id)
                .bind(version)
                .bind(update_id.stored())
                .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
                .bind(serde_plain(&step))
                .bind(serde_plain(&class))
                .bind(&error)
                .bind(at)
                .bind(retry_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE messages SET attempts = attempts + 1, last_error = $3
                     WHERE chat_id = $1 AND update_id = $2 AND role = 'user'",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(format!("attempt {attempt}: {error}"))
                .execute(&mut *tx)
                .await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::TurnRefused {
                update_id, reason, ..
            } => {
                // The reason shows where a failure's error would: why nothing was answered.
                set_user_message(tx, chat_id, update_id, "refused", Some(reason.as_str())).await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::ChatLeft { .. } => {}
            // An admin reads a voice message as its transcript (sealed like any text).
            ChatEvent::MediaTranscribed {
                update_id,
                transcription,
            } => {
                sqlx::query(
                    "UPDATE messages SET text = $3
                     WHERE chat_id = $1 AND update_id = $2 AND role = 'user'",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(transcription.text.to_column())
                .execute(&mut *tx)
                .await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
            ChatEvent::ImageAttached { .. } => {}
            ChatEvent::TurnFailed {
                update_id,
                step,
                class,
                error,
            } => {
                set_user_message(tx, chat_id, update_id, "failed", Some(&error)).await?;
                sqlx::query(
                    "UPDATE messages SET failure_class = $3, failure_step = $4, failed_at = $5
                     WHERE chat_id = $1 AND update_id = $2 AND role = 'user'",
                )
                .bind(chat_id)
                .bind(update_id.stored())
                .bind(serde_plain(&class))
                .bind(serde_plain(&step))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                touch_chat(tx, chat_id, at, version).await?;
            }
        }
        Ok(())
    }
}

/// A message or callback from a person: the chat, the person and the message row.
struct Incoming<'a> {
    chat_id: uuid::Uuid,
    bot_id: uuid::Uuid,
    update_id: i64,
    /// The Telegram message id of a message (a button press has none).
    message_id: Option<i64>,
    chat: &'a TelegramChat,
    from: Option<&'a TelegramUser>,
    at: chrono::DateTime<chrono::Utc>,
    version: i64,
}

impl Incoming<'_> {
    async fn record(
        &self,
        tx: &mut PgConnection,
        text: &str,
        media: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let user_id = self.from.map(|u| u.id);
        // One statement (the hot path: one per message): the chat, the person (when the
        // update names one) and the message.
        sqlx::query(
            "WITH chat AS (
                INSERT INTO chats (id, bot_id, telegram_chat_id, chat_type, title, username,
                    telegram_user_id, message_count, created_at, last_activity_at, version)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9)
                ON CONFLICT (id) DO UPDATE SET
                    chat_type = EXCLUDED.chat_type, title = EXCLUDED.title,
                    username = EXCLUDED.username,
                    telegram_user_id = COALESCE(EXCLUDED.telegram_user_id, chats.telegram_user_id),
                    message_count = chats.message_count + 1, blocked = false,
                    last_activity_at = EXCLUDED.last_activity_at, version = EXCLUDED.version
             ), person AS (
                INSERT INTO telegram_users (id, is_bot, first_name, last_name, username,
                    language_code, first_seen_at, last_seen_at)
                SELECT $7, $10, $11, $12, $13, $14, $8, $8 WHERE $7 IS NOT NULL
                ON CONFLICT (id) DO UPDATE SET
                    is_bot = EXCLUDED.is_bot, first_name = EXCLUDED.first_name,
                    last_name = EXCLUDED.last_name, username = EXCLUDED.username,
                    language_code = EXCLUDED.language_code,
                    last_seen_at = EXCLUDED.last_seen_at
             )
             INSERT INTO messages (chat_id, update_id, role, text, status, telegram_user_id,
                created_at, turn_id, media, telegram_message_id)
             VALUES ($1, $15, 'user', $16, 'received', $7, $8, $17, $18, $19)",
        )
        .bind(self.chat_id)
        .bind(self.bot_id)
        .bind(self.chat.id)
        .bind(&self.chat.kind)
        .bind(column(&self.chat.title))
        .bind(column(&self.chat.username))
        .bind(user_id)
        .bind(self.at)
        .bind(self.version)
        .bind(self.from.map(|u| u.is_bot))
        .bind(self.from.map(|u| u.first_name.to_column()))
        .bind(self.from.and_then(|u| column(&u.last_name)))
        .bind(self.from.and_then(|u| column(&u.username)))
        .bind(self.from.and_then(|u| u.language_code.clone()))
        .bind(self.update_id)
        .bind(text)
        .bind(TurnKey::Update(UpdateId(self.update_id)).turn_id(ChatId(self.chat_id)))
        .bind(media)
        .bind(self.message_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The snake_case name serde gives a unit enum variant (`terminal`, `send`).
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn set_user_message(
    tx: &mut PgConnection,
    chat_id: uuid::Uuid,
    update_id: TurnKey,
    status: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET status = $3, last_error = COALESCE($4, last_error)
         WHERE chat_id = $1 AND update_id = $2 AND role = 'user'",
    )
    .bind(chat_id)
    .bind(update_id.stored())
    .bind(status)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn touch_chat(
    tx: &mut PgConnection,
    chat_id: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE chats SET last_activity_at = $2, version = $3 WHERE id = $1")
        .bind(chat_id)
        .bind(at)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
