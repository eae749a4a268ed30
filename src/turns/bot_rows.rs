//! Bots' settings as this process last read them: the webhook needs its bot's row (is it
//! live) and every step of a turn does (its token, model and messages); the updates and chats
//! of one bot share one read. A row is read again once the bots read model announces a change
//! of the bot ([`BotChanges`]), so a process sees a change as soon as any process projected it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aggregates::ids::{BotErrorKind, BotId};
use projections::bots::{find_bot, BotRow};
use sqlx::PgPool;

use crate::runtime::bot_changes::BotChanges;

/// How long a row is trusted at most, should an announced change be missed all the same
/// (a lost LISTEN connection already counts as a change of every bot).
const BOT_ROW_FRESHNESS: Duration = Duration::from_secs(60);

/// A bot's row as read, when, and from which point of the announced changes.
type Remembered = (Instant, u64, Option<BotRow>);

/// Bots' settings as this process last read them, shared by its webhook and its turns.
#[derive(Default)]
pub struct BotCache {
    rows: Mutex<HashMap<BotId, Remembered>>,
    changes: BotChanges,
    /// Errors this process recorded on bots: a row read a moment before the bots read model
    /// caught up does not show them, yet the next answer must clear them.
    noted_errors: Mutex<HashSet<(BotId, BotErrorKind)>>,
}

impl BotCache {
    /// The changes this cache follows, for the process's LISTEN connection to report.
    pub fn changes(&self) -> BotChanges {
        self.changes.clone()
    }

    /// `bot_id`'s row (`None`: no such bot), read again when the bot changed since.
    pub async fn get(&self, pool: &PgPool, bot_id: BotId) -> Result<Option<BotRow>, sqlx::Error> {
        {
            let rows = self.rows.lock().expect("bot cache lock");
            if let Some((read_at, mark, row)) = rows.get(&bot_id) {
                if read_at.elapsed() < BOT_ROW_FRESHNESS
                    && self.changes.unchanged_since(bot_id.0, *mark)
                {
                    return Ok(row.clone());
                }
            }
        }
        // Marked before the read: a change announced while it runs makes the row stale.
        let mark = self.changes.mark();
        let row = find_bot(pool, bot_id.0).await?;
        let mut rows = self.rows.lock().expect("bot cache lock");
        if rows.len() > 10_000 {
            rows.retain(|_, (read_at, _, _)| read_at.elapsed() < BOT_ROW_FRESHNESS);
        }
        rows.insert(bot_id, (Instant::now(), mark, row.clone()));
        Ok(row)
    }

    /// Forgets what was read of `bot_id`: an admin changed it through this process and the
    /// read model has it, so the next update or turn must see the change at once, before
    /// the announcement arrives (other processes see it with the announcement).
    pub fn forget(&self, bot_id: BotId) {
        self.changes.changed(Some(bot_id.0));
        self.rows.lock().expect("bot cache lock").remove(&bot_id);
    }

    /// Whether `row` (of `bot_id`) shows an error of `kind`, or this process recorded one
    /// that the row may not show yet.
    pub(super) fn shows_error(&self, bot_id: BotId, row: &BotRow, kind: BotErrorKind) -> bool {
        row.last_error_kind.as_deref() == Some(kind.as_str())
            || self
                .noted_errors
                .lock()
                .expect("bot cache lock")
                .contains(&(bot_id, kind))
    }

    /// This process recorded (`shown`) or cleared an error of `kind` on `bot_id`.
    pub(super) fn note_error(&self, bot_id: BotId, kind: BotErrorKind, shown: bool) {
        let mut noted = self.noted_errors.lock().expect("bot cache lock");
        if shown {
            noted.insert((bot_id, kind));
        } else {
            noted.remove(&(bot_id, kind));
        }
    }
}
