//! Admin notifications of final errors (seed P2 item 13): to an admin Telegram chat through
//! one of the fleet's bots, and/or to a webhook URL.
//!
//! Final errors are counted from the event stream by a subscription of its own (so none is
//! missed across crashes): a failed turn, an error message sent after the LLM failed for good,
//! a bot-level error. Per bot and error kind, occurrences gather until none has come for
//! `ALERT_GATHER_MS` (at most ten times that after the first); the notification then goes out
//! with the count, and later occurrences wait for the window (`ALERT_WINDOW_SECS`) to pass:
//! a thousand identical failures make one notification, with its count.

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotEvent};
use aggregates::chat::{Chat, ChatEvent, ResponseKind};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use projections::{ProjectionError, Projector, RecordedEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use teloxide_core::requests::Requester;
use teloxide_core::types::ChatId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use crate::subscriptions::SubscriptionProgress;
use crate::telegram::TelegramClients;

/// Where notifications go, and how they are grouped.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// A registered bot that writes to `telegram_chat_id`.
    pub telegram_bot_id: Option<Uuid>,
    pub telegram_chat_id: Option<i64>,
    pub webhook_url: Option<Url>,
    /// At most one notification per bot and kind within this window.
    pub window: Duration,
    /// How long the first occurrence waits for others to join its notification.
    pub gather: Duration,
}

impl AlertSettings {
    pub fn enabled(&self) -> bool {
        self.webhook_url.is_some()
            || (self.telegram_bot_id.is_some() && self.telegram_chat_id.is_some())
    }
}

/// Counts final errors into `admin_alerts`.
pub struct AlertProjector {
    pub settings: AlertSettings,
}

/// The bot and error kind of an event, when it is a final error.
async fn final_error(
    tx: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<Option<(Uuid, String, String)>, ProjectionError> {
    if event.aggregate_type == Bot::TYPE {
        if let BotEvent::BotErrorRecorded { kind, message } = event.decode::<BotEvent>()? {
            // An LLM failure is counted per turn, as the error message sent for it.
            if kind != "llm" {
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
    // Chat events name their bot in the chat's first event; events never change.
    let bot_id: Option<String> = sqlx::query_scalar(
        "SELECT coalesce(payload -> 'MessageReceived' ->> 'bot_id',
                         payload -> 'CallbackQueryReceived' ->> 'bot_id')
         FROM events WHERE aggregate_type = 'Chat' AND aggregate_id = $1
         ORDER BY sequence LIMIT 1",
    )
    .bind(&event.aggregate_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(bot_id
        .and_then(|id| id.parse().ok())
        .map(|bot_id| (bot_id, kind, error)))
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
        "alerts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["admin_alerts"]
    }

    /// A notification's count may miss one failure; all later notifications must not wait.
    fn poison_policy(&self) -> projections::PoisonPolicy {
        projections::PoisonPolicy::Park
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let Some((bot_id, kind, error)) = final_error(tx, event).await? else {
            return Ok(());
        };
        let gather_ms = self.settings.gather.as_millis() as i64;
        let window_ms = self.settings.window.as_millis() as i64;
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

/// One notification, as the webhook receives it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Alert {
    pub bot_id: Uuid,
    pub bot_name: Option<String>,
    pub kind: String,
    /// Occurrences since the last notification.
    pub count: i64,
    pub total_count: i64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: DateTime<Utc>,
    pub last_error: String,
}

impl Alert {
    fn text(&self) -> String {
        format!(
            "⚠️ Botfleet: bot {} ({}): {} ×{} since {}.\nLast error: {}",
            self.bot_name.as_deref().unwrap_or("?"),
            self.bot_id,
            self.kind,
            self.count,
            self.first_at
                .unwrap_or(self.last_at)
                .format("%Y-%m-%d %H:%M:%S UTC"),
            self.last_error
        )
    }
}

/// Sends due notifications.
pub struct AlertSender {
    pub pool: PgPool,
    pub settings: AlertSettings,
    pub telegram: Arc<TelegramClients>,
    pub http: reqwest::Client,
    pub progress: SubscriptionProgress,
}

impl AlertSender {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut counted = self.progress.subscribe("alerts");
            loop {
                counted.borrow_and_update();
                if let Err(e) = self.send_due().await {
                    tracing::warn!(error = ?e, "sending admin notifications failed");
                }
                let next = self.next_due_in().await.unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = counted.changed() => {}
                    _ = tokio::time::sleep(next.min(Duration::from_secs(5))) => {}
                }
            }
        })
    }

    async fn next_due_in(&self) -> Option<Duration> {
        let millis: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM (min(send_after) - now())) * 1000 FROM admin_alerts
             WHERE pending_count > 0",
        )
        .fetch_one(&self.pool)
        .await
        .ok()?;
        millis.map(|ms| Duration::from_millis(ms.max(0.0) as u64))
    }

    /// Takes the due alerts (marking them sent in the same statement, so two processes never
    /// send one twice), then delivers them; a failed delivery puts its count back.
    async fn send_due(&self) -> Result<(), sqlx::Error> {
        let window_ms = self.settings.window.as_millis() as i64;
        let due: Vec<Alert> = sqlx::query_as(
            "WITH due AS (
                SELECT bot_id, kind FROM admin_alerts
                WHERE pending_count > 0 AND send_after <= now()
                FOR UPDATE SKIP LOCKED
             ), taken AS (
                UPDATE admin_alerts a SET pending_count = 0, first_pending_at = NULL,
                    last_sent_at = now(), send_after = now() + $1 * interval '1 millisecond'
                FROM due, admin_alerts old
                WHERE a.bot_id = due.bot_id AND a.kind = due.kind
                  AND old.bot_id = due.bot_id AND old.kind = due.kind
                RETURNING a.bot_id, a.kind, old.pending_count AS count, a.total_count,
                          old.first_pending_at AS first_at, a.last_at, a.last_error
             )
             SELECT t.bot_id, b.name AS bot_name, t.kind, t.count, t.total_count, t.first_at,
                    t.last_at, t.last_error
             FROM taken t LEFT JOIN bots b ON b.id = t.bot_id",
        )
        .bind(window_ms)
        .fetch_all(&self.pool)
        .await?;
        for alert in due {
            if let Err(e) = self.deliver(&alert).await {
                tracing::warn!(bot_id = %alert.bot_id, kind = %alert.kind, error = %e, "admin notification failed; it will be retried");
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
                .execute(&self.pool)
                .await?;
            } else {
                tracing::info!(bot_id = %alert.bot_id, kind = %alert.kind, count = alert.count, "admin notified");
            }
        }
        Ok(())
    }

    async fn deliver(&self, alert: &Alert) -> Result<(), String> {
        if let Some(url) = &self.settings.webhook_url {
            let response = self
                .http
                .post(url.clone())
                .json(alert)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("the alert webhook answered {}", response.status()));
            }
        }
        if let (Some(bot_id), Some(chat_id)) = (
            self.settings.telegram_bot_id,
            self.settings.telegram_chat_id,
        ) {
            let ciphertext: Option<String> = sqlx::query_scalar(
                "SELECT token_ciphertext FROM bots WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(bot_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            let ciphertext = ciphertext.ok_or("the alert bot is not registered")?;
            let client = self
                .telegram
                .client(bot_id, &ciphertext)
                .map_err(|e| e.to_string())?;
            client
                .send_message(ChatId(chat_id), alert.text())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
