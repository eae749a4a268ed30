//! Bots' settings as the runner last read them: every step needs its bot's row (is it live,
//! its token, model and messages), and the chats of one bot share one read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aggregates::ids::BotId;
use projections::bots::{find_bot, BotRow};
use sqlx::PgPool;

/// How long the runner trusts the bot settings it read: a bot disabled or changed is seen by
/// the turns within this time.
const BOT_ROW_FRESHNESS: Duration = Duration::from_secs(1);

/// Bots' settings as the runner last read them, shared by all the chats it works.
#[derive(Default)]
pub struct BotCache {
    rows: Mutex<HashMap<BotId, (Instant, Option<BotRow>)>>,
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
}
