//! `/chats` and `/users`: conversations and the people in them, as admins see them (seed P1
//! item 5, chats-admin.controller), and an admin's own message to a chat.

use aggregates::chat::{ChatCommand, ChatError};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::errors::ApiFailure;
use super::guard::AdminSession;
use super::paging::{
    cursor_instant, cursor_part, decode_cursor, encode_cursor, micros, ADMIN_PAGES,
};
use super::strict_json::Strict;
use super::{ApiTags, AppState};
use crate::event_store::{CommandError, EventMetadata};

#[derive(Debug, Clone, Object, sqlx::FromRow)]
pub struct ChatView {
    pub id: Uuid,
    pub bot_id: Uuid,
    pub telegram_chat_id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    pub chat_type: String,
    pub title: Option<String>,
    pub username: Option<String>,
    /// The Telegram user who wrote last (in a private chat, its only person).
    pub telegram_user_id: Option<i64>,
    /// The Responses API conversation state: the last response id, sent as
    /// `previous_response_id` with the next message.
    pub previous_response_id: Option<String>,
    pub message_count: i64,
    /// Total LLM cost of the chat, in micro-USD.
    pub total_cost_micro_usd: i64,
    /// Telegram refuses messages to this chat (the user blocked the bot).
    pub blocked: bool,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone, Object)]
pub struct ChatPage {
    pub items: Vec<ChatView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object, sqlx::FromRow)]
pub struct MessageView {
    /// The Telegram update the turn answers (negative for an admin's message).
    pub update_id: i64,
    /// `user`, `bot` or `admin`.
    pub role: String,
    pub text: String,
    /// user: received, answered, failed; bot and admin: generated, sent.
    pub status: String,
    pub telegram_message_ids: Vec<i64>,
    /// llm, command, error_message, notice, admin, callback_answer.
    pub response_kind: Option<String>,
    /// The LLM model (for an admin message: the admin).
    pub model: Option<String>,
    pub response_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_micro_usd: Option<i64>,
    /// What was sent instead of text (`photo`, `sticker`, `callback_query`…).
    pub media: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub edited_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct AdminMessageRequest {
    /// 1 to 4096 characters; Markdown is rendered like the bot's own answers.
    pub text: String,
}

#[derive(Debug, Clone, Object)]
pub struct AdminMessageQueued {
    pub chat_id: Uuid,
    /// The message's number in the chat's history (negative: admin messages).
    pub update_id: i64,
    pub status: String,
}

#[derive(Debug, Clone, Object, sqlx::FromRow)]
pub struct UserView {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The chats this person wrote in, across bots.
    pub chat_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Object)]
pub struct UserPage {
    pub items: Vec<UserView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ChatListResponse {
    #[oai(status = 200)]
    Ok(Json<ChatPage>),
}

#[derive(ApiResponse)]
pub enum ChatResponse {
    #[oai(status = 200)]
    Ok(Json<ChatView>),
}

#[derive(ApiResponse)]
pub enum MessageListResponse {
    #[oai(status = 200)]
    Ok(Json<MessagePage>),
}

#[derive(ApiResponse)]
pub enum AdminMessageResponse {
    /// Recorded in the chat's history; the effect runner sends it to Telegram.
    #[oai(status = 202)]
    Queued(Json<AdminMessageQueued>),
}

#[derive(Debug, Clone, Object)]
pub struct Forgotten {
    pub telegram_user_id: i64,
    /// Whether there was any personal data to forget.
    pub had_data: bool,
}

#[derive(ApiResponse)]
pub enum ForgetResponse {
    /// The person's key is destroyed: their names and texts are unreadable everywhere.
    #[oai(status = 200)]
    Ok(Json<Forgotten>),
}

#[derive(ApiResponse)]
pub enum UserListResponse {
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

pub struct ChatsApi {
    pub state: AppState,
}

const CHAT_COLUMNS: &str =
    "id, bot_id, telegram_chat_id, chat_type, title, username, telegram_user_id,
    previous_response_id, message_count, total_cost_micro_usd, blocked, created_at,
    last_activity_at, version";

#[OpenApi(tag = "ApiTags::Chats")]
impl ChatsApi {
    /// List chats
    ///
    /// Newest activity first; filter by `bot_id` and by `user_id` (a Telegram user id).
    #[oai(path = "/chats", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
        bot_id: Query<Option<Uuid>>,
        user_id: Query<Option<i64>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ChatListResponse, ApiFailure> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let after = match cursor.0.as_deref() {
            Some(cursor) => {
                let parts = decode_cursor(cursor, 2)?;
                let id: Uuid = cursor_part(&parts[1])?;
                Some((cursor_instant(&parts[0])?, id))
            }
            None => None,
        };
        let (after_at, after_id) = after.unzip();
        let mut items: Vec<ChatView> = sqlx::query_as(&format!(
            "SELECT {CHAT_COLUMNS} FROM chats
             WHERE ($1::uuid IS NULL OR bot_id = $1)
               AND ($2::bigint IS NULL OR telegram_user_id = $2
                    OR id IN (SELECT chat_id FROM messages WHERE telegram_user_id = $2))
               AND ($3::timestamptz IS NULL OR (last_activity_at, id) < ($3, $4))
             ORDER BY last_activity_at DESC, id DESC
             LIMIT $5"
        ))
        .bind(bot_id.0)
        .bind(user_id.0)
        .bind(after_at)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&self.state.pool)
        .await
        .map_err(|e| ApiFailure::internal("listing chats failed", &e))?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|c| encode_cursor(&[micros(&c.last_activity_at), c.id.to_string()]))
        } else {
            None
        };
        let mut revealed = Vec::with_capacity(items.len());
        for chat in items {
            revealed.push(reveal_chat(&self.state, chat).await?);
        }
        Ok(ChatListResponse::Ok(Json(ChatPage {
            items: revealed,
            next_cursor,
        })))
    }

    /// Get a chat
    ///
    /// With `as_of` (RFC 3339), the chat as it was at that instant, rebuilt from its events.
    #[oai(path = "/chats/:id", method = "get")]
    async fn get(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        as_of: Query<Option<DateTime<Utc>>>,
    ) -> Result<ChatResponse, ApiFailure> {
        let Some(as_of) = as_of.0 else {
            return Ok(ChatResponse::Ok(Json(self.read(id.0).await?)));
        };
        let mut past = super::events::view_as_of(
            &self.state,
            &projections::chats::ChatProjector,
            <aggregates::chat::Chat as cqrs_es::Aggregate>::TYPE,
            id.0,
            as_of,
        )
        .await?;
        let chat: ChatView =
            sqlx::query_as(&format!("SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(past.connection())
                .await
                .map_err(|e| ApiFailure::internal("reading a chat's past failed", &e))?
                .ok_or_else(|| ApiFailure::not_found("chat at that instant"))?;
        Ok(ChatResponse::Ok(Json(
            reveal_chat(&self.state, chat).await?,
        )))
    }

    /// List a chat's messages
    ///
    /// In the order they happened, with token usage and cost on the bot's answers.
    #[oai(path = "/chats/:id/messages", method = "get")]
    async fn messages(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<MessageListResponse, ApiFailure> {
        self.read(id.0).await?;
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let after = match cursor.0.as_deref() {
            Some(cursor) => {
                let parts = decode_cursor(cursor, 3)?;
                let update_id: i64 = cursor_part(&parts[1])?;
                Some((cursor_instant(&parts[0])?, update_id, parts[2].clone()))
            }
            None => None,
        };
        let (after_at, after_update, after_role) = match after {
            Some((at, update, role)) => (Some(at), Some(update), Some(role)),
            None => (None, None, None),
        };
        let mut items: Vec<MessageView> = sqlx::query_as(
            "SELECT update_id, role, text, status, telegram_message_ids, response_kind, model,
                    response_id, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
                    cost_micro_usd, media, attempts, last_error, created_at, sent_at, edited_at
             FROM messages
             WHERE chat_id = $1
               AND ($2::timestamptz IS NULL
                    OR (created_at, update_id, array_position(ARRAY['user', 'bot', 'admin'], role))
                       > ($2, $3, array_position(ARRAY['user', 'bot', 'admin'], $4::text)))
             -- Within a turn, the person's message comes before the answer.
             ORDER BY created_at, update_id, array_position(ARRAY['user', 'bot', 'admin'], role)
             LIMIT $5",
        )
        .bind(id.0)
        .bind(after_at)
        .bind(after_update)
        .bind(after_role)
        .bind(limit + 1)
        .fetch_all(&self.state.pool)
        .await
        .map_err(|e| ApiFailure::internal("listing messages failed", &e))?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|m| {
                encode_cursor(&[
                    micros(&m.created_at),
                    m.update_id.to_string(),
                    m.role.clone(),
                ])
            })
        } else {
            None
        };
        for message in &mut items {
            message.text = self
                .state
                .vault
                .reveal_column(&message.text)
                .await
                .map_err(|e| ApiFailure::internal("opening personal data failed", &e))?;
        }
        Ok(MessageListResponse::Ok(Json(MessagePage {
            items,
            next_cursor,
        })))
    }

    /// Send a message to a chat as an admin
    ///
    /// Recorded in the chat's history as the admin's, and sent by the effect runner with the
    /// bot's token, after any answer the chat is waiting for.
    #[oai(path = "/chats/:id/messages", method = "post")]
    async fn send(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<AdminMessageRequest>>,
    ) -> Result<AdminMessageResponse, ApiFailure> {
        let text = body.0 .0.text;
        aggregates::text::bounded("text", &text, 1, 4096).map_err(ApiFailure::invalid)?;
        let chat = self.read(id.0).await?;
        let subject = chat.telegram_user_id.unwrap_or(chat.telegram_chat_id);
        let text = self
            .state
            .vault
            .seal(subject, &text)
            .await
            .map_err(|e| ApiFailure::internal("sealing an admin message failed", &e))?;
        let actor = auth.actor();
        let result = self
            .state
            .chats
            .execute(
                &id.0.to_string(),
                ChatCommand::SendAdminMessage {
                    text,
                    admin: actor.to_string(),
                },
                &EventMetadata::new_request(actor),
            )
            .await;
        let committed = match result {
            Ok(committed) => committed,
            Err(CommandError::Rejected(ChatError::NotStarted)) => {
                return Err(ApiFailure::not_found("chat"))
            }
            Err(CommandError::Rejected(e)) => return Err(ApiFailure::conflict(e.to_string())),
            Err(e) => return Err(ApiFailure::internal("queueing an admin message failed", &e)),
        };
        let chat = self
            .state
            .chats
            .load(&id.0.to_string())
            .await
            .map_err(|e| ApiFailure::internal("reading the chat failed", &e))?;
        if let Ok(position) = self
            .state
            .chats
            .position_of(&id.0.to_string(), committed.sequence)
            .await
        {
            self.state
                .progress
                .wait_for("chats", position, self.state.read_model_wait)
                .await;
        }
        Ok(AdminMessageResponse::Queued(Json(AdminMessageQueued {
            chat_id: id.0,
            update_id: -chat.admin_messages,
            status: "queued".to_owned(),
        })))
    }
}

impl ChatsApi {
    async fn read(&self, id: Uuid) -> Result<ChatView, ApiFailure> {
        let chat = sqlx::query_as(&format!("SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.state.pool)
            .await
            .map_err(|e| ApiFailure::internal("reading a chat failed", &e))?
            .ok_or_else(|| ApiFailure::not_found("chat"))?;
        reveal_chat(&self.state, chat).await
    }
}

/// Opens a chat's sealed names for the answer.
async fn reveal_chat(state: &AppState, mut chat: ChatView) -> Result<ChatView, ApiFailure> {
    let vault = &state.vault;
    let failed = |e: sqlx::Error| ApiFailure::internal("opening personal data failed", &e);
    chat.title = vault
        .reveal_column_option(chat.title.as_deref())
        .await
        .map_err(failed)?;
    chat.username = vault
        .reveal_column_option(chat.username.as_deref())
        .await
        .map_err(failed)?;
    Ok(chat)
}

impl ChatsApi {}

pub struct UsersApi {
    pub state: AppState,
}

#[OpenApi(tag = "ApiTags::Chats")]
impl UsersApi {
    /// List Telegram users
    ///
    /// Everyone who wrote to any bot, most recently seen first, with their chats.
    #[oai(path = "/users", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<UserListResponse, ApiFailure> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let after = match cursor.0.as_deref() {
            Some(cursor) => {
                let parts = decode_cursor(cursor, 2)?;
                let id: i64 = cursor_part(&parts[1])?;
                Some((cursor_instant(&parts[0])?, id))
            }
            None => None,
        };
        let (after_at, after_id) = after.unzip();
        let mut items: Vec<UserView> = sqlx::query_as(
            "SELECT u.id, u.is_bot, u.first_name, u.last_name, u.username, u.language_code,
                    u.first_seen_at, u.last_seen_at,
                    coalesce(array(SELECT DISTINCT m.chat_id FROM messages m
                                   WHERE m.telegram_user_id = u.id), '{}') AS chat_ids
             FROM telegram_users u
             WHERE ($1::timestamptz IS NULL OR (u.last_seen_at, u.id) < ($1, $2))
             ORDER BY u.last_seen_at DESC, u.id DESC
             LIMIT $3",
        )
        .bind(after_at)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&self.state.pool)
        .await
        .map_err(|e| ApiFailure::internal("listing users failed", &e))?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|u| encode_cursor(&[micros(&u.last_seen_at), u.id.to_string()]))
        } else {
            None
        };
        let vault = &self.state.vault;
        let failed = |e: sqlx::Error| ApiFailure::internal("opening personal data failed", &e);
        for user in &mut items {
            user.first_name = vault
                .reveal_column(&user.first_name)
                .await
                .map_err(failed)?;
            user.last_name = vault
                .reveal_column_option(user.last_name.as_deref())
                .await
                .map_err(failed)?;
            user.username = vault
                .reveal_column_option(user.username.as_deref())
                .await
                .map_err(failed)?;
        }
        Ok(UserListResponse::Ok(Json(UserPage { items, next_cursor })))
    }

    /// Forget a person
    ///
    /// Crypto-shredding: destroys the key their names and message texts were sealed with, so
    /// they are unreadable everywhere (events, snapshots, read models), while every other
    /// fact, count and cost stays. Recorded as an event.
    #[oai(path = "/users/:id/forget", method = "post")]
    async fn forget(
        &self,
        auth: AdminSession,
        id: Path<i64>,
    ) -> Result<ForgetResponse, ApiFailure> {
        let had_data = crate::personal_data::forget_person(
            Some(&self.state.vault),
            &self.state.pool,
            id.0,
            auth.actor(),
        )
        .await
        .map_err(|e| ApiFailure::internal("forgetting a person failed", e.as_ref()))?;
        Ok(ForgetResponse::Ok(Json(Forgotten {
            telegram_user_id: id.0,
            had_data,
        })))
    }
}
