//! Values that chat events carry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::personal::PersonalText;

/// The namespace of chat aggregate ids (UUIDv5 of `bot id:telegram chat id`).
const CHAT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5c0f_ee7a_2b1d_4e6b_9a43_b07f_1ee7_c4a7);

/// The aggregate id of the chat between `bot_id` and the Telegram chat: derived, so that the
/// intake finds the aggregate without a lookup, and the same chat always maps to one stream.
pub fn chat_aggregate_id(bot_id: Uuid, telegram_chat_id: i64) -> Uuid {
    Uuid::new_v5(
        &CHAT_ID_NAMESPACE,
        format!("{bot_id}:{telegram_chat_id}").as_bytes(),
    )
}

/// The namespace of turn ids (UUIDv5 of `chat id:update id`).
const TURN_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7a2c_91d4_0e3b_4f58_a6c1_d2e9_b8f0_3c17);

/// A stable id for one turn (a message and its answer), e.g. for an admin's retry.
pub fn turn_id(chat_id: Uuid, update_id: i64) -> Uuid {
    Uuid::new_v5(
        &TURN_ID_NAMESPACE,
        format!("{chat_id}:{update_id}").as_bytes(),
    )
}

/// The chat as Telegram describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramChat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    pub kind: String,
    pub title: Option<PersonalText>,
    pub username: Option<PersonalText>,
}

/// The person who wrote, as Telegram describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramUser {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: PersonalText,
    pub last_name: Option<PersonalText>,
    pub username: Option<PersonalText>,
    pub language_code: Option<String>,
}

/// Tokens an LLM call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    /// Part of `input_tokens` served from the provider's prompt cache (cheaper).
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Part of `output_tokens` spent on reasoning.
    pub reasoning_tokens: u64,
}

/// The commands every bot understands without asking the LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotCommandName {
    Start,
    Help,
    Refresh,
}

impl BotCommandName {
    /// Recognises `/start`, `/help` and `/refresh`, also in the `/start@botname` form (when
    /// `bot_username` is known, the name must be this bot's) and with arguments after a space.
    pub fn parse(text: &str, bot_username: Option<&str>) -> Option<Self> {
        let first = text.split_whitespace().next()?;
        let command = first.strip_prefix('/')?;
        let (name, addressee) = match command.split_once('@') {
            Some((name, addressee)) => (name, Some(addressee)),
            None => (command, None),
        };
        if let (Some(addressee), Some(own)) = (addressee, bot_username) {
            if !addressee.eq_ignore_ascii_case(own) {
                return None;
            }
        }
        match name.to_ascii_lowercase().as_str() {
            "start" => Some(Self::Start),
            "help" => Some(Self::Help),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_recognised_in_every_form_telegram_sends() {
        assert_eq!(
            BotCommandName::parse("/start", None),
            Some(BotCommandName::Start)
        );
        assert_eq!(
            BotCommandName::parse("/help extra words", None),
            Some(BotCommandName::Help)
        );
        assert_eq!(
            BotCommandName::parse("/refresh@MyBot", Some("mybot")),
            Some(BotCommandName::Refresh)
        );
        assert_eq!(
            BotCommandName::parse("/start@MyBot", None),
            Some(BotCommandName::Start)
        );
        assert_eq!(
            BotCommandName::parse("/start@OtherBot", Some("MyBot")),
            None
        );
        assert_eq!(BotCommandName::parse("/unknown", None), None);
        assert_eq!(BotCommandName::parse("start", None), None);
        assert_eq!(BotCommandName::parse("", None), None);
    }

    #[test]
    fn chat_ids_are_stable_and_distinct() {
        let bot = Uuid::from_u128(1);
        assert_eq!(chat_aggregate_id(bot, 42), chat_aggregate_id(bot, 42));
        assert_ne!(chat_aggregate_id(bot, 42), chat_aggregate_id(bot, 43));
        assert_ne!(
            chat_aggregate_id(bot, 42),
            chat_aggregate_id(Uuid::from_u128(2), 42)
        );
    }
}
