//! The Chat aggregate: one Telegram chat with one bot, and the turns of its conversation.
//!
//! A turn starts when a message is received and ends when its response is sent (or the turn
//! fails for good). Every step is recorded here, and the aggregate refuses a step that was
//! already recorded: with the expected version on every append, that is what makes the
//! effect runner idempotent, however many runners race.

mod aggregate;
mod commands;
mod errors;
mod events;
pub mod media;
mod screening;
mod values;

pub use aggregate::{
    Chat, Conversation, OpenTurn, RecentMessage, TurnRefusal, FAILED_TURNS_KEPT, HISTORY_WINDOW,
};
pub use commands::{ChatCommand, IncomingCallback, IncomingMessage, Screening};
pub use errors::ChatError;
pub use events::{
    Charge, ChatEvent, FailureClass, GeneratedResponse, ResponseKind, TurnKind, TurnStep,
    MESSAGE_RECEIVED_VERSION,
};
pub use values::{BotCommandName, TelegramChat, TelegramUser, TokenUsage, ADDED_TO_GROUP};

/// The Chat aggregate needs nothing from the outside world: every value arrives in commands.
#[derive(Debug, Clone, Default)]
pub struct ChatServices;
