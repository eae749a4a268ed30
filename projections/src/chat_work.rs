//! The `chat_work` read model: which chats have unfinished turns, and from when they may be
//! worked on. It is the effect runner's index; the chat's events stay the truth. A chat's row
//! stays when its turns are done (`open_turns` = 0), so a retried turn can reopen it.

use aggregates::chat::{Chat, ChatEvent};
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{ProjectionError, Projector, RecordedEvent};

/// The channel the effect runners LISTEN on: work appeared.
pub const WORK_CHANNEL: &str = "botfleet_work";

/// The projection's name (its checkpoint's).
pub const NAME: &str = "chat_work";

pub struct ChatWorkProjector;

#[async_trait::async_trait]
impl Projector for ChatWorkProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["chat_work"]
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != Chat::TYPE {
            return Ok(());
        }
        let chat_id = event.aggregate_uuid()?;
        let at = event.recorded_at;
        // The last event of the chat that changed its work: a runner that worked the chat
        // through this sequence has nothing left to do there.
        let sequence = event.sequence;
        match event.decode::<ChatEvent>()? {
            ChatEvent::MessageReceived { bot_id, .. }
            | ChatEvent::CallbackQueryReceived { bot_id, .. } => {
                sqlx::query(
                    "INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at, last_sequence)
                     VALUES ($1, $2, 1, $3, $4)
                     ON CONFLICT (chat_id) DO UPDATE SET open_turns = chat_work.open_turns + 1,
                        available_at = CASE WHEN chat_work.open_turns = 0 THEN EXCLUDED.available_at
                                            ELSE chat_work.available_at END,
                        last_sequence = EXCLUDED.last_sequence",
                )
                .bind(chat_id)
                .bind(bot_id.0)
                .bind(at)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
                announce_work(tx).await?;
            }
            // The chat's row outlives its turns, so it is there to be reopened.
            ChatEvent::TurnRetried { .. } | ChatEvent::AdminMessageQueued { .. } => {
                sqlx::query(
                    "UPDATE chat_work SET open_turns = open_turns + 1,
                        available_at = CASE WHEN open_turns = 0 THEN $2 ELSE available_at END,
                        last_sequence = $3
                     WHERE chat_id = $1",
                )
                .bind(chat_id)
                .bind(at)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
                announce_work(tx).await?;
            }
            ChatEvent::ResponseSent { .. }
            | ChatEvent::TurnFailed { .. }
            | ChatEvent::CallbackAnswered { .. }
            // A refusal without a notice or a leave, and a leave of a still open turn, end it.
            | ChatEvent::TurnRefused {
                notified: false,
                leave_chat: false,
                ..
            }
            | ChatEvent::ChatLeft {
                ends_turn: true, ..
            } => {
                sqlx::query(
                    "UPDATE chat_work SET open_turns = greatest(open_turns - 1, 0), available_at = $2,
                        last_sequence = $3
                     WHERE chat_id = $1",
                )
                .bind(chat_id)
                .bind(at)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
            }
            ChatEvent::AttemptFailed { retry_at, .. } => {
                sqlx::query(
                    "UPDATE chat_work SET available_at = $2, last_sequence = $3 WHERE chat_id = $1",
                )
                .bind(chat_id)
                .bind(retry_at.unwrap_or(at))
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
                // The runners learn when the retry falls due.
                announce_work(tx).await?;
            }
            ChatEvent::ResponseGenerated { .. }
            | ChatEvent::TurnRefused { .. }
            | ChatEvent::ChatLeft { .. }
            | ChatEvent::ConversationReset { .. }
            | ChatEvent::ConversationResetByAdmin { .. }
            | ChatEvent::MessageEdited { .. }
            | ChatEvent::MediaTranscribed { .. }
            | ChatEvent::ImageAttached { .. }
            | ChatEvent::ChatBlocked { .. }
            | ChatEvent::ChatMigrated { .. } => {}
        }
        Ok(())
    }
}

/// Wakes the effect runners of every process (this one's too): work appeared, or a retry was
/// scheduled. The runners claim on this, not on every move of the projection, so that a turn
/// costs one claim, not one per event.
async fn announce_work(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Chats with unfinished turns whose lease a runner holds right now (the `leases` table is
/// the effect runner's; this is the one query that reads both).
pub async fn count_in_flight(conn: impl sqlx::PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM chat_work w
         WHERE w.open_turns > 0 AND EXISTS (SELECT 1 FROM leases l
                       WHERE l.resource = 'chat:' || w.chat_id AND l.expires_at > now())",
    )
    .fetch_one(conn)
    .await
}

/// The claim's statement, with [`HOLDER_IS_GONE`] in its two places.
static CLAIM_DUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    "WITH bots AS (
            SELECT DISTINCT bot_id FROM chat_work
            WHERE open_turns > 0 AND available_at <= now()
         ), candidates AS (
            SELECT c.chat_id, c.bot_id, c.available_at,
                   row_number() OVER (PARTITION BY c.bot_id ORDER BY c.available_at)
                       + coalesce(h.held, 0) AS rank
            FROM bots b
            CROSS JOIN LATERAL (
                SELECT w.chat_id, w.bot_id, w.available_at FROM chat_work w
                WHERE w.bot_id = b.bot_id AND w.open_turns > 0 AND w.available_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM leases
                                  WHERE leases.resource = 'chat:' || w.chat_id
                                    AND leases.expires_at > now() AND NOT HOLDER_IS_GONE)
                  AND NOT EXISTS (SELECT 1 FROM unnest($4::uuid[], $5::bigint[]) AS d(chat_id, sequence)
                                  WHERE d.chat_id = w.chat_id AND d.sequence >= w.last_sequence)
                ORDER BY w.available_at
                LIMIT $1
            ) c
            LEFT JOIN unnest($6::uuid[], $7::bigint[]) AS h(bot_id, held) ON h.bot_id = c.bot_id
         ), due AS (
            SELECT chat_id, bot_id FROM candidates ORDER BY rank, available_at LIMIT $1
         ), claimed AS (
            INSERT INTO leases (resource, owner, owner_key, expires_at)
            SELECT 'chat:' || chat_id, $2, $8, now() + $3 * interval '1 millisecond' FROM due
            ON CONFLICT (resource) DO UPDATE
               SET owner = EXCLUDED.owner, owner_key = EXCLUDED.owner_key,
                   expires_at = EXCLUDED.expires_at
               WHERE leases.expires_at <= now() OR HOLDER_IS_GONE
            RETURNING resource
         )
         SELECT due.chat_id, due.bot_id, NULL::float8, NULL::bool FROM claimed
         JOIN due ON 'chat:' || due.chat_id = claimed.resource
         UNION ALL
         SELECT NULL, NULL,
                (extract(epoch FROM (min(w.available_at) FILTER (WHERE w.available_at > now())
                                     - now())) * 1000)::float8,
                bool_or(w.available_at <= now()
                        AND NOT EXISTS (SELECT 1 FROM claimed
                                        WHERE claimed.resource = 'chat:' || w.chat_id))
         FROM chat_work w WHERE w.open_turns > 0"
        .replace("HOLDER_IS_GONE", HOLDER_IS_GONE)
});

/// Claims, for `owner` (whose liveness key is `owner_key`), up to `limit` chats that have
/// turns due and no live lease (leases of `lease_ms`): a lease is live when it has not
/// expired and its holder's liveness lock is held (src/runtime/liveness.rs), sharing them fairly between bots: each bot's due chats are ranked oldest
/// first, after the chats `held` says the bot already has in work (`held_bots` with
/// `held_counts`), and the claim takes the lowest ranks first. A bot with a deep backlog
/// therefore gets its turn like any other, rather than every slot. Left out: those of
/// `drained` worked through the sequence chat_work shows (the projection has not seen the
/// end of their turns yet). One statement: the effect runner's hot path. Returns the claimed
/// `(chat_id, bot_id)`s, and what is left [`Waiting`] besides them (as [`waiting`] would
/// tell, without a statement of its own).
#[allow(clippy::too_many_arguments)]
pub async fn claim_due(
    conn: impl sqlx::PgExecutor<'_>,
    owner: uuid::Uuid,
    owner_key: i64,
    lease_ms: i64,
    limit: i64,
    drained: &[uuid::Uuid],
    drained_sequences: &[i64],
    held_bots: &[uuid::Uuid],
    held_counts: &[i64],
) -> Result<(Vec<(uuid::Uuid, uuid::Uuid)>, Waiting), sqlx::Error> {
    type Row = (
        Option<uuid::Uuid>,
        Option<uuid::Uuid>,
        Option<f64>,
        Option<bool>,
    );
    let rows: Vec<Row> = sqlx::query_as(CLAIM_DUE.as_str())
        .bind(limit)
        .bind(owner)
        .bind(lease_ms)
        .bind(drained)
        .bind(drained_sequences)
        .bind(held_bots)
        .bind(held_counts)
        .bind(owner_key)
        .fetch_all(conn)
        .await?;
    let mut claimed = Vec::new();
    let mut waiting = Waiting {
        retry_due_in: None,
        held: false,
    };
    for (chat_id, bot_id, retry_ms, held) in rows {
        match (chat_id, bot_id) {
            (Some(chat_id), Some(bot_id)) => claimed.push((chat_id, bot_id)),
            _ => {
                waiting = Waiting {
                    retry_due_in: retry_ms.map(millis),
                    held: held.unwrap_or(false),
                }
            }
        }
    }
    Ok((claimed, waiting))
}

fn millis(ms: f64) -> std::time::Duration {
    std::time::Duration::from_millis(ms.max(0.0) as u64)
}

/// True when the holder of the lease row `leases` is known to be gone: it recorded a liveness
/// key, and nobody holds that key's advisory lock (src/runtime/liveness.rs keeps the lock for
/// a process's life). The shared, transaction-level try never waits, never blocks another
/// claimer, and ends with the claim's statement.
pub const HOLDER_IS_GONE: &str =
    "(leases.owner_key IS NOT NULL AND pg_try_advisory_xact_lock_shared(leases.owner_key))";

/// What remains after a claim that took every chat it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// When the next chat whose turns wait for a retry's backoff falls due, if any does.
    pub retry_due_in: Option<std::time::Duration>,
    /// Whether chats with due turns are left: they are leased (their holder may die), or
    /// worked to the end a moment before this projection saw it.
    pub held: bool,
}

/// What is left waiting in `chat_work` (one statement, read only).
pub async fn waiting(conn: impl sqlx::PgExecutor<'_>) -> Result<Waiting, sqlx::Error> {
    let (millis, held): (Option<f64>, Option<bool>) = sqlx::query_as(
        "SELECT (extract(epoch FROM (min(available_at) FILTER (WHERE available_at > now())
                                     - now())) * 1000)::float8,
                bool_or(available_at <= now())
         FROM chat_work WHERE open_turns > 0",
    )
    .fetch_one(conn)
    .await?;
    Ok(Waiting {
        retry_due_in: millis.map(self::millis),
        held: held.unwrap_or(false),
    })
}
