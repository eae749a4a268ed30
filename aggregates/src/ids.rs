//! Typed identities: what an id is for is in its type, so a bot id cannot be passed where a
//! chat id is meant, and an admin message is never mistaken for a Telegram update.
//!
//! Stored JSON is unchanged: each id serializes exactly as the bare value it wraps did
//! (`BotId` and `ChatId` as a UUID string, `UpdateId` as a number, `TurnKey` as the number
//! events have always held: an update id, or a negative number for an admin message).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A registered bot: its aggregate id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BotId(pub Uuid);

/// The chat between one bot and one Telegram chat: its aggregate id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatId(pub Uuid);

/// Telegram's id of an update, unique per bot: the intake's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpdateId(pub i64);

/// The namespace of chat aggregate ids (UUIDv5 of `bot id:telegram chat id`).
const CHAT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5c0f_ee7a_2b1d_4e6b_9a43_b07f_1ee7_c4a7);

/// The namespace of turn ids (UUIDv5 of `chat id:turn key`).
const TURN_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7a2c_91d4_0e3b_4f58_a6c1_d2e9_b8f0_3c17);

impl ChatId {
    /// The chat between `bot` and the Telegram chat `telegram_chat_id`: derived, so that the
    /// intake finds the aggregate without a lookup, and the same chat always maps to one
    /// stream.
    pub fn of(bot: BotId, telegram_chat_id: i64) -> Self {
        Self(Uuid::new_v5(
            &CHAT_ID_NAMESPACE,
            format!("{}:{telegram_chat_id}", bot.0).as_bytes(),
        ))
    }
}

/// Which turn of a chat: the Telegram update that opened it, or the chat's n-th admin message
/// (from 1). Events store the latter as `-n`, which no Telegram update id can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TurnKey {
    Update(UpdateId),
    AdminMessage(u32),
}

impl TurnKey {
    /// The number events and read models store.
    pub fn stored(self) -> i64 {
        match self {
            TurnKey::Update(update) => update.0,
            TurnKey::AdminMessage(n) => -i64::from(n),
        }
    }

    /// The turn a stored number stands for.
    pub fn from_stored(stored: i64) -> Self {
        if stored < 0 {
            TurnKey::AdminMessage(u32::try_from(-stored).unwrap_or(u32::MAX))
        } else {
            TurnKey::Update(UpdateId(stored))
        }
    }

    /// A stable id for the turn (a message and its answer), e.g. for an admin's retry.
    pub fn turn_id(self, chat: ChatId) -> Uuid {
        Uuid::new_v5(
            &TURN_ID_NAMESPACE,
            format!("{}:{}", chat.0, self.stored()).as_bytes(),
        )
    }
}

impl From<UpdateId> for TurnKey {
    fn from(update: UpdateId) -> Self {
        TurnKey::Update(update)
    }
}

impl Serialize for TurnKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.stored())
    }
}

impl<'de> Deserialize<'de> for TurnKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(TurnKey::from_stored)
    }
}

macro_rules! display_inner {
    ($($id:ty),*) => {$(
        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(BotId, ChatId, UpdateId);

impl fmt::Display for TurnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TurnKey::Update(update) => write!(f, "update {update}"),
            TurnKey::AdminMessage(n) => write!(f, "admin message {n}"),
        }
    }
}

/// What stops a bot from working, as its `last_error` shows it. Each kind is cleared only by
/// the component that owns it (a successful LLM answer clears `Llm`, a set webhook `Webhook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotErrorKind {
    /// The LLM refused the bot's requests for good (a bad key, an unknown model).
    Llm,
    /// Another consumer polls the bot's token (Telegram's 409 Conflict).
    TelegramConflict,
    /// Telegram refuses the token: nothing is attempted until an admin sets a new one.
    TelegramInvalidToken,
    /// setWebhook or deleteWebhook failed.
    Webhook,
    /// OPENAI_API_KEY is not set: no bot can answer until a start with it.
    LlmNotConfigured,
    /// A kind this version does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

impl BotErrorKind {
    /// The name the read models and the API show.
    pub fn as_str(self) -> &'static str {
        match self {
            BotErrorKind::Llm => "llm",
            BotErrorKind::TelegramConflict => "telegram_conflict",
            BotErrorKind::TelegramInvalidToken => "telegram_invalid_token",
            BotErrorKind::Webhook => "webhook",
            BotErrorKind::LlmNotConfigured => "llm_not_configured",
            BotErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for BotErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_the_bare_values_events_have_always_held() {
        let bot = BotId(Uuid::from_u128(7));
        assert_eq!(
            serde_json::to_value(bot).unwrap(),
            serde_json::json!(Uuid::from_u128(7).to_string())
        );
        assert_eq!(serde_json::to_value(UpdateId(42)).unwrap(), 42);
        assert_eq!(
            serde_json::to_value(TurnKey::Update(UpdateId(42))).unwrap(),
            42
        );
        assert_eq!(serde_json::to_value(TurnKey::AdminMessage(3)).unwrap(), -3);
        for stored in [0, 1, 42, i64::from(i32::MAX) + 1, -1, -3] {
            let key: TurnKey = serde_json::from_value(serde_json::json!(stored)).unwrap();
            assert_eq!(key.stored(), stored);
        }
        assert_eq!(TurnKey::from_stored(-3), TurnKey::AdminMessage(3));
        assert_eq!(TurnKey::from_stored(0), TurnKey::Update(UpdateId(0)));
    }

    #[test]
    fn chat_ids_are_stable_and_distinct() {
        let bot = BotId(Uuid::from_u128(1));
        assert_eq!(ChatId::of(bot, 42), ChatId::of(bot, 42));
        assert_ne!(ChatId::of(bot, 42), ChatId::of(bot, 43));
        assert_ne!(
            ChatId::of(bot, 42),
            ChatId::of(BotId(Uuid::from_u128(2)), 42)
        );
    }

    #[test]
    fn error_kinds_keep_their_stored_names() {
        for kind in [
            BotErrorKind::Llm,
            BotErrorKind::TelegramConflict,
            BotErrorKind::TelegramInvalidToken,
            BotErrorKind::Webhook,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let newer: BotErrorKind = serde_json::from_value(serde_json::json!("quota")).unwrap();
        assert_eq!(newer, BotErrorKind::Unknown);
    }
}
