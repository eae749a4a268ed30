//! What an admin can ask of a bot. Commands carry parsed values, so an invalid one cannot be
//! built; the aggregate decides only what depends on the bot's history.

use chrono::NaiveDate;

use super::policy::{BotPolicy, GrantPeriod};
use super::values::{BotMessage, BotName, BotToken, Instructions, ModelName};
use crate::ids::BotErrorKind;

/// The settings an admin edits as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSettings {
    pub name: BotName,
    pub start_message: BotMessage,
    pub error_message: BotMessage,
    pub model: ModelName,
    pub instructions: Instructions,
    /// Whether answers stream into the chat as they are written: `None` keeps the current
    /// choice (off for a bot created without one; the HTTP API turns it on for new bots).
    pub streaming: Option<bool>,
}

/// Some of the settings, each changed only when given (a partial update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChanges {
    pub name: Option<BotName>,
    pub start_message: Option<BotMessage>,
    pub error_message: Option<BotMessage>,
    pub model: Option<ModelName>,
    pub instructions: Option<Instructions>,
    pub streaming: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotCommand {
    Create {
        bot_id: crate::ids::BotId,
        token: BotToken,
        settings: BotSettings,
    },
    /// Replaces the settings; a `token` of `None` keeps the current one.
    Update {
        token: Option<BotToken>,
        settings: BotSettings,
    },
    /// Changes only the settings given, and the token when given (a token alone rotates
    /// it). The bot's current values fill in the rest, so two admins changing different
    /// settings at once both keep their change.
    Change {
        token: Option<BotToken>,
        changes: SettingsChanges,
    },
    Enable,
    Disable,
    Delete,
    /// The effect runner set the webhook; refused unless the bot is enabled.
    RecordWebhookSet {
        url: String,
        /// The update kinds asked for with it.
        allowed_updates: Vec<String>,
    },
    /// The effect runner deleted the webhook.
    RecordWebhookDeleted,
    /// Records what stops the bot from working (a repeat of the current error is no change).
    RecordError {
        kind: BotErrorKind,
        message: String,
    },
    /// What caused an error of this kind works again: clears the bot's error if it is of
    /// that kind (another kind of error is not this caller's to clear).
    ClearError {
        kind: BotErrorKind,
    },
    /// Records the bot's @username (a repeat of the known one is no change).
    RecordIdentity {
        username: String,
    },
    /// Replaces who may talk to the bot and how much it may spend (checked with
    /// [`BotPolicy::validate`]; an equal policy is no change).
    SetPolicy {
        policy: BotPolicy,
    },
    /// Lets `person` use more than their limits in the period that starts on `period_start`.
    GrantExtra(ExtraGrant),
    /// Replaces what the bot does with voice messages and images (equal settings are no
    /// change).
    SetMediaSettings(super::media::BotMediaSettings),
}

/// Extra use an admin grants one person for one day or month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtraGrant {
    /// The person's Telegram user id.
    pub person: i64,
    pub period: GrantPeriod,
    /// The first day of the period granted for (a day, or the first of a month).
    pub period_start: NaiveDate,
    pub messages: u32,
    pub cost_micro_usd: i64,
    /// Why, for the audit trail.
    pub note: String,
}
