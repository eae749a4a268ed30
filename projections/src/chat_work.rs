//! The `chat_work` table: which chats have unfinished turns, and from when they may be
//! worked on. It is the effect runner's index; the chat's events stay the truth. The append
//! keeps it: a trigger on `events` applies every chat event in the appending transaction
//! (migration 0062, `chat_work_apply`), so the index never lags the log and a turn costs no
//! projection transaction of its own. A chat's row stays when its turns are done
//! (`open_turns` = 0), so a retried turn can reopen it.

/// The channel the effect runners LISTEN on: work appeared (the trigger notifies it).
pub const WORK_CHANNEL: &str = "botfleet_work";

/// The name `botfleet projections rebuild` knows it by.
pub const NAME: &str = "chat_work";

/// Recomputes the table from every chat event; returns how many were replayed. Appends of
/// chat events wait meanwhile (see `chat_work_rebuild` in migration 0062).
pub async fn rebuild(conn: impl sqlx::PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT chat_work_rebuild()")
        .fetch_one(conn)
        .await
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
                  AND w.chat_id <> ALL($4::uuid[])
                ORDER BY w.available_at
                LIMIT $1
            ) c
            LEFT JOIN unnest($5::uuid[], $6::bigint[]) AS h(bot_id, held) ON h.bot_id = c.bot_id
         ), due AS (
            SELECT chat_id, bot_id FROM candidates ORDER BY rank, available_at LIMIT $1
         ), claimed AS (
            INSERT INTO leases (resource, owner, owner_key, expires_at)
            SELECT 'chat:' || chat_id, $2, $7, now() + $3 * interval '1 millisecond' FROM due
            ON CONFLICT (resource) DO UPDATE
               SET owner = EXCLUDED.owner, owner_key = EXCLUDED.owner_key,
                   expires_at = EXCLUDED.expires_at
               WHERE leases.expires_at <= now() OR HOLDER_IS_GONE
            RETURNING resource
         )
         SELECT due.chat_id, due.bot_id, CURRENT_SEQUENCE, NULL::float8, NULL::bool FROM claimed
         JOIN due ON 'chat:' || due.chat_id = claimed.resource
         UNION ALL
         SELECT NULL, NULL, NULL,
                (extract(epoch FROM (min(w.available_at) FILTER (WHERE w.available_at > now())
                                     - now())) * 1000)::float8,
                bool_or(w.available_at <= now() AND w.chat_id <> ALL($4::uuid[])
                        AND NOT EXISTS (SELECT 1 FROM claimed
                                        WHERE claimed.resource = 'chat:' || w.chat_id))
         FROM chat_work w WHERE w.open_turns > 0"
        .replace("HOLDER_IS_GONE", HOLDER_IS_GONE)
        .replace("CURRENT_SEQUENCE", &current_sequence("due.chat_id"))
});

/// The newest sequence of the chat `chat_id` names, as a claim reads it: the worker then
/// trusts its remembered state of the chat when it is that far, without a read of its own.
/// Under the lease nobody else works the chat, so what the claim saw is what the work starts
/// from (an intake's append after it makes the worker's first append fail and read again).
pub fn current_sequence(chat_id: &str) -> String {
    format!(
        "(SELECT max(e.sequence) FROM events e
          WHERE e.aggregate_type = 'Chat' AND e.aggregate_id = ({chat_id})::text)"
    )
}

/// Claims, for `owner` (whose liveness key is `owner_key`), up to `limit` chats that have
/// turns due and no live lease (leases of `lease_ms`): a lease is live when it has not
/// expired and its holder's liveness lock is held (src/runtime/liveness.rs), sharing them fairly between bots: each bot's due chats are ranked oldest
/// first, after the chats `held` says the bot already has in work (`held_bots` with
/// `held_counts`), and the claim takes the lowest ranks first. A bot with a deep backlog
/// therefore gets its turn like any other, rather than every slot. The chats of `working` are
/// this runner's already: never claimed (one still worked under a lost identity has a lease
/// that looks dead), and not counted as [`Waiting::held`]. One statement: the effect
/// runner's hot path. Returns the claimed chats, and what is left [`Waiting`] besides them
/// (without a statement of its own).
#[allow(clippy::too_many_arguments)]
pub async fn claim_due(
    conn: impl sqlx::PgExecutor<'_>,
    owner: uuid::Uuid,
    owner_key: i64,
    lease_ms: i64,
    limit: i64,
    working: &[uuid::Uuid],
    held_bots: &[uuid::Uuid],
    held_counts: &[i64],
) -> Result<(Vec<ClaimedChat>, Waiting), sqlx::Error> {
    type Row = (
        Option<uuid::Uuid>,
        Option<uuid::Uuid>,
        Option<i64>,
        Option<f64>,
        Option<bool>,
    );
    let rows: Vec<Row> = sqlx::query_as(CLAIM_DUE.as_str())
        .bind(limit)
        .bind(owner)
        .bind(lease_ms)
        .bind(working)
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
    for (chat_id, bot_id, sequence, retry_ms, held) in rows {
        match (chat_id, bot_id) {
            (Some(chat_id), Some(bot_id)) => claimed.push(ClaimedChat {
                chat_id,
                bot_id,
                sequence: sequence.map(|s| s as usize),
            }),
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

/// A chat a claim took, with its bot and its newest sequence at the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedChat {
    pub chat_id: uuid::Uuid,
    pub bot_id: uuid::Uuid,
    pub sequence: Option<usize>,
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
    /// Whether chats with due turns are left that the claimer is not working: they are
    /// leased by another process (which may die), or by the claimer after a failure.
    pub held: bool,
}
