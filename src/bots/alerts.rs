//! Admin notifications of final errors: to an admin Telegram chat through
//! one of the fleet's bots, and/or to a webhook URL. The errors are counted by the `alerts`
//! projection (`projections::alerts`); this sends what it has gathered.

use std::sync::Arc;
use std::time::Duration;

use projections::alerts as read_model;
use serde::Serialize;
use sqlx::PgPool;
use teloxide_core::payloads::SendMessage;
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

impl AlertSettings {
    /// How occurrences gather, for the projection that counts them.
    pub fn timing(&self) -> read_model::AlertTiming {
        read_model::AlertTiming {
            gather: self.gather,
            window: self.window,
        }
    }
}

/// One notification, as the webhook receives it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub bot_id: Uuid,
    pub bot_name: Option<String>,
    pub kind: String,
    /// Occurrences since the last notification.
    pub count: i64,
    pub total_count: i64,
    pub first_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_at: chrono::DateTime<chrono::Utc>,
    pub last_error: String,
}

impl Notification {
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
            let mut counted = self.progress.subscribe(read_model::NAME);
            loop {
                counted.borrow_and_update();
                let sent = self.send_due().await;
                if let Err(e) = &sent {
                    tracing::warn!(error = ?e, "sending admin notifications failed");
                }
                // With nothing pending, only a newly counted failure can make work; after a
                // failure, the next try is 5 s away.
                let next = match (sent, read_model::next_due_in(&self.pool).await) {
                    (Ok(()), Ok(next)) => next,
                    _ => Some(Duration::from_secs(5)),
                };
                let timer = async {
                    match next {
                        Some(next) => tokio::time::sleep(next.min(Duration::from_secs(5))).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = counted.changed() => {}
                    _ = timer => {}
                }
            }
        })
    }

    /// Takes the due alerts (marked sent as they are taken, so two processes never send one
    /// twice), then delivers them; a failed delivery puts its count back.
    async fn send_due(&self) -> Result<(), sqlx::Error> {
        for alert in read_model::take_due(&self.pool, self.settings.window).await? {
            let bot_name = projections::bots::find_bot(&self.pool, alert.bot_id)
                .await?
                .map(|bot| bot.name);
            let notification = Notification {
                bot_id: alert.bot_id,
                bot_name,
                kind: alert.kind.clone(),
                count: alert.count,
                total_count: alert.total_count,
                first_at: alert.first_at,
                last_at: alert.last_at,
                last_error: alert.last_error.clone(),
            };
            if let Err(e) = self.deliver(&notification).await {
                tracing::warn!(bot_id = %alert.bot_id, kind = %alert.kind, error = %e, "admin notification failed; it will be retried");
                read_model::put_back(&self.pool, &alert).await?;
            } else {
                tracing::info!(bot_id = %alert.bot_id, kind = %alert.kind, count = alert.count, "admin notified");
            }
        }
        Ok(())
    }

    async fn deliver(&self, alert: &Notification) -> Result<(), String> {
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
            let ciphertext = projections::bots::find_bot(&self.pool, bot_id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|bot| bot.deleted_at.is_none())
                .map(|bot| bot.token_ciphertext)
                .ok_or("the alert bot is not registered")?;
            let client = self
                .telegram
                .client(bot_id, &ciphertext)
                .map_err(|e| e.to_string())?;
            client
                .call(&SendMessage::new(ChatId(chat_id), alert.text()))
                .await
                .map_err(|failure| failure.message)?;
        }
        Ok(())
    }
}
