//! The `admin_alerts` read model: final errors counted per bot and kind, for the admin
//! notifications (sent by `botfleet`'s bots room).
//!
//! Final errors are counted from the event stream by a subscription of their own (so none is
//! missed across crashes): a failed turn, an error message sent after the LLM failed for good,
//! a bot-level error. Per bot and error kind, occurrences gather until none has come for
//! `ALERT_GATHER_MS` (at most ten times that after the first); the notification then goes out
//! with the count, and later occurrences wait for the window (`ALERT_WINDOW_SECS`) to pass:
//! a thousand identical failures make one notification, with its count.

use std::time::Duration;

use aggregates::bot::{Bot, BotEvent};
use aggregates::chat::{Chat, ChatEvent, ResponseKind};
use aggregates::ids::BotErrorKind;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PoisonPolicy, ProjectionError, Projector, RecordedEvent};

/// The projection's name (its checkpoint's).
pub const NAME: &str = "alerts";

/// How occurrences gather into notifications (`ALERT_GATHER_MS`, `ALERT_WINDOW_SECS`).
#[derive(Debug, Clone, Copy)]
pub struct AlertTiming {
    /// How long the first occurrence waits for others to join its notification.
    pub gather: Duration,
    /// At most one notification per bot and kind within this window.
    pub window: Duration,
}

/// Counts final errors into `admin_alerts`.
pub struct AlertProjector {
    pub timing: AlertTiming,
}

/// The bot and error kind of an event, when it is a final error.
async fn final_error(
    tx: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<Option<(Uuid, String, String)>, ProjectionError> {
    if event.aggregate_type == Bot::TYPE {
        if let BotEvent::BotErrorRecorded { kind, message } = event.decode::<BotEvent>()? {
            // An LLM failure is counted per turn, as the error message sent for it.
            if kind != BotErrorKind::Llm {
                return Ok(Some((
                    event.aggregate_uuid()?,
                    format!("bot_{kind}"),
                    message,
                )));
            }
        }
        return Ok(None);
    }
    if event.aggregate_type != Chat::TYPE {
        return Ok(None);
    }
    let (kind, error) = match event.decode::<ChatEvent>()? {
        ChatEvent::TurnFailed {
            step, class, error, ..
        } => (format!("turn_{}_{}", plain(&step), plain(&class)), error),
        ChatEvent::ResponseGenerated { response, .. } => match response.kind {
            ResponseKind::ErrorMessage { class, error } => {
                (format!("llm_{}", plain(&class)), error)
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    // The chat's bot, as its first event named it (kept in this projection's own rows).
    let bot_id: Option<Uuid> =
        sqlx::query_scalar("SELECT bot_id FROM alert_chats WHERE chat_id = $1")
            .bind(event.aggregate_uuid()?)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(bot_id.map(|bot_id| (bot_id, kind, error)))
}

fn plain<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Projector for AlertProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["admin_alerts", "alert_chats"]
    }

    /// A notification's count may miss one failure; all later notifications must not wait.
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        remember_chat(tx, event).await?;
        let Some((bot_id, kind, error)) = final_error(tx, event).await? else {
            return Ok(());
        };
        let gather_ms = self.timing.gather.as_millis() as i64;
        let window_ms = self.timing.window.as_millis() as i64;
        sqlx::query(
            "INSERT INTO admin_alerts (bot_id, kind, pending_count, total_count, last_error,
                first_pending_at, last_at, send_after)
             VALUES ($1, $2, 1, 1, $3, $4, $4, $4 + $5 * interval '1 millisecond')
             ON CONFLICT (bot_id, kind) DO UPDATE SET
                pending_count = admin_alerts.pending_count + 1,
                total_count = admin_alerts.total_count + 1,
                last_error = EXCLUDED.last_error,
                last_at = EXCLUDED.last_at,
                first_pending_at = coalesce(admin_alerts.first_pending_at, EXCLUDED.last_at),
                send_after = greatest(
                    -- Gathering: each occurrence gives others `gather` more to join, up to
                    -- ten times `gather` after the first.
                    least(coalesce(admin_alerts.first_pending_at, EXCLUDED.last_at)
                              + 10 * $5 * interval '1 millisecond',
                          EXCLUDED.send_after),
                    -- The window: one notification per bot and kind within it.
                    coalesce(admin_alerts.last_sent_at + $6 * interval '1 millisecond',
                             EXCLUDED.send_after))",
        )
        .bind(bot_id)
        .bind(&kind)
        .bind(&error)
        .bind(event.recorded_at)
        .bind(gather_ms)
        .bind(window_ms)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// A chat's first event names its bot: remember it, for the chat's later failures.
async fn remember_chat(
    tx: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    if event.aggregate_type != Chat::TYPE || event.sequence != 1 {
        return Ok(());
    }
    let bot_id = match event.decode::<ChatEvent>()? {
        ChatEvent::MessageReceived { bot_id, .. }
        | ChatEvent::CallbackQueryReceived { bot_id, .. } => bot_id,
        _ => return Ok(()),
    };
    sqlx::query(
        "INSERT INTO alert_chats (chat_id, bot_id) VALUES ($1, $2) ON CONFLICT (chat_id) DO NOTHING",
    )
    .bind(event.aggregate_uuid()?)
    .bind(bot_id.0)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One notification: what gathered for one bot and kind since the last one.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Alert {
    pub bot_id: Uuid,
    pub kind: String,
    /// Occurrences since the last notification.
    pub count: i64,
    pub total_count: i64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: DateTime<Utc>,
    pub last_error: String,
}

/// When the next notification falls due, if one is pending.
pub async fn next_due_in(conn: impl sqlx::PgExecutor<'_>) -> Result<Option<Duration>, sqlx::Error> {
    let millis: Option<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM (min(send_after) - now())) * 1000)::float8 FROM admin_alerts
         WHERE pending_count > 0",
    )
    .fetch_one(conn)
    .await?;
    Ok(millis.map(|ms| Duration::from_millis(ms.max(0.0) as u64)))
}

/// Takes the due notifications, marking them sent in the same statement (so two processes
/// never send one twice); the next of each kind waits for `window`.
pub async fn take_due(
    conn: impl sqlx::PgExecutor<'_>,
    window: Duration,
) -> Result<Vec<Alert>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
            SELECT bot_id, kind FROM admin_alerts
            WHERE pending_count > 0 AND send_after <= now()
            FOR UPDATE SKIP LOCKED
         )
         UPDATE admin_alerts a SET pending_count = 0, first_pending_at = NULL,
             last_sent_at = now(), send_after = now() + $1 * interval '1 millisecond'
         FROM due, admin_alerts old
         WHERE a.bot_id = due.bot_id AND a.kind = due.kind
           AND old.bot_id = due.bot_id AND old.kind = due.kind
         RETURNING a.bot_id, a.kind, old.pending_count AS count, a.total_count,
                   old.first_pending_at AS first_at, a.last_at, a.last_error",
    )
    .bind(window.as_millis() as i64)
    .fetch_all(conn)
    .await
}

/// Puts back a notification whose delivery failed: it is tried again in 30 seconds, with
/// whatever gathered meanwhile.
pub async fn put_back(conn: impl sqlx::PgExecutor<'_>, alert: &Alert) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE admin_alerts SET pending_count = pending_count + $3,
            first_pending_at = coalesce(first_pending_at, $4),
            send_after = now() + interval '30 seconds'
         WHERE bot_id = $1 AND kind = $2",
    )
    .bind(alert.bot_id)
    .bind(&alert.kind)
    .bind(alert.count)
    .bind(alert.first_at)
    .execute(conn)
    .await?;
    Ok(())
}
