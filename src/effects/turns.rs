//! Working one chat's turns, strictly in order (seed P0 item 1: ensureResponseGenerated,
//! ensureResponseSaved, ensureResponseSent, each idempotent).
//!
//! Every decision starts from the chat's events, loaded fresh: a turn whose response is
//! recorded is never sent to the LLM again, and a turn whose sending is recorded is never
//! sent to Telegram again. Recording goes through the aggregate, which refuses a step that is
//! already recorded, so a runner that lost a race learns it and moves on.

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand};
use aggregates::chat::{
    BotCommandName, Chat, ChatCommand, ChatError, FailureClass, GeneratedResponse, OpenTurn,
    ResponseKind, TokenUsage, TurnStep,
};
use chrono::Utc;
use projections::bots::{find_bot, BotRow};
use sqlx::PgPool;
use teloxide_core::requests::Requester;
use teloxide_core::types::ChatId;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::backoff::Backoff;
use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata};
use crate::intake::update_correlation_id;
use crate::llm::{ErrorClass, HistoryTurn, LanguageModel, LlmRequest, PriceTable};
use crate::telegram::failures::classify;
use crate::telegram::split::{split_message, TELEGRAM_MESSAGE_LIMIT};
use crate::telegram::TelegramClients;

/// The reply to `/help`.
pub const HELP_TEXT: &str = "I answer your messages with an AI model.\n\n\
Commands:\n\
/start — the welcome message\n\
/help — this help\n\
/refresh — start a new conversation (I forget the earlier messages)";

/// The reply to `/refresh`.
pub const REFRESH_TEXT: &str = "Done: a new conversation starts with your next message.";

/// At most this many turns of one chat in a row, so one busy chat cannot hold a slot forever.
const TURNS_PER_CLAIM: usize = 16;

pub struct TurnWorker {
    pub pool: PgPool,
    pub chats: Arc<CommandGateway<Chat>>,
    pub bots: Arc<CommandGateway<Bot>>,
    pub telegram: Arc<TelegramClients>,
    pub llm: Arc<dyn LanguageModel>,
    pub prices: Arc<PriceTable>,
    /// Attempts at one step before the turn fails for good.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// What to do after a step.
enum Next {
    /// Go on with the chat's next step or turn.
    Continue,
    /// The chat waits (a retry is scheduled); give up the claim.
    Pause,
}

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("the chat's events could not be read or written")]
    Chat(#[from] CommandError<ChatError>),
    #[error("the bot could not be read")]
    Bot(#[from] sqlx::Error),
}

impl TurnWorker {
    /// Works `chat_id`'s open turns in order until none is left, a retry is scheduled, or
    /// `lost` says the claim was lost.
    pub async fn work_chat(
        &self,
        chat_id: Uuid,
        lost: &CancellationToken,
    ) -> Result<(), TurnError> {
        for _ in 0..TURNS_PER_CLAIM * 2 {
            if lost.is_cancelled() {
                return Ok(());
            }
            let chat = self.chats.load(&chat_id.to_string()).await?;
            let (Some(turn), Some(bot_id)) = (chat.next_turn().cloned(), chat.bot_id) else {
                return Ok(());
            };
            let span = tracing::info_span!("turn", %chat_id, %bot_id, update_id = turn.update_id, step = ?turn.step());
            match self
                .step(chat_id, bot_id, &chat, &turn)
                .instrument(span)
                .await?
            {
                Next::Continue => continue,
                Next::Pause => return Ok(()),
            }
        }
        Ok(())
    }

    fn metadata(bot_id: Uuid, update_id: i64) -> EventMetadata {
        let correlation = update_correlation_id(bot_id, update_id);
        EventMetadata::caused_by(correlation, correlation, Actor::System("effect-runner"))
    }

    async fn step(
        &self,
        chat_id: Uuid,
        bot_id: Uuid,
        chat: &Chat,
        turn: &OpenTurn,
    ) -> Result<Next, TurnError> {
        let metadata = Self::metadata(bot_id, turn.update_id);
        let bot = find_bot(&self.pool, bot_id).await?;
        let Some(bot) = bot.filter(|b| b.is_active && b.deleted_at.is_none()) else {
            // Nothing is answered for a disabled or deleted bot, now or later.
            self.record(
                chat_id,
                ChatCommand::FailTurn {
                    update_id: turn.update_id,
                    step: turn.step(),
                    class: FailureClass::Terminal,
                    error: "the bot is disabled or deleted".into(),
                },
                &metadata,
            )
            .await?;
            return Ok(Next::Continue);
        };
        match &turn.response {
            None => self.generate(chat_id, &bot, chat, turn, &metadata).await,
            Some(response) => {
                self.send(chat_id, &bot, chat, turn, response, &metadata)
                    .await
            }
        }
    }

    /// Records a step's outcome; a refusal means another runner recorded it first.
    async fn record(
        &self,
        chat_id: Uuid,
        command: ChatCommand,
        metadata: &EventMetadata,
    ) -> Result<(), TurnError> {
        match self
            .chats
            .execute(&chat_id.to_string(), command, metadata)
            .await
        {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(reason)) => {
                tracing::info!(%reason, "step already recorded; moving on");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn generate(
        &self,
        chat_id: Uuid,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let command = BotCommandName::parse(&turn.user_text, None);
        let (text, kind, reset) = match command {
            Some(BotCommandName::Start) => (bot.start_message.clone(), command, false),
            Some(BotCommandName::Help) => (HELP_TEXT.to_owned(), command, false),
            Some(BotCommandName::Refresh) => (REFRESH_TEXT.to_owned(), command, true),
            None => return self.ask_llm(chat_id, bot, chat, turn, metadata).await,
        };
        let response = GeneratedResponse {
            text,
            kind: ResponseKind::Command {
                command: kind.expect("a command"),
            },
        };
        self.record(
            chat_id,
            ChatCommand::RecordResponse {
                update_id: turn.update_id,
                response,
                reset_conversation: reset,
            },
            metadata,
        )
        .await?;
        Ok(Next::Continue)
    }

    async fn ask_llm(
        &self,
        chat_id: Uuid,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let request = LlmRequest {
            model: bot.model.clone(),
            instructions: bot.instructions.clone(),
            user_text: turn.user_text.clone(),
            previous_response_id: chat.conversation.previous_response_id.clone(),
            history: chat
                .conversation
                .history
                .iter()
                .map(|(user, assistant)| HistoryTurn {
                    user: user.clone(),
                    assistant: assistant.clone(),
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let result = self.llm.respond(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(reply) => {
                let usage = TokenUsage {
                    input_tokens: reply.usage.input_tokens,
                    cached_input_tokens: reply.usage.cached_input_tokens,
                    output_tokens: reply.usage.output_tokens,
                    reasoning_tokens: reply.usage.reasoning_tokens,
                };
                let priced_model = if reply.model.is_empty() {
                    &bot.model
                } else {
                    &reply.model
                };
                let cost = self.prices.cost_micro_usd(priced_model, &reply.usage).unwrap_or_else(|| {
                    tracing::warn!(model = %priced_model, "no price for this model; its cost is recorded as 0");
                    0
                });
                tracing::info!(elapsed_ms, cost_micro_usd = cost, "LLM answered");
                let response = GeneratedResponse {
                    text: reply.text,
                    kind: ResponseKind::Llm {
                        model: reply.model,
                        response_id: reply.response_id,
                        usage,
                        cost_micro_usd: cost,
                    },
                };
                self.record(
                    chat_id,
                    ChatCommand::RecordResponse {
                        update_id: turn.update_id,
                        response,
                        reset_conversation: false,
                    },
                    metadata,
                )
                .await?;
                Ok(Next::Continue)
            }
            Err(error) => {
                let attempt = turn.attempts + 1;
                let retry = error.class == ErrorClass::Retryable && attempt < self.max_attempts;
                tracing::warn!(elapsed_ms, attempt, retry, error = %error, "LLM call failed");
                let class = match (error.class, retry) {
                    (ErrorClass::Fatal, _) => FailureClass::Fatal,
                    (ErrorClass::Retryable, true) => FailureClass::Retryable,
                    (ErrorClass::Retryable, false) => FailureClass::Terminal,
                };
                let retry_at =
                    retry.then(|| Utc::now() + self.backoff.pause(attempt, error.retry_after));
                self.record(
                    chat_id,
                    ChatCommand::RecordAttemptFailure {
                        update_id: turn.update_id,
                        step: TurnStep::Generate,
                        class,
                        error: error.to_string(),
                        retry_at,
                    },
                    metadata,
                )
                .await?;
                if retry {
                    return Ok(Next::Pause);
                }
                if class == FailureClass::Fatal {
                    self.record_bot_error(bot.id, "llm", &error.to_string(), metadata)
                        .await;
                }
                // The user learns something went wrong, once: the error message is this
                // turn's response, sent like any other.
                self.record(
                    chat_id,
                    ChatCommand::RecordResponse {
                        update_id: turn.update_id,
                        response: GeneratedResponse {
                            text: bot.error_message.clone(),
                            kind: ResponseKind::ErrorMessage {
                                class,
                                error: error.to_string(),
                            },
                        },
                        reset_conversation: false,
                    },
                    metadata,
                )
                .await?;
                Ok(Next::Continue)
            }
        }
    }

    async fn send(
        &self,
        chat_id: Uuid,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        response: &GeneratedResponse,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let Some(telegram_chat) = &chat.telegram_chat else {
            return Ok(Next::Pause);
        };
        let client = match self.telegram.client(bot.id, &bot.token_ciphertext) {
            Ok(client) => client,
            Err(e) => {
                self.record(
                    chat_id,
                    ChatCommand::FailTurn {
                        update_id: turn.update_id,
                        step: TurnStep::Send,
                        class: FailureClass::Fatal,
                        error: e.to_string(),
                    },
                    metadata,
                )
                .await?;
                return Ok(Next::Continue);
            }
        };
        let mut message_ids = Vec::new();
        for part in split_message(&response.text, TELEGRAM_MESSAGE_LIMIT) {
            match client.send_message(ChatId(telegram_chat.id), part).await {
                Ok(message) => message_ids.push(i64::from(message.id.0)),
                Err(error) => {
                    let failure = classify(&error);
                    let attempt = turn.attempts + 1;
                    let retry =
                        failure.class == FailureClass::Retryable && attempt < self.max_attempts;
                    tracing::warn!(attempt, retry, error = %failure.message, "sending to Telegram failed");
                    if retry {
                        let retry_at =
                            Utc::now() + self.backoff.pause(attempt, failure.retry_after);
                        self.record(
                            chat_id,
                            ChatCommand::RecordAttemptFailure {
                                update_id: turn.update_id,
                                step: TurnStep::Send,
                                class: FailureClass::Retryable,
                                error: failure.message,
                                retry_at: Some(retry_at),
                            },
                            metadata,
                        )
                        .await?;
                        return Ok(Next::Pause);
                    }
                    if failure.invalid_token {
                        self.record_bot_error(
                            bot.id,
                            "telegram_invalid_token",
                            &failure.message,
                            metadata,
                        )
                        .await;
                    }
                    let class = if failure.class == FailureClass::Retryable {
                        FailureClass::Terminal
                    } else {
                        failure.class
                    };
                    self.record(
                        chat_id,
                        ChatCommand::FailTurn {
                            update_id: turn.update_id,
                            step: TurnStep::Send,
                            class,
                            error: failure.message,
                        },
                        metadata,
                    )
                    .await?;
                    return Ok(Next::Continue);
                }
            }
        }
        // The window in which a crash makes a resend: between the last send and this record.
        self.record(
            chat_id,
            ChatCommand::RecordSent {
                update_id: turn.update_id,
                telegram_message_ids: message_ids,
            },
            metadata,
        )
        .await?;
        Ok(Next::Continue)
    }

    async fn record_bot_error(
        &self,
        bot_id: Uuid,
        kind: &str,
        message: &str,
        metadata: &EventMetadata,
    ) {
        let command = BotCommand::RecordError {
            kind: kind.to_owned(),
            message: message.to_owned(),
        };
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
