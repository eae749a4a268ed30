use crate::text::InvalidField;

/// Why the Bot aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("a bot with this id already exists")]
    AlreadyExists,
    #[error("no bot with this id exists")]
    NotFound,
    #[error("the bot is deleted and can no longer be {0}")]
    Deleted(&'static str),
    #[error("the bot is not enabled, so its webhook is not wanted")]
    NotEnabled,
}
