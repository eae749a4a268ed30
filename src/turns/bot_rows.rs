//! Bots' settings as the runner last read them: every step needs its bot's row (is it live,
//! its token, model and messages), and the chats of one bot share one read.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aggregates::ids::{BotErrorKind, BotId};
use projections::bots::{find_bot, BotRow};
use sqlx::PgPool;

/// How long the runner trusts the bot settings it read: a bot disabled or changed is seen by
/// the turns within this time.
const BOT_ROW_FRESHNESS: Duration = Duration::from_secs(1);

/// Bots' settings as the runner last read them, shared by all the chats it works.
#[derive(Default)]
pub struct BotCache {
    rows: Mutex<HashMap<BotId, (Instant, Option<BotRow>)>>,
    /// Errors this process recorded on bots: a row read a moment before the bots read model
    /// caught up does not show them, yet the next answer must clear them.
    noted_errors: Mutex<HashSet<(BotId, BotErrorKind)>>,
}

impl BotCache {
    pub(super) async fn get(
        &self,
        pool: &PgPool,
        bot_id: BotId,
    ) -> Result<Option<BotRow>, sqlx::Error> {
        {
            let rows = self.rows.lock().expect("bot cache lock");
            if let Some((read_at, row)) = rows.get(&bot_id) {
                if read_at.elapsed() < BOT_ROW_FRESHNESS {
                    return Ok(row.clone());
                }
            }
        }
        let row = find_bot(pool, bot_id.0).await?;
        let mut rows = self.rows.lock().expect("bot cache lock");
        if rows.len() > 10_000 {
            rows.retain(|_, (read_at, _)| read_at.elapsed() < BOT_ROW_FRESHNESS);
        }
        rows.insert(bot_id, (Instant::now(), row.clone()));
        Ok(row)
    }

    /// Forgets what was read of `bot_id`: an admin changed it through this process, and the
    /// next turn must see the change (other processes see it within `BOT_ROW_FRESHNESS`).
    pub fn forget(&self, bot_id: BotId) {
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
