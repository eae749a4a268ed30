//! Parsed values of a bot's settings: once constructed, they are valid.

use serde::{Deserialize, Serialize};

use crate::text::{bounded, InvalidField};

/// Telegram's own limit on a message's length, in characters.
pub const TELEGRAM_MESSAGE_MAX_CHARS: usize = 4096;
/// Telegram allows 64 characters in a bot's name.
pub const BOT_NAME_MAX_CHARS: usize = 64;
pub const MODEL_NAME_MAX_CHARS: usize = 128;
/// Generous, yet bounded: instructions are sent with every LLM call.
pub const INSTRUCTIONS_MAX_CHARS: usize = 32_768;

/// A Telegram bot token, as BotFather issues it: the bot's numeric id, a colon, and 35
/// characters of `A-Za-z0-9_-`. Its `Debug` never prints the secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(String);

impl BotToken {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        let reason = "must look like a Telegram bot token: the bot's id (a positive number), a colon, and 35 characters of A-Za-z0-9_-";
        let (id, secret) = value
            .split_once(':')
            .ok_or_else(|| InvalidField::new("token", reason))?;
        // The id is the bot's Telegram user id: a positive 64-bit number, written without a
        // leading zero (so one token has one spelling, and its fingerprint one value).
        let id_ok = id.bytes().all(|b| b.is_ascii_digit())
            && !id.starts_with('0')
            && id.parse::<i64>().is_ok_and(|n| n > 0);
        let secret_ok = secret.len() == 35
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if id_ok && secret_ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidField::new("token", reason))
        }
    }

    /// The plaintext, for the Telegram client and the sealer only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The form admins see: the public bot id and the last four characters, e.g. `123456:…wxyz`.
    pub fn hint(&self) -> String {
        let (id, secret) = self.0.split_once(':').unwrap_or(("", &self.0));
        let tail: String = secret
            .chars()
            .skip(secret.chars().count().saturating_sub(4))
            .collect();
        format!("{id}:…{tail}")
    }

    /// The bot's Telegram user id, the digits before the colon.
    pub fn telegram_bot_id(&self) -> i64 {
        self.0
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BotToken({})", self.hint())
    }
}

/// A token after sealing: what events and read models hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedToken {
    /// AEAD ciphertext (nonce and sealed bytes), base64.
    pub ciphertext: String,
    /// Keyed fingerprint, so "is this the same token?" is answerable without decrypting.
    pub fingerprint: String,
    /// The masked form shown to admins.
    pub hint: String,
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidField> {
                Self::parse_field($field, value)
            }

            /// Parses a value that arrived under another field name.
            pub fn parse_field(field: &str, value: &str) -> Result<Self, InvalidField> {
                bounded(field, value, $min, $max)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

bounded_text!(
    /// The bot's display name in the admin API: non-empty, at most 64 characters.
    BotName, "name", 1, BOT_NAME_MAX_CHARS
);
bounded_text!(
    /// A message the bot sends verbatim (start or error message): one Telegram message.
    BotMessage, "message", 1, TELEGRAM_MESSAGE_MAX_CHARS
);
bounded_text!(
    /// The system instructions sent with every LLM call; may be empty.
    Instructions, "instructions", 0, INSTRUCTIONS_MAX_CHARS
);

/// An LLM model name such as `gpt-5-mini`: non-empty, no whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        bounded("model", value, 1, MODEL_NAME_MAX_CHARS)?;
        if value.chars().any(char::is_whitespace) {
            return Err(InvalidField::new("model", "must not contain whitespace"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1";

    #[test]
    fn a_botfather_token_parses_and_hides_its_secret() {
        let token = BotToken::parse(TOKEN).unwrap();
        assert_eq!(token.hint(), "123456789:…saw1");
        assert_eq!(token.telegram_bot_id(), 123456789);
        assert!(!format!("{token:?}").contains("AAHdq"));
    }

    #[test]
    fn malformed_tokens_are_refused_naming_the_field() {
        for bad in [
            "",
            "no-colon",
            ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
            "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
            "123:short",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1x",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsa!1",
        ] {
            let err = BotToken::parse(bad).unwrap_err();
            assert_eq!(err.field, "token", "{bad}");
        }
    }

    #[test]
    fn the_bot_id_of_a_token_is_a_positive_64_bit_number() {
        let secret = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1";
        for bad in [
            "0",
            "00",
            "0123",
            "9223372036854775808",
            "18446744073709551616",
        ] {
            let err = BotToken::parse(&format!("{bad}:{secret}")).unwrap_err();
            assert_eq!(err.field, "token", "{bad}");
        }
        let largest = BotToken::parse(&format!("9223372036854775807:{secret}")).unwrap();
        assert_eq!(largest.telegram_bot_id(), i64::MAX);
        assert!(BotToken::parse(&format!("1:{secret}")).is_ok());
    }

    #[test]
    fn texts_are_bounded_in_characters_not_bytes() {
        assert!(BotMessage::parse(&"ж".repeat(4096)).is_ok());
        let err = BotMessage::parse_field("start_message", &"ж".repeat(4097)).unwrap_err();
        assert_eq!(err.field, "start_message");
        assert_eq!(BotName::parse("").unwrap_err().reason, "must not be empty");
        assert!(Instructions::parse("").is_ok());
        assert!(ModelName::parse("gpt 5").is_err());
        assert!(ModelName::parse("gpt-5-mini").is_ok());
    }
}
