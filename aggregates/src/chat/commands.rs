use chrono::{DateTime, Utc};

use super::events::{FailureClass, GeneratedResponse, TurnStep};
use super::media::{ImageRef, MediaFile, Transcription};
use super::values::{TelegramChat, TelegramUser};
use crate::bot::policy::{BotPolicy, Usage};
use crate::ids::{BotId, TurnKey, UpdateId};
use crate::personal::PersonalText;

/// A text message as the intake read it from a Telegram update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub bot_id: BotId,
    pub update_id: UpdateId,
    pub message_id: i64,
    pub chat: TelegramChat,
    pub from: Option<TelegramUser>,
    pub text: PersonalText,
    pub sent_at: DateTime<Utc>,
    /// What was sent instead of text, if anything (`photo`, `sticker`, `voice`…).
    pub media: Option<String>,
    /// The files of a voice message, audio file, photo or document.
    pub files: Vec<MediaFile>,
}

/// A press on an inline keyboard button, as the intake read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCallback {
    pub bot_id: BotId,
    pub update_id: UpdateId,
    pub query_id: String,
    pub data: Option<String>,
    pub chat: TelegramChat,
    pub from: Option<TelegramUser>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// Accepts a message once per update id; a redelivery changes nothing.
    ReceiveMessage(IncomingMessage),
    /// Accepts a callback query once per update id.
    ReceiveCallback(IncomingCallback),
    /// Records an edit of a received message (once per update id).
    RecordEdit {
        update_id: UpdateId,
        message_id: i64,
        text: PersonalText,
    },
    /// Records that a callback query was answered, resetting the conversation if asked.
    RecordCallbackAnswered {
        update_id: TurnKey,
        text: String,
        reset_conversation: bool,
    },
    /// Replies now go to the supergroup this group became.
    RecordMigration { to_chat_id: i64 },
    /// Opens a failed turn again (an admin's manual retry).
    RetryTurn { update_id: TurnKey },
    /// An admin's message to the chat, to be sent by the effect runner.
    SendAdminMessage { text: PersonalText, admin: String },
    /// An admin starts the conversation afresh: the LLM forgets what was said before.
    ResetConversation { admin: String },
    /// Records the response of an open turn; `reset_conversation` for `/refresh`.
    RecordResponse {
        update_id: TurnKey,
        response: GeneratedResponse,
        reset_conversation: bool,
    },
    /// Records that the response reached Telegram.
    RecordSent {
        update_id: TurnKey,
        telegram_message_ids: Vec<i64>,
    },
    /// Records a failed attempt that will be retried at `retry_at`.
    RecordAttemptFailure {
        update_id: TurnKey,
        step: TurnStep,
        class: FailureClass,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    /// Decides whether the turn may go ahead under the bot's policy: refused, it is recorded
    /// (`TurnRefused`); allowed, nothing is recorded.
    ScreenTurn {
        update_id: TurnKey,
        screening: Screening,
    },
    /// Records a voice message's transcript (once per turn, before its response).
    RecordTranscription {
        update_id: TurnKey,
        transcription: Transcription,
    },
    /// Records the image a turn shows the model (once per turn, before its response).
    RecordImage { update_id: TurnKey, image: ImageRef },
    /// The bot left the group after a refused turn.
    RecordLeft { update_id: TurnKey },
    /// Ends a turn without delivering a response; `blocks_chat` when Telegram refuses the
    /// chat itself, so its other turns are not attempted either.
    FailTurn {
        update_id: TurnKey,
        step: TurnStep,
        class: FailureClass,
        error: String,
        blocks_chat: bool,
    },
}

/// What screening a turn needs from outside the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screening {
    pub policy: std::sync::Arc<BotPolicy>,
    /// The @username of who wrote, opened from the turn (only username allow-lists need it).
    pub username: Option<String>,
    /// The turn would ask the model (a text that is no command): budgets and the rate apply.
    pub asks_model: bool,
    /// The use so far, from the usage read model (zero when the bot sets no budget).
    pub usage: Usage,
    pub now: DateTime<Utc>,
}
