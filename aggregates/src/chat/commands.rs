use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::{FailureClass, GeneratedResponse, TurnStep};
use super::values::{TelegramChat, TelegramUser};

/// A text message as the intake read it from a Telegram update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub bot_id: Uuid,
    pub update_id: i64,
    pub message_id: i64,
    pub chat: TelegramChat,
    pub from: Option<TelegramUser>,
    pub text: String,
    pub sent_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// Accepts a message once per update id; a redelivery changes nothing.
    ReceiveMessage(IncomingMessage),
    /// Records the response of an open turn; `reset_conversation` for `/refresh`.
    RecordResponse {
        update_id: i64,
        response: GeneratedResponse,
        reset_conversation: bool,
    },
    /// Records that the response reached Telegram.
    RecordSent {
        update_id: i64,
        telegram_message_ids: Vec<i64>,
    },
    /// Records a failed attempt that will be retried at `retry_at`.
    RecordAttemptFailure {
        update_id: i64,
        step: TurnStep,
        class: FailureClass,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// Ends a turn without delivering a response.
    FailTurn {
        update_id: i64,
        step: TurnStep,
        class: FailureClass,
        error: String,
    },
}
