/// Why the Chat aggregate refused a command. For the effect runner most of these mean "this
/// step was already recorded, by you or another runner": reload and carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("{0} has no open turn in this chat")]
    NoOpenTurn(crate::ids::TurnKey),
    #[error("{0} already has a response")]
    AlreadyResponded(crate::ids::TurnKey),
    #[error("{0} has no response to send yet")]
    NotGenerated(crate::ids::TurnKey),
    #[error("this chat belongs to another bot")]
    OtherBot,
    #[error("{0} is not a failed turn of this chat")]
    NotFailed(crate::ids::TurnKey),
    #[error("{0} is not a callback query awaiting an answer")]
    NotACallback(crate::ids::TurnKey),
    #[error("the chat has not started: nobody wrote to the bot in it yet")]
    NotStarted,
}
