//! The fast path from intake to the effect runner of the same process.
//!
//! The durable way work reaches a runner is the `chat_work` projection: a commit, its
//! notification, a projection transaction, then a claim. That is a handful of round trips
//! before the LLM is even asked. When the update was accepted by this very process, intake
//! also hands the chat straight to the runner, which claims it with one statement. Nothing
//! depends on this path: a full queue drops the hint, and the projection still brings the work.

use std::sync::{Arc, Mutex};

use aggregates::ids::{BotId, ChatId};
use tokio::sync::mpsc;

/// Hints kept while the runner is busy; beyond this, the projection path takes over.
const CAPACITY: usize = 4096;

/// The runner's end: chats with a new turn, with their bot.
pub type FreshWorkReceiver = mpsc::Receiver<(BotId, ChatId)>;

#[derive(Clone)]
pub struct FreshWork {
    sender: mpsc::Sender<(BotId, ChatId)>,
    /// Taken once, by the process's runner.
    receiver: Arc<Mutex<Option<FreshWorkReceiver>>>,
}

impl Default for FreshWork {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        Self {
            sender,
            receiver: Arc::new(Mutex::new(Some(receiver))),
        }
    }
}

impl FreshWork {
    /// Tells the runner that `chat` (of `bot`) has a new turn, committed just now.
    pub fn announce(&self, bot: BotId, chat: ChatId) {
        // A full or closed queue is fine: the chat_work projection brings the same work.
        let _ = self.sender.try_send((bot, chat));
    }

    /// The runner's end of the queue; `None` once taken.
    pub fn take_receiver(&self) -> Option<FreshWorkReceiver> {
        self.receiver.lock().expect("fresh work lock").take()
    }
}
