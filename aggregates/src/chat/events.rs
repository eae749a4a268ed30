//! The facts of a chat's life.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{BotCommandName, TelegramChat, TelegramUser, TokenUsage};

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
    },
    /// A command's fixed reply.
    Command { command: BotCommandName },
    /// The bot's error message, after the LLM failed for good.
    ErrorMessage { class: FailureClass, error: String },
}

/// A response ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedResponse {
    pub text: String,
    #[serde(flatten)]
    pub kind: ResponseKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatEvent {
    MessageReceived {
        bot_id: Uuid,
        /// Telegram's id of the update, unique per bot: the idempotency key of the intake.
        update_id: i64,
        message_id: i64,
        chat: TelegramChat,
        from: Option<TelegramUser>,
        text: String,
        /// When Telegram says the message was sent.
        sent_at: DateTime<Utc>,
    },
    ResponseGenerated {
        update_id: i64,
        response: GeneratedResponse,
    },
    ResponseSent {
        update_id: i64,
        /// A long response is split into several Telegram messages.
        telegram_message_ids: Vec<i64>,
    },
    /// The conversation starts afresh: no previous response id, no earlier history.
    ConversationReset { update_id: i64 },
    /// One attempt at a step failed; `retry_at` says when the next one may start.
    AttemptFailed {
        update_id: i64,
        step: TurnStep,
        attempt: u32,
        class: FailureClass,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// The turn ends without a response delivered.
    TurnFailed {
        update_id: i64,
        step: TurnStep,
        class: FailureClass,
        error: String,
    },
}

impl DomainEvent for ChatEvent {
    fn event_type(&self) -> String {
        match self {
            ChatEvent::MessageReceived { .. } => "MessageReceived",
            ChatEvent::ResponseGenerated { .. } => "ResponseGenerated",
            ChatEvent::ResponseSent { .. } => "ResponseSent",
            ChatEvent::ConversationReset { .. } => "ConversationReset",
            ChatEvent::AttemptFailed { .. } => "AttemptFailed",
            ChatEvent::TurnFailed { .. } => "TurnFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::EVENT_VERSION.to_owned()
    }
}
