//! Values that chat events carry.

use serde::{Deserialize, Serialize};

use crate::personal::PersonalText;

/// The `media` of a turn that is the bot being added to a group (not a message to answer:
/// the group is greeted, or told the bot may not serve it).
pub const ADDED_TO_GROUP: &str = "added_to_group";

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
    /// The person's own use and limits.
    Usage,
}

impl BotCommandName {
    /// Recognises `/start`, `/help`, `/refresh` and `/usage`, also in the `/start@botname` form (when
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
            "usage" => Some(Self::Usage),
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
}
