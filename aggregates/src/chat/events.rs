//! The facts of a chat's life.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::media::{ImageRef, MediaFile, Transcription};
use super::values::{BotCommandName, TelegramChat, TelegramUser, TokenUsage};
use crate::bot::policy::RefusalReason;
use crate::ids::{BotId, TurnKey, UpdateId};
use crate::personal::PersonalText;

/// The step of a turn an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStep {
    /// Producing the response (the LLM call, or a command's fixed reply).
    Generate,
    /// Delivering it to Telegram.
    Send,
}

/// How a failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Will not succeed by retrying (bad key, unknown model, invalid token): no retry.
    Fatal,
    /// May succeed later (timeouts, 5xx, rate limits): retried with backoff.
    Retryable,
    /// Retries are exhausted, or the chat cannot be reached (the user blocked the bot).
    Terminal,
}

/// Where a response came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ResponseKind {
    /// The LLM answered.
    Llm {
        model: String,
        /// The provider's id of the response (the Responses API's conversation state).
        response_id: Option<String>,
        usage: TokenUsage,
        /// What the answer cost, in micro-USD; 0 for a model without a known price.
        cost_micro_usd: i64,
        /// Whose budget the answer counts against (absent in answers recorded before budgets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charged_to: Option<Charge>,
        /// How many earlier exchanges the model was given as context (its chain, or the
        /// history sent along).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_turns: Option<u32>,
        /// The person stopped the answer while it was written (the draft's stop button): the
        /// text is what the model had written by then, and `usage` an estimate from its
        /// length (a cancelled stream reports none). No `response_id`: the next turn sends the
        /// conversation, partial answer included, instead of continuing an unfinished chain.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stopped: bool,
    },
    /// A command's fixed reply.
    Command { command: BotCommandName },
    /// The bot's error message, after the LLM failed for good.
    ErrorMessage { class: FailureClass, error: String },
    /// A fixed notice, e.g. that the bot reads only text.
    Notice,
    /// The notice that the turn was refused (not allowed, over a limit, too fast).
    Refusal { reason: RefusalReason },
    /// An admin wrote it (`POST /chats/{id}/messages`).
    Admin { admin: String },
}

/// Whose use an LLM answer counts as: a bot's, and the person's who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub bot_id: BotId,
    /// The Telegram user id of the person who asked, when there was one.
    pub person: Option<i64>,
}

/// What a turn answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TurnKind {
    /// A text message: answered by the LLM or as a command.
    #[default]
    Message,
    /// A photo, sticker, voice message, document…: a voice message or audio file is
    /// transcribed and an image shown to a model that takes images; the rest get a notice.
    Media { media: String },
    /// A press on an inline keyboard button: answered with answerCallbackQuery.
    Callback {
        query_id: String,
        data: Option<String>,
    },
}

/// A response ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedResponse {
    /// Sealed under the key of the person the chat is with.
    pub text: PersonalText,
    #[serde(flatten)]
    pub kind: ResponseKind,
}

/// The version of `MessageReceived` and `ResponseGenerated` since personal data is sealed.
pub const MESSAGE_RECEIVED_VERSION: &str = "2.0";

/// The events of a chat. Every `update_id` after the first two names the turn the event
/// belongs to ([`TurnKey`]: an update, or an admin message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatEvent {
    MessageReceived {
        bot_id: BotId,
        /// Telegram's id of the update, unique per bot: the idempotency key of the intake.
        update_id: UpdateId,
        message_id: i64,
        chat: TelegramChat,
        from: Option<TelegramUser>,
        text: PersonalText,
        /// When Telegram says the message was sent.
        sent_at: DateTime<Utc>,
        /// Absent for a text message; otherwise what was sent instead (`photo`, `sticker`…).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media: Option<String>,
        /// The files of a voice message, audio file, photo (each size) or document, to be
        /// fetched when the turn is worked (absent in messages recorded before media was read).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<MediaFile>,
    },
    /// A press on one of the bot's inline keyboard buttons.
    CallbackQueryReceived {
        bot_id: BotId,
        update_id: UpdateId,
        query_id: String,
        data: Option<String>,
        chat: TelegramChat,
        from: Option<TelegramUser>,
    },
    /// The callback query was answered; `text` is the notice shown to the user.
    CallbackAnswered { update_id: TurnKey, text: String },
    /// A message was edited after it was received. It is recorded, not answered again.
    MessageEdited {
        update_id: UpdateId,
        message_id: i64,
        text: PersonalText,
    },
    /// Telegram refuses to deliver to this chat (the user blocked the bot, left, was
    /// deactivated): no more work for it until the user writes again.
    ChatBlocked { update_id: TurnKey, reason: String },
    /// The group became a supergroup: replies go to the new chat id.
    ChatMigrated { to_chat_id: i64 },
    /// An admin asked for a failed turn to be tried again.
    TurnRetried { update_id: TurnKey },
    /// An admin wrote to the chat; it is sent like a response. Its turn is an admin message
    /// (stored as a negative number, never a Telegram update's).
    AdminMessageQueued {
        update_id: TurnKey,
        text: PersonalText,
        admin: String,
    },
    ResponseGenerated {
        update_id: TurnKey,
        response: GeneratedResponse,
    },
    ResponseSent {
        update_id: TurnKey,
        /// A long response is split into several Telegram messages.
        telegram_message_ids: Vec<i64>,
    },
    /// The conversation starts afresh: no previous response id, no earlier history.
    ConversationReset { update_id: TurnKey },
    /// An admin started the conversation afresh, outside any turn.
    ConversationResetByAdmin { admin: String },
    /// One attempt at a step failed; `retry_at` says when the next one may start.
    AttemptFailed {
        update_id: TurnKey,
        step: TurnStep,
        attempt: u32,
        class: FailureClass,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// The bot's policy refused the turn: nothing reaches the model. `notified` when the
    /// person is told (the turn stays open for the notice); `leave_chat` when the bot leaves
    /// the group it may not serve.
    TurnRefused {
        update_id: TurnKey,
        bot_id: BotId,
        /// The Telegram user id of who wrote, when known.
        person: Option<i64>,
        /// The Telegram chat it was written in.
        telegram_chat_id: i64,
        reason: RefusalReason,
        /// When the limit that refused the turn lifts (none for access refusals).
        resets_at: Option<DateTime<Utc>>,
        /// When the turn was screened.
        at: DateTime<Utc>,
        notified: bool,
        leave_chat: bool,
    },
    /// The bot left the group (Telegram's leaveChat), after a refused turn; `ends_turn` when
    /// that turn was still open (refused without a notice).
    ChatLeft { update_id: TurnKey, ends_turn: bool },
    /// A voice message or audio file was transcribed: its text is what the turn asks.
    MediaTranscribed {
        update_id: TurnKey,
        transcription: Transcription,
    },
    /// The turn's image was fetched to be shown to the model: its fingerprint, not its bytes.
    ImageAttached { update_id: TurnKey, image: ImageRef },
    /// The turn ends without a response delivered.
    TurnFailed {
        update_id: TurnKey,
        step: TurnStep,
        class: FailureClass,
        error: String,
    },
}

impl DomainEvent for ChatEvent {
    fn event_type(&self) -> String {
        match self {
            ChatEvent::MessageReceived { .. } => "MessageReceived",
            ChatEvent::CallbackQueryReceived { .. } => "CallbackQueryReceived",
            ChatEvent::CallbackAnswered { .. } => "CallbackAnswered",
            ChatEvent::MessageEdited { .. } => "MessageEdited",
            ChatEvent::ChatBlocked { .. } => "ChatBlocked",
            ChatEvent::ChatMigrated { .. } => "ChatMigrated",
            ChatEvent::TurnRetried { .. } => "TurnRetried",
            ChatEvent::AdminMessageQueued { .. } => "AdminMessageQueued",
            ChatEvent::ResponseGenerated { .. } => "ResponseGenerated",
            ChatEvent::ResponseSent { .. } => "ResponseSent",
            ChatEvent::ConversationReset { .. } => "ConversationReset",
            ChatEvent::ConversationResetByAdmin { .. } => "ConversationResetByAdmin",
            ChatEvent::AttemptFailed { .. } => "AttemptFailed",
            ChatEvent::TurnFailed { .. } => "TurnFailed",
            ChatEvent::TurnRefused { .. } => "TurnRefused",
            ChatEvent::ChatLeft { .. } => "ChatLeft",
            ChatEvent::MediaTranscribed { .. } => "MediaTranscribed",
            ChatEvent::ImageAttached { .. } => "ImageAttached",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            // 2.0: personal texts and names are `PersonalText` (sealed), no longer strings.
            ChatEvent::MessageReceived { .. } | ChatEvent::ResponseGenerated { .. } => {
                MESSAGE_RECEIVED_VERSION.to_owned()
            }
            _ => crate::EVENT_VERSION.to_owned(),
        }
    }
}
