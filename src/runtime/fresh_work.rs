//! The fast path from intake to the effect runner of the same process.
//!
//! The durable way work reaches a runner is the `chat_work` table, which the append keeps, and
//! its announcement to every process's runner, which then claims. When the update was accepted
//! by this very process, intake also hands the chat straight to the runner, which claims it
//! with one statement, and ignores the announcement of that turn (it carries this process's
//! tag: see `crate::db::PROCESS_SETTING`). So a hint must never vanish: when the queue is
//! full, the runner is told to claim from chat_work instead.

use std::sync::{Arc, Mutex};

use aggregates::ids::{BotId, ChatId};
use tokio::sync::{mpsc, Notify};

/// Hints kept while the runner is busy; beyond this, the runner claims from chat_work.
const CAPACITY: usize = 4096;

/// The runner's end: chats with a new turn, with their bot, and the word that some did not
/// fit in the queue.
pub struct FreshWorkReceiver {
    pub hints: mpsc::Receiver<(BotId, ChatId)>,
    pub overflowed: Arc<Notify>,
}

#[derive(Clone)]
pub struct FreshWork {
    sender: mpsc::Sender<(BotId, ChatId)>,
    overflowed: Arc<Notify>,
    /// Taken once, by the process's runner.
    receiver: Arc<Mutex<Option<FreshWorkReceiver>>>,
}

impl Default for FreshWork {
    fn default() -> Self {
        let (sender, hints) = mpsc::channel(CAPACITY);
        let overflowed = Arc::new(Notify::new());
        Self {
            sender,
            overflowed: overflowed.clone(),
            receiver: Arc::new(Mutex::new(Some(FreshWorkReceiver { hints, overflowed }))),
        }
    }
}

impl FreshWork {
    /// Tells the runner that `chat` (of `bot`) has a new turn, committed just now.
    pub fn announce(&self, bot: BotId, chat: ChatId) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send((bot, chat)) {
            // A permit is kept until the runner looks, so the word cannot be missed.
            self.overflowed.notify_one();
        }
    }

    /// The runner's end of the queue; `None` once taken.
    pub fn take_receiver(&self) -> Option<FreshWorkReceiver> {
        self.receiver.lock().expect("fresh work lock").take()
    }
}
