//! What a failed Telegram call means.
//!
//! teloxide-core reports Telegram's errors by their description, not their HTTP status, so the
//! classes follow its variants.

use std::time::Duration;

use aggregates::chat::FailureClass;
use teloxide_core::{ApiError, RequestError};

/// A classified failure of one Telegram call.
#[derive(Debug, Clone)]
pub struct TelegramFailure {
    pub class: FailureClass,
    /// Telegram asked us to wait this long (429 with `retry_after`).
    pub retry_after: Option<Duration>,
    /// The bot's token is not valid: stop the bot's intake, not only this turn.
    pub invalid_token: bool,
    /// Another getUpdates consumer, or a webhook, holds the bot's updates.
    pub conflict: bool,
    /// The group became a supergroup with this id.
    pub migrated_to: Option<i64>,
    pub message: String,
    /// The HTTP status Telegram most likely answered (teloxide keeps only the description);
    /// 0 when no answer arrived. For metrics.
    pub code: u16,
}

impl TelegramFailure {
    pub fn fatal(message: String) -> Self {
        Self::new(FailureClass::Fatal, message)
    }

    fn new(class: FailureClass, message: String) -> Self {
        Self {
            class,
            retry_after: None,
            invalid_token: false,
            conflict: false,
            migrated_to: None,
            message,
            code: match class {
                FailureClass::Terminal => 403,
                FailureClass::Fatal => 400,
                FailureClass::Retryable => 0,
            },
        }
    }
}

pub fn classify(error: &RequestError) -> TelegramFailure {
    let message = error.to_string();
    match error {
        RequestError::RetryAfter(seconds) => TelegramFailure {
            retry_after: Some(seconds.duration()),
            code: 429,
            ..TelegramFailure::new(FailureClass::Retryable, message)
        },
        RequestError::MigrateToChatId(chat_id) => TelegramFailure {
            migrated_to: Some(chat_id.0),
            code: 400,
            ..TelegramFailure::new(FailureClass::Retryable, message)
        },
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => {
            TelegramFailure::new(FailureClass::Retryable, message)
        }
        RequestError::Api(api) => classify_api(api, message),
    }
}

fn classify_api(error: &ApiError, message: String) -> TelegramFailure {
    match error {
        ApiError::InvalidToken => TelegramFailure {
            invalid_token: true,
            code: 401,
            ..TelegramFailure::new(FailureClass::Fatal, message)
        },
        ApiError::TerminatedByOtherGetUpdates | ApiError::CantGetUpdates => TelegramFailure {
            conflict: true,
            code: 409,
            ..TelegramFailure::new(FailureClass::Retryable, message)
        },
        // The chat cannot be reached: no retry will change that until its user writes again.
        ApiError::BotBlocked
        | ApiError::ChatNotFound
        | ApiError::UserNotFound
        | ApiError::UserDeactivated
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots
        | ApiError::GroupDeactivated
        | ApiError::NotEnoughRightsToPostMessages => {
            TelegramFailure::new(FailureClass::Terminal, message)
        }
        ApiError::Unknown(description) if looks_transient(description) => {
            TelegramFailure::new(FailureClass::Retryable, message)
        }
        _ => TelegramFailure::new(FailureClass::Fatal, message),
    }
}

/// Server-side trouble that Telegram reports with a description teloxide does not know.
fn looks_transient(description: &str) -> bool {
    let lower = description.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
        "too many requests",
        "timeout",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}
