//! Which bots changed, as the `bots` read model's announcements tell every process.
//!
//! The bots projector announces each bot it changed (`NOTIFY botfleet_bots`, at its commit);
//! every process's LISTEN connection counts them here. A reader that remembers a bot's row
//! takes [`BotChanges::mark`] before reading it and keeps the row only while
//! [`BotChanges::unchanged_since`] holds: a change announced after the read began makes it
//! read again, so a remembered row is never older than the last announced change. When the
//! LISTEN connection is lost, everything counts as changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

pub use projections::bots::CHANGES_CHANNEL;

#[derive(Clone, Default)]
pub struct BotChanges {
    inner: Arc<Mutex<Changes>>,
}

#[derive(Default)]
struct Changes {
    /// Moves at every announcement.
    counter: u64,
    /// The counter at each bot's last announced change.
    by_bot: HashMap<Uuid, u64>,
    /// The counter when every bot last counted as changed.
    all: u64,
}

/// How many bots' changes are kept one by one before they are folded into "every bot".
const REMEMBERED_BOTS: usize = 10_000;

impl BotChanges {
    /// The point a read starts from.
    pub fn mark(&self) -> u64 {
        self.inner.lock().expect("bot changes lock").counter
    }

    /// Whether `bot` has not changed since `mark`.
    pub fn unchanged_since(&self, bot: Uuid, mark: u64) -> bool {
        let changes = self.inner.lock().expect("bot changes lock");
        changes.all <= mark && changes.by_bot.get(&bot).is_none_or(|at| *at <= mark)
    }

    /// `bot` changed; `None`: any bot may have (announcements were lost).
    pub fn changed(&self, bot: Option<Uuid>) {
        let mut changes = self.inner.lock().expect("bot changes lock");
        changes.counter += 1;
        let counter = changes.counter;
        match bot {
            Some(bot) if changes.by_bot.len() < REMEMBERED_BOTS => {
                changes.by_bot.insert(bot, counter);
            }
            _ => {
                changes.all = counter;
                changes.by_bot.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_after_the_mark_counts_and_one_before_it_does_not() {
        let changes = BotChanges::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        changes.changed(Some(a));
        let mark = changes.mark();
        assert!(changes.unchanged_since(a, mark));
        changes.changed(Some(b));
        assert!(changes.unchanged_since(a, mark));
        assert!(!changes.unchanged_since(b, mark));
        changes.changed(None);
        assert!(!changes.unchanged_since(a, mark));
        assert!(changes.unchanged_since(a, changes.mark()));
    }
}
