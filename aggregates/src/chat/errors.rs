/// Why the Chat aggregate refused a command. For the effect runner most of these mean "this
/// step was already recorded, by you or another runner": reload and carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("update {0} has no open turn in this chat")]
    NoOpenTurn(i64),
    #[error("update {0} already has a response")]
    AlreadyResponded(i64),
    #[error("update {0} has no response to send yet")]
    NotGenerated(i64),
    #[error("this chat belongs to another bot")]
    OtherBot,
    #[error("update {0} is not a failed turn of this chat")]
    NotFailed(i64),
    #[error("update {0} is not a callback query awaiting an answer")]
    NotACallback(i64),
    #[error("the chat has not started: nobody wrote to the bot in it yet")]
    NotStarted,
}
