//! Long polling: without a public URL, each enabled bot's updates are fetched with
//! `getUpdates`.
//!
//! One process polls a bot at a time (it holds the bot's lease), since Telegram answers a
//! second concurrent `getUpdates` with 409 Conflict. An update is confirmed to Telegram only by
//! the next `getUpdates` (its offset), which is sent after the update was appended, so a crash
//! never loses one; one appended and not yet confirmed comes again, and the intake drops an
//! update id it has seen.
//!
//! A round costs only what it must: `getUpdates` and the appends. The lease is renewed when it
//! has to be (not every round), the offset is kept in memory while the lease is held and
//! stored at most every ten seconds while updates keep coming (and whenever a poll comes back
//! empty, and at shutdown), and the bot's @username is read again once a minute. So an update that arrives
//! while the previous round finishes waits for no bookkeeping (bench phase `polling`).

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How often the bot's @username is read again while it is polled (it is learned by the bot
/// supervisor, and then never changes but with the token).
const IDENTITY_REFRESH: Duration = Duration::from_secs(60);

/// While updates keep coming the offset is stored at most this often (a poll that comes back
/// empty stores it at once): Telegram forgets what a later offset confirmed, so after a restart
/// an older stored offset only brings back the updates appended and not yet confirmed, which
/// the intake drops as seen.
const OFFSET_STORE_EVERY: Duration = Duration::from_secs(10);

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
    /// What this poller keeps while it holds the bot's lease.
    pub state: PollState,
}

/// What a poller remembers between rounds.
#[derive(Default)]
pub struct PollState {
    /// The lease, while this poller holds it: as whom, and when it was last claimed or renewed.
    held: Option<(Identity, Instant)>,
    /// The next offset, once read (or moved) under the current lease: `Some(None)` = none yet.
    offset: Option<Option<i64>>,
    /// The offset last stored, and when.
    stored: Option<(i64, Instant)>,
    /// When the bot's @username was last read.
    identity_read_at: Option<Instant>,
}

impl Poller {
    pub async fn run(mut self, cancel: CancellationToken) {
        let resource = bot_resource(self.bot_id);
        let mut retrying = Retrying::new(POLL_BACKOFF);
        let mut webhook_cleared = false;
        while !cancel.is_cancelled() {
            let Some(identity) = self.leases.identity() else {
                // No liveness session: polling waits for the next one.
                if sleep_or_cancel(&cancel, POLL_BACKOFF.base).await {
                    break;
                }
                continue;
            };
            match self.hold_lease(&identity, &resource).await {
                Ok(true) => {}
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
        if let Some((identity, _)) = self.state.held.take() {
            self.store_latest_offset(true).await;
            let _ = self.leases.release(&identity, &resource).await;
        }
    }

    /// Makes sure this poller holds the bot's lease as `identity`: claimed when it does not
    /// (or held it under an identity since lost), renewed when the next poll could otherwise
    /// outlast it. False when another process holds it.
    async fn hold_lease(
        &mut self,
        identity: &Identity,
        resource: &str,
    ) -> Result<bool, sqlx::Error> {
        let lease = self.leases.duration();
        // The longest a round can take: a poll's patience; renewed before it could run out.
        let patience = Duration::from_secs(u64::from(self.timeout_secs) + 10);
        let renew_after = lease.saturating_sub(patience).saturating_sub(lease / 6);
        let held_as = self
            .state
            .held
            .as_ref()
            .filter(|(held, _)| held.owner == identity.owner && !identity.lost.is_cancelled());
        let ours = match held_as {
            Some((_, at)) if at.elapsed() < renew_after => return Ok(true),
            Some(_) => self.leases.renew(identity, resource).await?,
            None => {
                // A new holding: what another holder stored meanwhile is read again.
                self.state.offset = None;
                self.state.stored = None;
                self.leases.try_claim_as(identity, resource).await?
            }
        };
        self.state.held = ours.then(|| (identity.clone(), Instant::now()));
        Ok(ours)
    }

    /// One getUpdates round under the bot's lease, claimed as `identity`: fetch, append, store
    /// the offset. Errors say how long to pause.
    async fn poll_once(
        &mut self,
        cancel: &CancellationToken,
        identity: &Identity,
    ) -> Result<(), Duration> {
        self.refresh_identity().await;
        let offset = match self.state.offset {
            Some(offset) => offset,
            None => {
                let stored = self.load_offset().await.map_err(|e| {
                    tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot read the polling offset");
                    Duration::from_secs(1)
                })?;
                self.state.offset = Some(stored);
                self.state.stored = stored.map(|next| (next, Instant::now()));
                stored
            }
        };
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
        let polled_nothing = updates.is_empty();
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
        self.state.offset = Some(next_offset);
        // The next getUpdates confirms these updates to Telegram; storing the offset is for a
        // restart, and waits for a quiet moment or a second's worth of rounds.
        self.store_latest_offset(polled_nothing).await;
        Ok(())
    }

    /// Stores the offset in memory if it moved since last stored, and `now` or a second has
    /// passed since. A failure is logged: the next round tries again.
    async fn store_latest_offset(&mut self, now: bool) {
        let Some(Some(next)) = self.state.offset else {
            return;
        };
        let due = match self.state.stored {
            Some((stored, _)) if stored == next => false,
            Some((_, at)) => now || at.elapsed() >= OFFSET_STORE_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        match self.store_offset(next).await {
            Ok(()) => self.state.stored = Some((next, Instant::now())),
            Err(e) => {
                tracing::warn!(bot_id = %self.bot_id, error = ?e, "cannot store the polling offset")
            }
        }
    }

    /// The bot's @username may be learned while polling runs: read while unknown, and once a
    /// minute.
    async fn refresh_identity(&mut self) {
        let fresh = self
            .state
            .identity_read_at
            .is_some_and(|at| at.elapsed() < IDENTITY_REFRESH);
        if fresh && self.identity.username.is_some() {
            return;
        }
        let username = projections::bots::find_username(&self.pool, self.bot_id).await;
        self.state.identity_read_at = Some(Instant::now());
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
