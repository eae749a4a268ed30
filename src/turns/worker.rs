//! Working one chat's turns, strictly in order: generate the response, record it, send it,
//! record the sending, each step idempotent.
//!
//! Every decision starts from the chat's events, loaded fresh: a turn whose response is
//! recorded is never sent to the LLM again, and a turn whose sending is recorded is never
//! sent to Telegram again. Recording goes through the aggregate, which refuses a step that is
//! already recorded, so a runner that lost a race learns it and moves on.
//!
//! This file holds the loop over a chat's turns and the recording every step shares; the
//! steps are [`super::screen`], [`super::generate`], [`super::send`] and [`super::callback`],
//! and what their outcomes come to is [`super::policy`].

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand};
use aggregates::chat::{
    Chat, ChatCommand, ChatError, GeneratedResponse, OpenTurn, ResponseKind, TurnKind,
};
use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

pub use super::bot_rows::BotCache;
use super::policy::{self, Decision, Effect, Next, Retries, Unanswerable};
use crate::event_store::update_correlation_id;
use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata, LoadedAggregate};
use crate::llm::{LanguageModel, PriceTable};
use crate::personal_data::PersonalDataVault;
use crate::runtime::backoff::Backoff;
use crate::runtime::clock::Clock;
use crate::telegram::pacing::SendPacer;
use crate::telegram::Messenger;
use aggregates::ids::{BotErrorKind, BotId, TurnKey};

/// A retry counts as due this much before its time: the runner claims by the database's
/// clock and decides by this process's, and a small skew must not make it claim and
/// give back the same chat in a loop.
const RETRY_CLOCK_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::milliseconds(250);

/// At most this many turns of one chat in a row, so one busy chat cannot hold a slot forever.
const TURNS_PER_CLAIM: usize = 16;

pub struct TurnWorker {
    pub pool: PgPool,
    pub chats: Arc<CommandGateway<Chat>>,
    pub bots: Arc<CommandGateway<Bot>>,
    pub telegram: Arc<dyn Messenger>,
    pub llm: Arc<dyn LanguageModel>,
    pub prices: Arc<PriceTable>,
    /// Attempts at one step before the turn fails for good.
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub pacer: Arc<SendPacer>,
    /// Opens the chat's sealed texts for the LLM and Telegram, and seals the answers.
    pub vault: Arc<PersonalDataVault>,
    pub bot_rows: Arc<BotCache>,
    /// The time budgets and refusal notices are judged by.
    pub clock: Clock,
    /// Voice messages and images: the limits and the transcription client.
    pub media: super::media::MediaTools,
    /// The drafts being written here, for the stop button ([`super::stream`]).
    pub answer_stops: crate::runtime::answer_stops::AnswerStops,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("the chat's events could not be read or written")]
    Chat(#[from] CommandError<ChatError>),
    #[error("the bot or a personal data key could not be read")]
    Database(#[from] sqlx::Error),
}

/// The turn a step works on, and what its records carry.
pub(super) struct TurnContext<'a> {
    pub bot_id: BotId,
    /// The chat as the step found it; the aggregate moves on as the step records.
    pub chat: &'a Chat,
    pub turn: &'a OpenTurn,
    pub metadata: EventMetadata,
}

impl TurnWorker {
    /// Works `chat_id`'s open turns in order until none is left, a retry is scheduled, or
    /// `lost` says the claim was lost; `claimed_at` is the chat's sequence as its claim read it.
    /// Returns the chat's sequence when no turn was left.
    pub async fn work_chat(
        &self,
        chat_id: Uuid,
        claimed_at: Option<usize>,
        lost: &CancellationToken,
    ) -> Result<Option<usize>, TurnError> {
        let mut work = self
            .chats
            .load_current(&chat_id.to_string(), claimed_at)
            .await?;
        for _ in 0..TURNS_PER_CLAIM * 2 {
            if lost.is_cancelled() {
                return Ok(None);
            }
            let chat = work.state();
            let (Some(turn), Some(bot_id)) = (chat.next_turn().cloned(), chat.bot_id) else {
                return Ok(Some(work.sequence()));
            };
            if turn
                .retry_at
                .is_some_and(|at| at > Utc::now() + RETRY_CLOCK_TOLERANCE)
            {
                // Waiting out its backoff; chat_work brings the chat back when it is due.
                return Ok(None);
            }
            let correlation_id = update_correlation_id(bot_id, turn.update_id);
            let span = tracing::info_span!("turn", %chat_id, %bot_id, %correlation_id, turn = %turn.update_id, step = ?turn.step());
            match self.step(&mut work, bot_id, &turn).instrument(span).await? {
                Next::Continue => continue,
                Next::Pause => return Ok(None),
            }
        }
        Ok(None)
    }

    fn metadata(bot_id: BotId, update_id: TurnKey) -> EventMetadata {
        let correlation = update_correlation_id(bot_id, update_id);
        EventMetadata::caused_by(correlation, correlation, Actor::System("effect-runner"))
    }

    async fn step(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: BotId,
        turn: &OpenTurn,
    ) -> Result<Next, TurnError> {
        let metadata = Self::metadata(bot_id, turn.update_id);
        // The state the step decides on; `work` moves on as the step records its outcome.
        let chat = &work.state().clone();
        let ctx = TurnContext {
            bot_id,
            chat,
            turn,
            metadata,
        };
        let bot = self.bot_rows.get(&self.pool, bot_id).await?;
        let Some(bot) = bot.filter(|b| b.is_active && b.deleted_at.is_none()) else {
            let decision = policy::unanswerable(turn, Unanswerable::BotGone);
            return self.carry_out(work, &ctx, decision).await;
        };
        if chat.blocked {
            let decision = policy::unanswerable(turn, Unanswerable::ChatBlocked);
            return self.carry_out(work, &ctx, decision).await;
        }
        match (&turn.kind, &turn.response, turn.refusal) {
            (TurnKind::Callback { query_id, data }, _, _) => {
                self.answer_callback(work, &ctx, &bot, query_id, data.as_deref())
                    .await
            }
            (_, Some(response), _) => self.send(work, &ctx, &bot, response).await,
            (_, None, Some(refusal)) => self.answer_refusal(work, &ctx, &bot, refusal).await,
            (TurnKind::Media { .. }, None, None) => self.answer_media(work, &ctx, &bot).await,
            (TurnKind::Message, None, None) => self.generate(work, &ctx, &bot).await,
        }
    }

    /// The retry rule's inputs as of now.
    pub(super) fn retries(&self) -> Retries<impl Fn(u32, Option<Duration>) -> Duration> {
        let backoff = self.backoff;
        Retries {
            max_attempts: self.max_attempts,
            now: Utc::now(),
            pause: move |attempt, requested| backoff.pause(attempt, requested),
        }
    }

    /// Carries out a step's decision, effect by effect, and says what comes next.
    pub(super) async fn carry_out(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        decision: Decision,
    ) -> Result<Next, TurnError> {
        for effect in decision.effects {
            match effect {
                Effect::Record(command) => {
                    self.record(work, ctx.bot_id, command, &ctx.metadata)
                        .await?
                }
                Effect::Respond {
                    text,
                    kind,
                    reset_conversation,
                } => {
                    self.respond(work, ctx, &text, kind, reset_conversation)
                        .await?
                }
                Effect::RecordBotError { kind, message } => {
                    self.record_bot_error(ctx.bot_id, kind, message, &ctx.metadata)
                        .await;
                    self.bot_rows.note_error(ctx.bot_id, kind, true);
                }
                Effect::ClearBotError { kind } => {
                    // Best effort: the error shows until the next answer clears it.
                    let clear = BotCommand::ClearError { kind };
                    let _ = self
                        .bots
                        .execute(&ctx.bot_id.to_string(), clear, &ctx.metadata)
                        .await;
                    self.bot_rows.note_error(ctx.bot_id, kind, false);
                }
                Effect::PauseBotSends(pause) => self.pacer.pause_bot(ctx.bot_id.0, pause),
            }
        }
        Ok(decision.next)
    }

    /// Records a step's outcome; a refusal means another runner recorded it first. `bot_id`
    /// labels the failed-turns counter.
    pub(super) async fn record(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: BotId,
        command: ChatCommand,
        metadata: &EventMetadata,
    ) -> Result<(), TurnError> {
        // Kept for the metrics: a turn that fails is counted once its failure is recorded.
        let failed_class = match &command {
            ChatCommand::FailTurn { class, .. } => Some(*class),
            _ => None,
        };
        match self.chats.execute_on(work, command, metadata).await {
            Ok(_) => {
                if let Some(class) = failed_class {
                    crate::metrics::turn_failed(bot_id.0, &format!("{class:?}").to_lowercase());
                }
                Ok(())
            }
            Err(CommandError::Rejected(reason)) => {
                tracing::info!(%reason, "step already recorded; moving on");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Seals `text` for the turn's person and records it as the turn's response;
    /// `reset_conversation` for `/refresh`.
    pub(super) async fn respond(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        text: &str,
        kind: ResponseKind,
        reset_conversation: bool,
    ) -> Result<(), TurnError> {
        let response = GeneratedResponse {
            text: self.vault.seal(subject(ctx.chat, ctx.turn), text).await?,
            kind,
        };
        let command = ChatCommand::RecordResponse {
            update_id: ctx.turn.update_id,
            response,
            reset_conversation,
        };
        self.record(work, ctx.bot_id, command, &ctx.metadata).await
    }

    async fn record_bot_error(
        &self,
        bot_id: BotId,
        kind: BotErrorKind,
        message: String,
        metadata: &EventMetadata,
    ) {
        let command = BotCommand::RecordError { kind, message };
        if let Err(e) = self
            .bots
            .execute(&bot_id.to_string(), command, metadata)
            .await
        {
            tracing::warn!(%bot_id, error = ?e, "cannot record the bot's error");
        }
    }
}

/// How long a chat's claim lasts without renewal; renewed at a third of it.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    lease / 3
}

/// Whose personal data a turn's texts are: the person who wrote, else the chat.
pub(super) fn subject(chat: &Chat, turn: &OpenTurn) -> i64 {
    turn.from_user_id
        .or_else(|| chat.telegram_chat.as_ref().map(|c| c.id))
        .unwrap_or_default()
}
