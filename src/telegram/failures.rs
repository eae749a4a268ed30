//! What a failed Telegram call means: from the answer's status, description and parameters.

use std::time::Duration;

use aggregates::chat::FailureClass;

use super::bot_api::AnswerParameters;

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
    /// Telegram could not parse the message's HTML: the same text, plain, will go through.
    pub cant_parse_entities: bool,
    /// An edit that changed nothing: for an edit, as good as done.
    pub not_modified: bool,
    /// No answer came after the request was written: Telegram may have acted on it.
    pub ambiguous: bool,
    /// What Telegram said (never the token).
    pub message: String,
    /// The HTTP status Telegram answered with; 0 when no answer arrived. For metrics.
    pub code: u16,
}

impl TelegramFailure {
    pub fn fatal(message: String) -> Self {
        Self::new(FailureClass::Fatal, 0, message)
    }

    /// No answer: the connection could not be made, or the answer never came.
    pub fn transport(message: String, ambiguous: bool) -> Self {
        Self {
            ambiguous,
            ..Self::new(FailureClass::Retryable, 0, message)
        }
    }

    fn new(class: FailureClass, code: u16, message: String) -> Self {
        Self {
            class,
            retry_after: None,
            invalid_token: false,
            conflict: false,
            migrated_to: None,
            cant_parse_entities: false,
            not_modified: false,
            ambiguous: false,
            message,
            code,
        }
    }
}

/// Descriptions that say the chat is out of reach until its user writes again (Telegram
/// sends most of them as 403, a few as 400).
const CHAT_OUT_OF_REACH: &[&str] = &[
    "bot was blocked by the user",
    "user is deactivated",
    "bot was kicked",
    "bot is not a member",
    "chat not found",
    "user not found",
    "group chat was deactivated",
    "can't initiate conversation",
    "bots can't send messages to bots",
    "have no rights to send",
    "not enough rights to send",
    "chat_write_forbidden",
    "peer_id_invalid",
];

/// Descriptions of trouble on Telegram's side, whatever the status.
const TRANSIENT: &[&str] = &[
    "internal server error",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
    "too many requests",
    "timeout",
];

/// Classifies Telegram's answer to a failed call.
pub fn classify_answer(
    code: u16,
    description: &str,
    parameters: &AnswerParameters,
) -> TelegramFailure {
    let message = description.to_owned();
    let lower = description.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if let Some(to_chat_id) = parameters.migrate_to_chat_id {
        return TelegramFailure {
            migrated_to: Some(to_chat_id),
            ..TelegramFailure::new(FailureClass::Retryable, code, message)
        };
    }
    if code == 429 || parameters.retry_after.is_some() {
        return TelegramFailure {
            retry_after: parameters.retry_after.map(Duration::from_secs),
            ..TelegramFailure::new(FailureClass::Retryable, code, message)
        };
    }
    match code {
        401 => TelegramFailure {
            invalid_token: true,
            ..TelegramFailure::new(FailureClass::Fatal, code, message)
        },
        409 => TelegramFailure {
            conflict: true,
            ..TelegramFailure::new(FailureClass::Retryable, code, message)
        },
        500.. => TelegramFailure::new(FailureClass::Retryable, code, message),
        403 => TelegramFailure::new(FailureClass::Terminal, code, message),
        _ if has(CHAT_OUT_OF_REACH) => TelegramFailure::new(FailureClass::Terminal, code, message),
        _ if lower.contains("can't parse entities") => TelegramFailure {
            cant_parse_entities: true,
            ..TelegramFailure::new(FailureClass::Fatal, code, message)
        },
        _ if lower.contains("message is not modified") => TelegramFailure {
            not_modified: true,
            ..TelegramFailure::new(FailureClass::Fatal, code, message)
        },
        _ if has(TRANSIENT) => TelegramFailure::new(FailureClass::Retryable, code, message),
        _ => TelegramFailure::new(FailureClass::Fatal, code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u16, description: &str) -> TelegramFailure {
        classify_answer(code, description, &AnswerParameters::default())
    }

    #[test]
    fn each_kind_of_answer_has_its_class() {
        assert!(failure(401, "Unauthorized").invalid_token);
        assert!(failure(409, "Conflict: terminated by other getUpdates request").conflict);
        assert_eq!(
            failure(403, "Forbidden: bot was blocked by the user").class,
            FailureClass::Terminal
        );
        assert_eq!(
            failure(400, "Bad Request: chat not found").class,
            FailureClass::Terminal
        );
        assert!(
            failure(
                400,
                "Bad Request: can't parse entities: Unsupported start tag"
            )
            .cant_parse_entities
        );
        assert!(failure(400, "Bad Request: message is not modified").not_modified);
        assert_eq!(
            failure(400, "Bad Request: message text is empty").class,
            FailureClass::Fatal
        );
        for status in [500, 502, 503, 504] {
            let failure = failure(status, "Bad Gateway");
            assert_eq!(failure.class, FailureClass::Retryable, "{status}");
            assert_eq!(failure.code, status);
        }
        let flood = classify_answer(
            429,
            "Too Many Requests: retry after 30",
            &AnswerParameters {
                retry_after: Some(30),
                migrate_to_chat_id: None,
            },
        );
        assert_eq!(flood.retry_after, Some(Duration::from_secs(30)));
        let migrated = classify_answer(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            &AnswerParameters {
                retry_after: None,
                migrate_to_chat_id: Some(-100_123),
            },
        );
        assert_eq!(migrated.migrated_to, Some(-100_123));
    }
}
