//! The facts of a bot's life. Each carries the full values a reader needs, so a projection
//! never has to look anything up, and never the plaintext token.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::commands::ExtraGrant;
use super::policy::BotPolicy;
use super::values::SealedToken;
use crate::ids::BotErrorKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BotEvent {
    BotCreated {
        bot_id: crate::ids::BotId,
        name: String,
        token: SealedToken,
        start_message: String,
        error_message: String,
        model: String,
        instructions: String,
    },
    BotUpdated {
        name: String,
        /// Present only when the token changed.
        token: Option<SealedToken>,
        start_message: String,
        error_message: String,
        model: String,
        instructions: String,
    },
    BotEnabled,
    BotDisabled,
    BotDeleted,
    /// Telegram now delivers this bot's updates to `url`: the kinds in `allowed_updates`
    /// (empty in events recorded before the kinds were: set again by the supervisor).
    WebhookSet {
        url: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowed_updates: Vec<String>,
    },
    /// Telegram no longer pushes updates: the bot is disabled, or long-polled.
    WebhookDeleted,
    /// Something stops the bot from working; shown to admins until cleared.
    BotErrorRecorded {
        kind: BotErrorKind,
        message: String,
    },
    BotErrorCleared,
    /// The bot's @username on Telegram, as getMe reported it.
    BotIdentified {
        username: String,
    },
    /// Who may talk to the bot and how much it may spend, as a whole.
    PolicySet {
        policy: BotPolicy,
    },
    /// An admin let one person use more in one day or month.
    ExtraGranted(ExtraGrant),
    /// What the bot does with voice messages and images, as a whole.
    MediaSettingsSet {
        settings: super::media::BotMediaSettings,
    },
    /// Whether answers stream into the chat as they are written (drafts in private chats, a
    /// paced edited message in groups). A bot without this event does not stream: bots made
    /// before streaming existed keep answering as they did.
    StreamingSet {
        on: bool,
    },
}

impl DomainEvent for BotEvent {
    fn event_type(&self) -> String {
        match self {
            BotEvent::BotCreated { .. } => "BotCreated",
            BotEvent::BotUpdated { .. } => "BotUpdated",
            BotEvent::BotEnabled => "BotEnabled",
            BotEvent::BotDisabled => "BotDisabled",
            BotEvent::BotDeleted => "BotDeleted",
            BotEvent::WebhookSet { .. } => "WebhookSet",
            BotEvent::WebhookDeleted => "WebhookDeleted",
            BotEvent::BotErrorRecorded { .. } => "BotErrorRecorded",
            BotEvent::BotErrorCleared => "BotErrorCleared",
            BotEvent::BotIdentified { .. } => "BotIdentified",
            BotEvent::PolicySet { .. } => "PolicySet",
            BotEvent::ExtraGranted { .. } => "ExtraGranted",
            BotEvent::MediaSettingsSet { .. } => "MediaSettingsSet",
            BotEvent::StreamingSet { .. } => "StreamingSet",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::EVENT_VERSION.to_owned()
    }
}
