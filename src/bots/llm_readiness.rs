//! Bots show a missing OPENAI_API_KEY before anyone writes to them.
//!
//! Without a key every turn fails at the LLM, and the first person to write gets the bot's
//! error message. So a start without the key warns once, and each live bot shows it as its
//! `last_error` (kind [`LLM_NOT_CONFIGURED`]), including bots created later. A start with the
//! key clears that kind, which this component alone owns. Another error a bot already shows is
//! never overwritten: it may be the one that stops the bot (an invalid token).

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand};
use aggregates::ids::BotErrorKind;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event_store::{Actor, CommandGateway, EventMetadata};
use crate::subscriptions::SubscriptionProgress;

/// The error kind this component records and clears.
pub const LLM_NOT_CONFIGURED: BotErrorKind = BotErrorKind::LlmNotConfigured;

/// What a bot shows while the key is missing.
pub const MISSING_KEY_MESSAGE: &str = "OPENAI_API_KEY is not set: this bot cannot answer until it is (set it, with any value for an OpenAI-compatible server that needs none, and restart)";

/// How often it looks again when no bot changes.
const RECHECK: Duration = Duration::from_secs(30);

pub struct LlmReadiness {
    pub pool: PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub progress: SubscriptionProgress,
    /// Whether OPENAI_API_KEY is set.
    pub key_configured: bool,
}

impl LlmReadiness {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        if !self.key_configured {
            tracing::warn!("OPENAI_API_KEY is not set: no bot can answer until it is; each bot shows it as its last_error");
        }
        tokio::spawn(async move {
            let mut changes = self.progress.subscribe_changes("bots");
            loop {
                changes.borrow_and_update();
                if let Err(e) = self.reconcile().await {
                    tracing::warn!(error = ?e, "showing the LLM's configuration on the bots failed; retrying");
                }
                // With the key, one pass clears what an earlier start recorded.
                if self.key_configured {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(RECHECK) => {}
                }
            }
        })
    }

    async fn reconcile(&self) -> Result<(), sqlx::Error> {
        // Live bots with no error (to record it) or with this one (to clear it).
        let bots =
            projections::bots::live_bots_free_for_error(&self.pool, LLM_NOT_CONFIGURED.as_str())
                .await?;
        let metadata = EventMetadata::new_request(Actor::System("llm-readiness"));
        for (bot_id, kind) in bots {
            let command = match (self.key_configured, kind.is_some()) {
                (false, false) => BotCommand::RecordError {
                    kind: LLM_NOT_CONFIGURED,
                    message: MISSING_KEY_MESSAGE.to_owned(),
                },
                (true, true) => BotCommand::ClearError {
                    kind: LLM_NOT_CONFIGURED.to_owned(),
                },
                _ => continue,
            };
            if let Err(e) = self
                .bots
                .execute(&bot_id.to_string(), command, &metadata)
                .await
            {
                tracing::warn!(%bot_id, error = ?e, "cannot show the LLM's configuration on the bot");
            }
        }
        Ok(())
    }
}
