//! Long polling: without a public URL, each enabled bot's updates are fetched with
//! `getUpdates`.
//!
//! One process polls a bot at a time (it holds the bot's lease), since Telegram answers a
//! second concurrent `getUpdates` with 409 Conflict. The offset is stored after the updates
//! are appended, so a restart neither loses an update (the offset was not confirmed) nor
//! repeats one (the intake drops an update id it has seen).

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand};
use sqlx::PgPool;
use teloxide_core::payloads::DeleteWebhook;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Intake;
use crate::event_store::{Actor, CommandGateway, EventMetadata};
use crate::runtime::backoff::{Backoff, Retrying};
use crate::runtime::leases::{bot_resource, Leases};
use crate::runtime::liveness::Identity;
use crate::telegram::bot_api::BotEndpoint;
use crate::telegram::updates::Update;
use aggregates::ids::BotErrorKind;

/// Pauses after failed rounds: from 1 s, doubling to a minute, never shorter than what
/// Telegram asked for (`retry_after`, or the conflict pause).
const POLL_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
};

/// The update kinds Botfleet asks Telegram for, by webhook or by polling (Bot API names: the
/// stop of a draft is sent only to bots that ask for it).
pub fn allowed_updates() -> [&'static str; 4] {
    [
        "message",
        "edited_message",
        "callback_query",
        "stopped_message_generation",
    ]
}

pub struct Poller {
    pub bot_id: Uuid,
    /// Who the bot is on Telegram, to tell which group messages are meant for it.
    pub identity: crate::telegram::updates::BotIdentity,
    pub client: BotEndpoint,
    pub intake: Intake,
    pub pool: PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub leases: Leases,
    /// getUpdates' long-poll timeout (the call itself may take a little longer).
    pub timeout_secs: u32,
    /// How long to wait after a 409 Conflict before trying again.
    pub conflict_pause: Duration,
    /// The bot may show an error that a successful poll should clear: true at start (a
    /// previous process may have recorded one) and after recording one.
    pub may_show_error: bool,
}

impl Poller {
    pub async fn run(mut self, cancel: CancellationToken) {
        let resource = bot_resource(self.bot_id);
        let mut retrying = Retrying::new(POLL_BACKOFF);
        let mut webhook_cleared = false;
        let mut claimed_as = None;
        while !cancel.is_cancelled() {
            let Some(identity) = self.leases.identity() else {
                // No liveness session: polling waits for the next one.
                if sleep_or_cancel(&cancel, POLL_BACKOFF.base).await {
                    break;
                }
                continue;
            };
            match self.leases.try_claim_as(&identity, &resource).await {
                Ok(true) => claimed_as = Some(identity.clone()),
                Ok(false) => {
                    // Another process polls this bot.
                    if sleep_or_cancel(&cancel, self.leases.duration() / 2).await {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot claim the bot's polling lease");
                    if sleep_or_cancel(&cancel, retrying.failed(None)).await {
                        break;
                    }
                    continue;
                }
            }
            if !webhook_cleared {
                // getUpdates is refused while a webhook is set.
                match self.client.call(&DeleteWebhook::new()).await {
                    Ok(_) => {
                        webhook_cleared = true;
                        self.record(BotCommand::RecordWebhookDeleted).await;
                    }
                    Err(failure) => {
                        tracing::warn!(bot_id = %self.bot_id, error = %failure.message, "deleteWebhook before polling failed")
                    }
                }
            }
            match self.poll_once(&cancel, &identity).await {
                Ok(()) => retrying.succeeded(),
                Err(requested) => {
                    if sleep_or_cancel(&cancel, retrying.failed(Some(requested))).await {
                        break;
                    }
                }
            }
        }
        if let Some(identity) = claimed_as {
            let _ = self.leases.release(&identity, &resource).await;
        }
    }

    /// One getUpdates round under the bot's lease, claimed as `identity`: fetch, append, store
    /// the offset. Errors say how long to pause.
    async fn poll_once(
        &mut self,
        cancel: &CancellationToken,
        identity: &Identity,
    ) -> Result<(), Duration> {
        self.refresh_identity().await;
        let offset = self.load_offset().await.map_err(|e| {
            tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot read the polling offset");
            Duration::from_secs(1)
        })?;
        let params = serde_json::json!({
            "offset": offset,
            "timeout": self.timeout_secs,
            "allowed_updates": allowed_updates(),
        });
        // Telegram holds the call up to `timeout`; give the answer a moment more to arrive.
        let patience = Duration::from_secs(u64::from(self.timeout_secs) + 10);
        let request =
            self.client
                .call_method::<Vec<serde_json::Value>>("getUpdates", &params, patience);
        let updates = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            // Another process may poll the bot now: this answer is left to it (Telegram hands
            // the same updates to the next getUpdates, as the offset was not confirmed).
            _ = identity.lost.cancelled() => return Ok(()),
            result = request => result,
        };
        let updates = match updates {
            Ok(updates) => updates,
            Err(failure) => {
                if failure.conflict || failure.invalid_token {
                    let kind = if failure.conflict {
                        BotErrorKind::TelegramConflict
                    } else {
                        BotErrorKind::TelegramInvalidToken
                    };
                    tracing::warn!(bot_id = %self.bot_id, %kind, error = %failure.message, "polling stopped by Telegram");
                    self.record(BotCommand::RecordError {
                        kind,
                        message: failure.message,
                    })
                    .await;
                    self.may_show_error = true;
                    return Err(if failure.conflict {
                        self.conflict_pause
                    } else {
                        self.conflict_pause * 10
                    });
                }
                tracing::warn!(bot_id = %self.bot_id, error = %failure.message, "getUpdates failed");
                return Err(failure.retry_after.unwrap_or(Duration::from_secs(2)));
            }
        };
        if self.may_show_error {
            self.record(BotCommand::ClearError {
                kind: BotErrorKind::TelegramConflict,
            })
            .await;
            self.may_show_error = false;
        }
        let mut next_offset = offset;
        for update in updates {
            let Some(update_id) = update["update_id"].as_i64() else {
                tracing::warn!(bot_id = %self.bot_id, "skipping an update without an id");
                continue;
            };
            if let Ok(parsed) = Update::parse(update) {
                if let Err(e) = self.intake.accept(&self.identity, &parsed).await {
                    // Not confirmed: the update comes again with the next getUpdates.
                    tracing::error!(bot_id = %self.bot_id, update_id, error = ?e, "cannot record a polled update");
                    break;
                }
            } else {
                tracing::warn!(bot_id = %self.bot_id, update_id, "skipping an update that cannot be read");
            }
            next_offset = Some(update_id + 1);
        }
        if next_offset != offset {
            if let Some(next) = next_offset {
                self.store_offset(next).await.map_err(|e| {
                    tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot store the polling offset");
                    Duration::from_secs(1)
                })?;
            }
        }
        // Still ours? Renewing after each round keeps the lease while polling goes well.
        let _ = self
            .leases
            .renew(identity, &bot_resource(self.bot_id))
            .await;
        Ok(())
    }

    /// The bot's @username may be learned while polling runs: read it each round.
    async fn refresh_identity(&mut self) {
        let username = projections::bots::find_username(&self.pool, self.bot_id).await;
        if let Ok(Some(username)) = username {
            self.identity.username = username;
        }
    }

    async fn load_offset(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT next_offset FROM polling_offsets WHERE bot_id = $1")
            .bind(self.bot_id)
            .fetch_optional(&self.pool)
            .await
    }

    async fn store_offset(&self, next: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO polling_offsets (bot_id, next_offset, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (bot_id) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        )
        .bind(self.bot_id)
        .bind(next)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record(&self, command: BotCommand) {
        let metadata = EventMetadata::new_request(Actor::System("poller"));
        if let Err(e) = self
            .bots
            .execute(&self.bot_id.to_string(), command, &metadata)
            .await
        {
            tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot record the bot's polling state");
        }
    }
}

/// Sleeps; true when cancelled meanwhile.
pub(crate) async fn sleep_or_cancel(cancel: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(pause) => false,
    }
}
