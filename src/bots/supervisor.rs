//! Keeps each bot's delivery the way its events say it should be.
//!
//! With PUBLIC_URL set, an enabled bot has its webhook set to
//! `PUBLIC_URL/telegram/{bot_id}/webhook` (with its secret token), and a disabled or deleted
//! one has it deleted. Without PUBLIC_URL, every enabled bot is long-polled.
//! The supervisor compares the `bots` read model (what should be) with the recorded webhook
//! (what is), acts, and records the outcome on the Bot aggregate, which refuses an outcome
//! that is no longer wanted (a webhook for a bot disabled meanwhile).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use teloxide_core::payloads::{DeleteWebhook, GetMe};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use aggregates::ids::{BotErrorKind, BotId};
use projections::bots::DeliveryRow;

use crate::event_store::{Actor, CommandGateway, EventMetadata};
use crate::intake::polling::{allowed_updates, Poller};
use crate::intake::Intake;
use crate::runtime::backoff::Backoff;
use crate::runtime::leases::{bot_resource, Leases};
use crate::secrets::TokenCipher;
use crate::subscriptions::SubscriptionProgress;
use crate::telegram::TelegramClients;

/// Pauses after a failed setWebhook or deleteWebhook of one bot: 2 s doubling to 5 minutes.
const WEBHOOK_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    max: Duration::from_secs(300),
};

/// How soon the supervisor looks again, when nothing wakes it, while something is unsettled
/// (a webhook call to retry, a bot polled or held by another process, a username to learn).
/// Settled, it waits for the `bots` read model to move.
const RECHECK: Duration = Duration::from_secs(5);

pub struct BotSupervisor {
    pub pool: PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub telegram: Arc<TelegramClients>,
    pub cipher: Arc<TokenCipher>,
    pub intake: Intake,
    pub leases: Leases,
    pub public_url: Option<Url>,
    pub progress: SubscriptionProgress,
    pub poll_timeout_secs: u32,
    pub conflict_pause: Duration,
    /// Telegram's concurrent webhook deliveries per bot (`WEBHOOK_MAX_CONNECTIONS`).
    pub webhook_max_connections: u32,
    /// How long one Bot API call may take.
    pub call_timeout: Duration,
}

/// A running poller and the token it polls with (a new token restarts it).
struct RunningPoller {
    token_ciphertext: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl BotSupervisor {
    /// The URL Telegram posts `bot_id`'s updates to.
    pub fn webhook_url(public_url: &Url, bot_id: Uuid) -> String {
        format!(
            "{}/telegram/{bot_id}/webhook",
            public_url.as_str().trim_end_matches('/')
        )
    }

    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut pollers: HashMap<Uuid, RunningPoller> = HashMap::new();
            // Bots whose webhook call failed: not retried before this instant.
            let mut backoff: HashMap<Uuid, (DateTime<Utc>, u32)> = HashMap::new();
            let mut changes = self.progress.subscribe_changes("bots");
            loop {
                changes.borrow_and_update();
                let settled = match self.reconcile(&mut pollers, &mut backoff, &shutdown).await {
                    Ok(settled) => settled,
                    Err(e) => {
                        tracing::warn!(error = ?e, "bot supervision failed; retrying");
                        false
                    }
                };
                let recheck = async {
                    if settled {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(RECHECK).await;
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = changes.changed() => {}
                    _ = recheck => {}
                }
            }
            for (_, poller) in pollers {
                poller.cancel.cancel();
                let _ = poller.task.await;
            }
        })
    }

    async fn reconcile(
        &self,
        pollers: &mut HashMap<Uuid, RunningPoller>,
        backoff: &mut HashMap<Uuid, (DateTime<Utc>, u32)>,
        shutdown: &CancellationToken,
    ) -> Result<bool, sqlx::Error> {
        let bots = projections::bots::list_deliveries(
            &self.pool,
            BotErrorKind::TelegramInvalidToken.as_str(),
        )
        .await?;
        let bots: Vec<DeliveryRow> = bots.into_iter().filter(|b| !b.token_invalid).collect();
        // Whether nothing is left to look at again without a change to the bots.
        let mut settled = true;
        for bot in bots.iter().filter(|b| b.active && b.username.is_none()) {
            self.learn_username(bot).await;
            settled = false;
        }

        let wanted_pollers: HashMap<Uuid, &DeliveryRow> = match &self.public_url {
            Some(_) => HashMap::new(),
            None => bots
                .iter()
                .filter(|b| b.active)
                .map(|b| (b.id, b))
                .collect(),
        };
        pollers.retain(|bot_id, poller| {
            let keep = wanted_pollers
                .get(bot_id)
                .is_some_and(|b| b.token_ciphertext == poller.token_ciphertext)
                && !poller.task.is_finished();
            if !keep {
                poller.cancel.cancel();
            }
            keep
        });
        // A running poller may end (its token refused): looked at again.
        settled &= wanted_pollers.is_empty();
        for (bot_id, bot) in &wanted_pollers {
            if !pollers.contains_key(bot_id) {
                if let Some(poller) = self.start_poller(bot, shutdown) {
                    pollers.insert(*bot_id, poller);
                }
            }
        }

        let now = Utc::now();
        for bot in &bots {
            let wanted = match (&self.public_url, bot.active) {
                (Some(public_url), true) => Some(Self::webhook_url(public_url, bot.id)),
                _ => None,
            };
            // Polling bots have their webhook deleted by their poller.
            let polled = self.public_url.is_none() && bot.active;
            // A webhook set without every update kind asked for now (by an earlier version)
            // is set again: Telegram sends only the kinds a webhook asked for.
            let asked_for = allowed_updates().map(str::to_owned).to_vec();
            let current = wanted == bot.webhook_url
                && (wanted.is_none() || bot.webhook_updates.as_ref() == Some(&asked_for));
            if current || polled {
                backoff.remove(&bot.id);
                continue;
            }
            // Done now, or by another process (whose change this process then sees), or
            // retried after its backoff.
            settled = false;
            if backoff.get(&bot.id).is_some_and(|(until, _)| *until > now) {
                continue;
            }
            match self.sync_webhook(bot, wanted.as_deref()).await {
                Ok(()) => {
                    backoff.remove(&bot.id);
                }
                Err(message) => {
                    let failures = backoff.get(&bot.id).map_or(1, |(_, n)| n + 1);
                    let pause = WEBHOOK_BACKOFF.pause(failures, None);
                    backoff.insert(bot.id, (now + pause, failures));
                    tracing::warn!(bot_id = %bot.id, error = %message, "webhook change failed");
                }
            }
        }
        Ok(settled)
    }

    fn start_poller(
        &self,
        bot: &DeliveryRow,
        shutdown: &CancellationToken,
    ) -> Option<RunningPoller> {
        let client = match self.telegram.client(bot.id, &bot.token_ciphertext) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(bot_id = %bot.id, error = %e, "cannot poll the bot");
                return None;
            }
        };
        let cancel = shutdown.child_token();
        let poller = Poller {
            bot_id: bot.id,
            identity: crate::telegram::updates::BotIdentity {
                bot_id: BotId(bot.id),
                telegram_id: crate::telegram::updates::telegram_id_from_hint(&bot.token_hint),
                username: bot.username.clone(),
            },
            client,
            intake: self.intake.clone(),
            pool: self.pool.clone(),
            bots: self.bots.clone(),
            leases: self.leases.clone(),
            timeout_secs: self.poll_timeout_secs,
            conflict_pause: self.conflict_pause,
            may_show_error: true,
            state: Default::default(),
        };
        tracing::info!(bot_id = %bot.id, "long polling started");
        Some(RunningPoller {
            token_ciphertext: bot.token_ciphertext.clone(),
            task: tokio::spawn(poller.run(cancel.clone())),
            cancel,
        })
    }

    /// Asks Telegram for the bot's @username (getMe) and records it: group messages that
    /// mention it are for the bot. A failure is logged and tried again next round.
    async fn learn_username(&self, bot: &DeliveryRow) {
        let Ok(client) = self.telegram.client(bot.id, &bot.token_ciphertext) else {
            return;
        };
        match client.call(&GetMe::new()).await {
            Ok(me) => {
                let Some(username) = me.user.username.clone() else {
                    return;
                };
                let metadata = EventMetadata::new_request(Actor::System("bot-supervisor"));
                let command = BotCommand::RecordIdentity { username };
                if let Err(e) = self
                    .bots
                    .execute(&bot.id.to_string(), command, &metadata)
                    .await
                {
                    tracing::warn!(bot_id = %bot.id, error = ?e, "cannot record the bot's username");
                }
            }
            Err(failure) => {
                tracing::warn!(bot_id = %bot.id, error = %failure.message, "getMe failed");
                if failure.invalid_token {
                    let metadata = EventMetadata::new_request(Actor::System("bot-supervisor"));
                    let command = BotCommand::RecordError {
                        kind: BotErrorKind::TelegramInvalidToken,
                        message: failure.message,
                    };
                    let _ = self
                        .bots
                        .execute(&bot.id.to_string(), command, &metadata)
                        .await;
                }
            }
        }
    }

    /// Sets or deletes one bot's webhook under its lease, and records the outcome.
    async fn sync_webhook(&self, bot: &DeliveryRow, wanted: Option<&str>) -> Result<(), String> {
        let resource = bot_resource(bot.id);
        // Without a liveness session, the next round does it.
        let Some(identity) = self.leases.identity() else {
            return Ok(());
        };
        match self.leases.try_claim_as(&identity, &resource).await {
            Ok(true) => {}
            Ok(false) => return Ok(()), // another process is on it
            Err(e) => return Err(e.to_string()),
        }
        let result = self.call_and_record(bot, wanted).await;
        let _ = self.leases.release(&identity, &resource).await;
        result
    }

    async fn call_and_record(&self, bot: &DeliveryRow, wanted: Option<&str>) -> Result<(), String> {
        let client = self
            .telegram
            .client(bot.id, &bot.token_ciphertext)
            .map_err(|e| e.to_string())?;
        let metadata = self.metadata_of_last_change(bot.id).await;
        let outcome = match wanted {
            Some(url) => {
                let parsed = Url::parse(url).map_err(|e| e.to_string())?;
                // `max_connections` bounds Telegram's concurrent deliveries to this bot, so
                // that a popular bot is paced by Telegram rather than refused by us.
                let params = serde_json::json!({
                    "url": parsed.as_str(),
                    "secret_token": self.cipher.webhook_secret(bot.id),
                    "allowed_updates": allowed_updates(),
                    "max_connections": self.webhook_max_connections,
                });
                client
                    .call_method::<bool>("setWebhook", &params, self.call_timeout)
                    .await
                    .map(|_| BotCommand::RecordWebhookSet {
                        url: url.to_owned(),
                        allowed_updates: allowed_updates().map(str::to_owned).to_vec(),
                    })
            }
            None => client
                .call(&DeleteWebhook::new())
                .await
                .map(|_| BotCommand::RecordWebhookDeleted),
        };
        let command = match outcome {
            Ok(command) => command,
            Err(failure) => {
                let record = BotCommand::RecordError {
                    kind: if failure.invalid_token {
                        BotErrorKind::TelegramInvalidToken
                    } else {
                        BotErrorKind::Webhook
                    },
                    message: failure.message.clone(),
                };
                let _ = self
                    .bots
                    .execute(&bot.id.to_string(), record, &metadata)
                    .await;
                return Err(failure.message);
            }
        };
        match self
            .bots
            .execute(&bot.id.to_string(), command, &metadata)
            .await
        {
            Ok(_) => {
                let _ = self
                    .bots
                    .execute(
                        &bot.id.to_string(),
                        BotCommand::ClearError {
                            kind: BotErrorKind::Webhook,
                        },
                        &metadata,
                    )
                    .await;
                Ok(())
            }
            // Disabled meanwhile: the next round deletes the webhook again.
            Err(crate::event_store::CommandError::Rejected(e)) => {
                tracing::info!(bot_id = %bot.id, reason = %e, "webhook outcome no longer wanted");
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The admin request that enabled, disabled or deleted the bot caused this change: its
    /// events continue that story.
    async fn metadata_of_last_change(&self, bot_id: Uuid) -> EventMetadata {
        let row = crate::event_store::history::latest_metadata(
            &self.pool,
            <Bot as cqrs_es::Aggregate>::TYPE,
            &bot_id.to_string(),
            &["BotEnabled", "BotDisabled", "BotDeleted"],
        )
        .await
        .ok()
        .flatten();
        let id = |key: &str| {
            row.as_ref()
                .and_then(|m| m[key].as_str())
                .and_then(|s| s.parse::<Uuid>().ok())
        };
        match (id("correlation_id"), id("event_id")) {
            (Some(correlation), Some(cause)) => {
                EventMetadata::caused_by(correlation, cause, Actor::System("bot-supervisor"))
            }
            _ => EventMetadata::new_request(Actor::System("bot-supervisor")),
        }
    }
}
