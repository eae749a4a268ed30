//! The Bot aggregate: one Telegram bot as an admin registered it.

mod aggregate;
mod commands;
mod errors;
mod events;
pub mod media;
pub mod policy;
pub mod texts;
mod values;

pub use aggregate::{Bot, BotLifecycle};
pub use commands::{BotCommand, BotSettings, ExtraGrant, SettingsChanges};
pub use errors::BotError;
pub use events::BotEvent;
pub use values::{BotMessage, BotName, BotToken, Instructions, ModelName, SealedToken};

use std::sync::Arc;

/// Seals a bot token so that it can enter an event: the event log is immutable and auditors
/// read it, so the plaintext must never be written there.
pub trait TokenSealer: Send + Sync {
    fn seal(&self, token: &BotToken) -> SealedToken;
    /// A keyed fingerprint: equal for equal tokens under one key, useless without the key.
    fn fingerprint(&self, token: &BotToken) -> String;
}

/// What the Bot aggregate needs from the outside world.
#[derive(Clone)]
pub struct BotServices {
    pub sealer: Arc<dyn TokenSealer>,
}

impl BotServices {
    pub fn new(sealer: Arc<dyn TokenSealer>) -> Self {
        Self { sealer }
    }
}
