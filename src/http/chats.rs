//! `/chats`: conversations as admins see them, and
//! an admin's own message to a chat.

use std::sync::Arc;

use aggregates::chat::{Chat, ChatCommand, ChatError};
use aggregates::ids::TurnKey;
use aggregates::text::InvalidField;
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use projections::chats::chats::{self as chat_rows, ChatFilter, ChatRow};
use projections::chats::messages::{self as message_rows, MessageCursor, MessageRow};

use super::consistency::ReadYourWrites;
use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::paging::{
    checked_instant, cursor_instant, cursor_part, decode_cursor, encode_cursor, micros, ADMIN_PAGES,
};
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata};
use crate::personal_data::PersonalDataVault;

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
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
#[oai(skip_serializing_if_is_none)]
pub struct ChatPage {
    pub items: Vec<ChatView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessageView {
    /// The Telegram update the turn answers (negative for an admin's message).
    pub update_id: i64,
    /// `user`, `bot` or `admin`.
    pub role: String,
    pub text: String,
    /// user: received, answered, failed, refused (the bot's policy: `last_error` says why);
    /// bot and admin: generated, sent.
    pub status: String,
    pub telegram_message_ids: Vec<i64>,
    /// llm, command, error_message, notice, refusal, admin, callback_answer.
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
    /// A person's message whose turn failed for good: `fatal`, `retryable` or `terminal`.
    #[oai(skip_serializing_if_is_none)]
    pub failure_class: Option<String>,
    /// On an answer: milliseconds from the person's message being received to the answer
    /// being generated (the model's time and any retries), as the events recorded them.
    #[oai(skip_serializing_if_is_none)]
    pub response_ms: Option<i64>,
    /// An LLM answer the person stopped while it was written (the stop button on its
    /// draft): `text` is what the model had written by then, the tokens an estimate from
    /// its length.
    pub stopped: bool,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct AdminMessageRequest {
    /// 1 to 4096 characters; Markdown is rendered like the bot's own answers, and must show
    /// some text (not only blanks, `#` or `> `).
    pub text: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AdminMessageQueued {
    pub chat_id: Uuid,
    /// The message's number in the chat's history (negative: admin messages).
    pub update_id: i64,
    pub status: String,
}

#[derive(Debug, Clone, Object)]
pub struct ConversationReset {
    pub chat_id: Uuid,
    pub status: String,
}

#[derive(ApiResponse)]
pub enum ResetResponse {
    /// The conversation starts afresh: the next message is answered without what came before.
    #[oai(status = 200)]
    Ok(Json<ConversationReset>),
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

impl From<ChatRow> for ChatView {
    fn from(row: ChatRow) -> Self {
        Self {
            id: row.id,
            bot_id: row.bot_id,
            telegram_chat_id: row.telegram_chat_id,
            chat_type: row.chat_type,
            title: row.title,
            username: row.username,
            telegram_user_id: row.telegram_user_id,
            previous_response_id: row.previous_response_id,
            message_count: row.message_count,
            total_cost_micro_usd: row.total_cost_micro_usd,
            blocked: row.blocked,
            created_at: row.created_at,
            last_activity_at: row.last_activity_at,
            version: row.version,
        }
    }
}

impl From<MessageRow> for MessageView {
    fn from(row: MessageRow) -> Self {
        Self {
            update_id: row.update_id,
            role: row.role,
            text: row.text,
            status: row.status,
            telegram_message_ids: row.telegram_message_ids,
            response_kind: row.response_kind,
            model: row.model,
            response_id: row.response_id,
            input_tokens: row.input_tokens,
            cached_input_tokens: row.cached_input_tokens,
            output_tokens: row.output_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_micro_usd: row.cost_micro_usd,
            media: row.media,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            sent_at: row.sent_at,
            edited_at: row.edited_at,
            failure_class: row.failure_class,
            response_ms: row.response_ms,
            stopped: row.stopped,
        }
    }
}

error_responses! {
    /// What `GET /chats` answers when it does not succeed.
    pub enum ChatListError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

error_responses! {
    /// What `GET /chats/{id}/messages` answers when it does not succeed.
    pub enum MessageListError {
        BadRequest, Unauthorized, NotFound, Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `GET /chats/{id}` answers when it does not succeed.
    pub enum ChatReadError {
        BadRequest, Unauthorized, NotFound, Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /chats/{id}/reset` answers when it does not succeed.
    pub enum ResetError {
        BadRequest, Unauthorized, Forbidden, NotFound, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /chats/{id}/messages` answers when it does not succeed.
    pub enum AdminMessageError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, TooManyRequests, Internal,
    }
}

/// What the chats API uses.
pub struct ChatsDeps {
    pub pool: sqlx::PgPool,
    pub chats: Arc<CommandGateway<Chat>>,
    /// Opens the names and texts it shows; seals an admin's message.
    pub vault: Arc<PersonalDataVault>,
    pub read_your_writes: ReadYourWrites,
}

pub struct ChatsApi(pub Wired<ChatsDeps>);

#[OpenApi(tag = "ApiTags::Chats")]
impl ChatsApi {
    /// List chats
    ///
    /// Newest activity first; filter by `bot_id`, by `user_id` (a Telegram user id), by
    /// `blocked`, and `failing=true` for chats with a turn that failed for good.
    #[oai(path = "/chats", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: AdminSession,
        bot_id: Query<Option<Uuid>>,
        user_id: Query<Option<i64>>,
        blocked: Query<Option<bool>>,
        failing: Query<Option<bool>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ChatListResponse, ChatListError> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let filter = ChatFilter {
            bot_id: bot_id.0,
            telegram_user_id: user_id.0,
            blocked: blocked.0,
            failing: failing.0.unwrap_or(false),
        };
        let page = self.page(filter, cursor.0.as_deref(), limit).await?;
        Ok(ChatListResponse::Ok(Json(page)))
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
    ) -> Result<ChatResponse, ChatReadError> {
        let Some(as_of) = as_of.0 else {
            return Ok(ChatResponse::Ok(Json(self.read(id.0).await?)));
        };
        let as_of = checked_instant("as_of", as_of)?;
        let mut past = super::events::view_as_of(
            &self.0.pool,
            &projections::chats::ChatProjector,
            <aggregates::chat::Chat as cqrs_es::Aggregate>::TYPE,
            id.0,
            as_of,
        )
        .await?;
        let chat = chat_rows::find_chat(past.connection(), id.0)
            .await
            .map_err(|e| ApiFailure::internal("reading a chat's past failed", &e))?
            .ok_or_else(|| ApiFailure::not_found("chat at that instant"))?;
        Ok(ChatResponse::Ok(Json(
            reveal_chat(&self.0.vault, chat.into()).await?,
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
    ) -> Result<MessageListResponse, MessageListError> {
        self.read(id.0).await?;
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let after = cursor.0.as_deref().map(decode_message_cursor).transpose()?;
        let mut items: Vec<MessageView> =
            message_rows::list_messages(&self.0.pool, id.0, after.as_ref(), limit + 1)
                .await
                .map_err(|e| ApiFailure::internal("listing messages failed", &e))?
                .into_iter()
                .map(MessageView::from)
                .collect();
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(encode_message_cursor)
        } else {
            None
        };
        self.reveal_messages(&mut items).await?;
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
    ) -> Result<AdminMessageResponse, AdminMessageError> {
        let queued = self
            .send_message(auth.actor(), id.0, body.0 .0.text)
            .await?;
        Ok(AdminMessageResponse::Queued(Json(queued)))
    }

    /// Reset a chat's conversation
    ///
    /// The next message is answered without what came before: the conversation state
    /// (`previous_response_id`) and the remembered history are cleared. The messages stay in
    /// the chat's history. Recorded as the admin's.
    #[oai(path = "/chats/:id/reset", method = "post")]
    async fn reset(&self, auth: AdminSession, id: Path<Uuid>) -> Result<ResetResponse, ResetError> {
        self.reset_conversation(auth.actor(), id.0).await?;
        Ok(ResetResponse::Ok(Json(ConversationReset {
            chat_id: id.0,
            status: "reset".to_owned(),
        })))
    }
}

/// What the API does, for its operations and for the admin console alike.
impl ChatsApi {
    /// A page of chats, newest activity first, after `cursor` (a `next_cursor` given out).
    pub async fn page(
        &self,
        filter: ChatFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<ChatPage, ApiFailure> {
        let after = match cursor {
            Some(cursor) => {
                let parts = decode_cursor(cursor, 2)?;
                let id: Uuid = cursor_part(&parts[1])?;
                Some((cursor_instant(&parts[0])?, id))
            }
            None => None,
        };
        let mut items: Vec<ChatView> =
            chat_rows::list_chats(&self.0.pool, filter, after, limit + 1)
                .await
                .map_err(|e| ApiFailure::internal("listing chats failed", &e))?
                .into_iter()
                .map(ChatView::from)
                .collect();
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
            revealed.push(reveal_chat(&self.0.vault, chat).await?);
        }
        Ok(ChatPage {
            items: revealed,
            next_cursor,
        })
    }

    /// The newest page of a chat's history before `cursor` (a `next_cursor` of this kind of
    /// page; the newest messages without it), in the order it happened; `next_cursor` leads to
    /// earlier messages.
    pub async fn latest_messages(
        &self,
        id: Uuid,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<MessagePage, ApiFailure> {
        let before = cursor.map(decode_message_cursor).transpose()?;
        let mut items: Vec<MessageView> =
            message_rows::list_latest_messages(&self.0.pool, id, before.as_ref(), limit + 1)
                .await
                .map_err(|e| ApiFailure::internal("listing messages failed", &e))?
                .into_iter()
                .map(MessageView::from)
                .collect();
        let next_cursor = if items.len() > limit as usize {
            items.remove(0);
            items.first().map(encode_message_cursor)
        } else {
            None
        };
        self.reveal_messages(&mut items).await?;
        Ok(MessagePage { items, next_cursor })
    }

    /// Records an admin's message to the chat; the effect runner sends it.
    pub async fn send_message(
        &self,
        actor: Actor,
        id: Uuid,
        text: String,
    ) -> Result<AdminMessageQueued, ApiFailure> {
        aggregates::text::bounded("text", &text, 1, 4096).map_err(ApiFailure::invalid)?;
        // Blank text, or Markdown that shows nothing (`#`, `> `, `[](x)`), would be sent as an
        // empty message, which Telegram refuses: the turn could only fail.
        if crate::telegram::markdown::to_telegram_html(&text)
            .trim()
            .is_empty()
        {
            return Err(ApiFailure::invalid(InvalidField::new(
                "text",
                "must show some text once its Markdown is rendered",
            )));
        }
        let chat = self.read(id).await?;
        let subject = chat.telegram_user_id.unwrap_or(chat.telegram_chat_id);
        let text = self
            .0
            .vault
            .seal(subject, &text)
            .await
            .map_err(|e| ApiFailure::internal("sealing an admin message failed", &e))?;
        let result = self
            .0
            .chats
            .execute(
                &id.to_string(),
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
            .0
            .chats
            .load(&id.to_string())
            .await
            .map_err(|e| ApiFailure::internal("reading the chat failed", &e))?;
        // The message is recorded whatever the read model does: its answer does not wait on
        // it beyond READ_MODEL_WAIT_MS, and says "queued" either way.
        self.await_read_model(id, committed.sequence).await;
        Ok(AdminMessageQueued {
            chat_id: id,
            update_id: TurnKey::AdminMessage(chat.admin_messages).stored(),
            status: "queued".to_owned(),
        })
    }

    /// Starts the chat's conversation afresh.
    pub async fn reset_conversation(&self, actor: Actor, id: Uuid) -> Result<(), ApiFailure> {
        self.read(id).await?;
        let result = self
            .0
            .chats
            .execute(
                &id.to_string(),
                ChatCommand::ResetConversation {
                    admin: actor.to_string(),
                },
                &EventMetadata::new_request(actor),
            )
            .await;
        match result {
            Ok(committed) => {
                self.await_read_model(id, committed.sequence).await;
                Ok(())
            }
            Err(CommandError::Rejected(ChatError::NotStarted)) => {
                Err(ApiFailure::not_found("chat"))
            }
            Err(CommandError::Rejected(e)) => Err(ApiFailure::conflict(e.to_string())),
            Err(e) => Err(ApiFailure::internal("resetting a conversation failed", &e)),
        }
    }

    /// Waits (up to READ_MODEL_WAIT_MS) for the chats read model to include the chat's event
    /// at `sequence`; the write stands either way.
    async fn await_read_model(&self, id: Uuid, sequence: usize) {
        if let Ok(position) = self.0.chats.position_of(&id.to_string(), sequence).await {
            let _ = self
                .0
                .read_your_writes
                .caught_up(projections::chats::NAME, position)
                .await;
        }
    }

    /// Opens the sealed texts of a page of messages.
    async fn reveal_messages(&self, items: &mut [MessageView]) -> Result<(), ApiFailure> {
        for message in items {
            message.text = self
                .0
                .vault
                .reveal_column(&message.text)
                .await
                .map_err(|e| ApiFailure::internal("opening personal data failed", &e))?;
        }
        Ok(())
    }
}

fn encode_message_cursor(message: &MessageView) -> String {
    encode_cursor(&[
        micros(&message.created_at),
        message.update_id.to_string(),
        message.role.clone(),
    ])
}

fn decode_message_cursor(cursor: &str) -> Result<MessageCursor, ApiFailure> {
    let parts = decode_cursor(cursor, 3)?;
    Ok(MessageCursor {
        created_at: cursor_instant(&parts[0])?,
        update_id: cursor_part(&parts[1])?,
        role: parts[2].clone(),
    })
}

impl ChatsApi {
    /// One chat, its names opened.
    pub async fn read(&self, id: Uuid) -> Result<ChatView, ApiFailure> {
        let chat = chat_rows::find_chat(&self.0.pool, id)
            .await
            .map_err(|e| ApiFailure::internal("reading a chat failed", &e))?
            .ok_or_else(|| ApiFailure::not_found("chat"))?;
        reveal_chat(&self.0.vault, chat.into()).await
    }
}

/// Opens a chat's sealed names for the answer.
async fn reveal_chat(
    vault: &PersonalDataVault,
    mut chat: ChatView,
) -> Result<ChatView, ApiFailure> {
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
