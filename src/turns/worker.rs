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
    ResponseKind, TokenUsage, TurnKind, TurnStep,
};
use chrono::Utc;
use projections::bots::{find_bot, BotRow};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::event_store::update_correlation_id;
use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata, LoadedAggregate};
use crate::llm::{ErrorClass, HistoryTurn, LanguageModel, LlmRequest, PriceTable};
use crate::personal_data::PersonalDataVault;
use crate::runtime::backoff::Backoff;
use crate::telegram::failures::TelegramFailure;
use crate::telegram::markdown::to_telegram_html;
use crate::telegram::pacing::SendPacer;
use crate::telegram::split::{split_message, TELEGRAM_MESSAGE_LIMIT};
use crate::telegram::Messenger;

/// The reply to `/help`.
pub const HELP_TEXT: &str = "I answer your messages with an AI model.\n\n\
Commands:\n\
/start — the welcome message\n\
/help — this help\n\
/refresh — start a new conversation (I forget the earlier messages)";

/// The reply to `/refresh` (and to the `refresh` button).
pub const REFRESH_TEXT: &str = "Done: a new conversation starts with your next message.";

/// The reply to a photo, sticker, voice message or any other non-text message.
pub const MEDIA_NOTICE: &str =
    "Sorry, I can only read text messages. Please write your question as text.";

/// The answer to a button press whose data this bot does not know.
pub const UNKNOWN_BUTTON_NOTICE: &str = "Sorry, this button no longer does anything.";

/// How often the typing indicator is refreshed (Telegram shows it for about 5 s).
const TYPING_REFRESH: Duration = Duration::from_secs(4);

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
    pub bot_rows: BotCache,
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
    #[error("the bot or a personal data key could not be read")]
    Database(#[from] sqlx::Error),
}

impl TurnWorker {
    /// Works `chat_id`'s open turns in order until none is left, a retry is scheduled, or
    /// `lost` says the claim was lost. Returns the chat's sequence when no turn was left.
    pub async fn work_chat(
        &self,
        chat_id: Uuid,
        lost: &CancellationToken,
    ) -> Result<Option<usize>, TurnError> {
        let mut work = self.chats.load_current(&chat_id.to_string()).await?;
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
            let span = tracing::info_span!("turn", %chat_id, %bot_id, %correlation_id, update_id = turn.update_id, step = ?turn.step());
            match self.step(&mut work, bot_id, &turn).instrument(span).await? {
                Next::Continue => continue,
                Next::Pause => return Ok(None),
            }
        }
        Ok(None)
    }

    fn metadata(bot_id: Uuid, update_id: i64) -> EventMetadata {
        let correlation = update_correlation_id(bot_id, update_id);
        EventMetadata::caused_by(correlation, correlation, Actor::System("effect-runner"))
    }

    async fn step(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: Uuid,
        turn: &OpenTurn,
    ) -> Result<Next, TurnError> {
        let metadata = Self::metadata(bot_id, turn.update_id);
        // The state the step decides on; `work` moves on as the step records its outcome.
        let chat = &work.state().clone();
        let bot = self.bot_rows.get(&self.pool, bot_id).await?;
        let Some(bot) = bot.filter(|b| b.is_active && b.deleted_at.is_none()) else {
            // Nothing is answered for a disabled or deleted bot, now or later.
            self.record(
                work,
                bot_id,
                ChatCommand::FailTurn {
                    update_id: turn.update_id,
                    step: turn.step(),
                    class: FailureClass::Terminal,
                    error: "the bot is disabled or deleted".into(),
                    blocks_chat: false,
                },
                &metadata,
            )
            .await?;
            return Ok(Next::Continue);
        };
        if chat.blocked {
            // Telegram refused this chat; nothing more is attempted until its user writes.
            self.record(
                work,
                bot_id,
                ChatCommand::FailTurn {
                    update_id: turn.update_id,
                    step: turn.step(),
                    class: FailureClass::Terminal,
                    error: "the chat is blocked: Telegram refuses messages to it".into(),
                    blocks_chat: false,
                },
                &metadata,
            )
            .await?;
            return Ok(Next::Continue);
        }
        match (&turn.kind, &turn.response) {
            (TurnKind::Callback { query_id, data }, _) => {
                self.answer_callback(work, &bot, turn, query_id, data.as_deref(), &metadata)
                    .await
            }
            (TurnKind::Media { .. }, None) => {
                let notice = GeneratedResponse {
                    text: self.vault.seal(subject(chat, turn), MEDIA_NOTICE).await?,
                    kind: ResponseKind::Notice,
                };
                self.record_response(work, bot_id, turn, notice, false, &metadata)
                    .await
            }
            (TurnKind::Message, None) => self.generate(work, &bot, chat, turn, &metadata).await,
            (_, Some(response)) => self.send(work, &bot, chat, turn, response, &metadata).await,
        }
    }

    /// Records a step's outcome; a refusal means another runner recorded it first. `bot_id`
    /// labels the failed-turns counter.
    async fn record(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: Uuid,
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
                    crate::metrics::turn_failed(bot_id, &format!("{class:?}").to_lowercase());
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

    async fn generate(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let Some(user_text) = self.vault.open(&turn.user_text).await? else {
            return self.forgotten(work, bot.id, turn, metadata).await;
        };
        let command = BotCommandName::parse(&user_text, None);
        let (text, kind, reset) = match command {
            Some(BotCommandName::Start) => (bot.start_message.clone(), command, false),
            Some(BotCommandName::Help) => (HELP_TEXT.to_owned(), command, false),
            Some(BotCommandName::Refresh) => (REFRESH_TEXT.to_owned(), command, true),
            None => {
                return self
                    .ask_llm(work, bot, chat, turn, user_text, metadata)
                    .await
            }
        };
        let response = GeneratedResponse {
            text: self.vault.seal(subject(chat, turn), &text).await?,
            kind: ResponseKind::Command {
                command: kind.expect("a command"),
            },
        };
        self.record_response(work, bot.id, turn, response, reset, metadata)
            .await
    }

    /// The person asked to be forgotten while the turn waited: nothing is left to answer.
    async fn forgotten(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: Uuid,
        turn: &OpenTurn,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let fail = ChatCommand::FailTurn {
            update_id: turn.update_id,
            step: turn.step(),
            class: FailureClass::Terminal,
            error: "the person's data was forgotten".into(),
            blocks_chat: false,
        };
        self.record(work, bot_id, fail, metadata).await?;
        Ok(Next::Continue)
    }

    async fn record_response(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot_id: Uuid,
        turn: &OpenTurn,
        response: GeneratedResponse,
        reset_conversation: bool,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        self.record(
            work,
            bot_id,
            ChatCommand::RecordResponse {
                update_id: turn.update_id,
                response,
                reset_conversation,
            },
            metadata,
        )
        .await?;
        Ok(Next::Continue)
    }

    /// Answers a button press promptly with answerCallbackQuery; the `refresh` button resets
    /// the conversation.
    async fn answer_callback(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot: &BotRow,
        turn: &OpenTurn,
        query_id: &str,
        data: Option<&str>,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let refresh = data == Some("refresh");
        let text = if refresh {
            REFRESH_TEXT
        } else {
            UNKNOWN_BUTTON_NOTICE
        };
        let outcome = match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => messenger.answer_callback_query(query_id, text).await,
            Err(e) => Err(TelegramFailure::fatal(e.to_string())),
        };
        let command = match outcome {
            Ok(()) => ChatCommand::RecordCallbackAnswered {
                update_id: turn.update_id,
                text: text.to_owned(),
                reset_conversation: refresh,
            },
            // A callback query expires within seconds: a late retry would only fail again.
            Err(failure) => ChatCommand::FailTurn {
                update_id: turn.update_id,
                step: TurnStep::Send,
                class: FailureClass::Terminal,
                error: failure.message,
                blocks_chat: false,
            },
        };
        self.record(work, bot.id, command, metadata).await?;
        Ok(Next::Continue)
    }

    async fn ask_llm(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        user_text: String,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let mut history = Vec::with_capacity(chat.conversation.history.len());
        for (user, assistant) in &chat.conversation.history {
            // A forgotten exchange is left out of the prompt.
            if let (Some(user), Some(assistant)) = (
                self.vault.open(user).await?,
                self.vault.open(assistant).await?,
            ) {
                history.push(HistoryTurn { user, assistant });
            }
        }
        let request = LlmRequest {
            model: bot.model.clone(),
            instructions: bot.instructions.clone(),
            user_text,
            previous_response_id: chat.conversation.previous_response_id.clone(),
            history,
        };
        let typing = self.show_typing(bot, chat);
        let started = std::time::Instant::now();
        let result = self.llm.respond(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if let Some(typing) = typing {
            typing.abort();
        }
        crate::metrics::llm_call(&bot.model, elapsed_ms as f64 / 1000.0, result.is_ok());
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
                crate::metrics::tokens(
                    priced_model,
                    usage.input_tokens,
                    usage.cached_input_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                );
                crate::metrics::cost(priced_model, cost);
                if bot.last_error_kind.as_deref() == Some("llm") {
                    let clear = BotCommand::ClearError {
                        kind: "llm".to_owned(),
                    };
                    let _ = self
                        .bots
                        .execute(&bot.id.to_string(), clear, metadata)
                        .await;
                }
                let response = GeneratedResponse {
                    text: self.vault.seal(subject(chat, turn), &reply.text).await?,
                    kind: ResponseKind::Llm {
                        model: reply.model,
                        response_id: reply.response_id,
                        usage,
                        cost_micro_usd: cost,
                    },
                };
                self.record(
                    work,
                    bot.id,
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
                    work,
                    bot.id,
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
                    work,
                    bot.id,
                    ChatCommand::RecordResponse {
                        update_id: turn.update_id,
                        response: GeneratedResponse {
                            text: self
                                .vault
                                .seal(subject(chat, turn), &bot.error_message)
                                .await?,
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

    /// Keeps the "typing…" indicator up while the LLM works.
    fn show_typing(&self, bot: &BotRow, chat: &Chat) -> Option<tokio::task::JoinHandle<()>> {
        let chat_id = chat.telegram_chat.as_ref()?.id;
        let messenger = self.telegram.bot(bot.id, &bot.token_ciphertext).ok()?;
        Some(tokio::spawn(async move {
            loop {
                if let Err(failure) = messenger.send_typing(chat_id).await {
                    tracing::debug!(error = %failure.message, "typing indicator failed");
                }
                tokio::time::sleep(TYPING_REFRESH).await;
            }
        }))
    }

    async fn send(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot: &BotRow,
        chat: &Chat,
        turn: &OpenTurn,
        response: &GeneratedResponse,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        let Some(telegram_chat) = &chat.telegram_chat else {
            return Ok(Next::Pause);
        };
        let is_group = matches!(telegram_chat.kind.as_str(), "group" | "supergroup");
        let messenger = match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => messenger,
            Err(e) => {
                let fail = ChatCommand::FailTurn {
                    update_id: turn.update_id,
                    step: TurnStep::Send,
                    class: FailureClass::Fatal,
                    error: e.to_string(),
                    blocks_chat: false,
                };
                self.record(work, bot.id, fail, metadata).await?;
                return Ok(Next::Continue);
            }
        };
        let Some(text) = self.vault.open(&response.text).await? else {
            return self.forgotten(work, bot.id, turn, metadata).await;
        };
        let mut message_ids = Vec::new();
        for part in split_message(&text, TELEGRAM_MESSAGE_LIMIT) {
            self.pacer
                .wait_turn(bot.id, telegram_chat.id, is_group)
                .await;
            let sent = messenger
                .send_part(telegram_chat.id, &to_telegram_html(&part), &part)
                .await;
            match sent {
                Ok(message_id) => {
                    crate::metrics::telegram_call("sendMessage", 200);
                    message_ids.push(message_id)
                }
                Err(failure) => {
                    crate::metrics::telegram_call("sendMessage", failure.code);
                    return self.send_failed(work, bot, turn, failure, metadata).await;
                }
            }
        }
        // The window in which a crash makes a resend: between the last send and this record.
        self.record(
            work,
            bot.id,
            ChatCommand::RecordSent {
                update_id: turn.update_id,
                telegram_message_ids: message_ids,
            },
            metadata,
        )
        .await?;
        crate::metrics::turn_completed(bot.id);
        Ok(Next::Continue)
    }

    async fn send_failed(
        &self,
        work: &mut LoadedAggregate<Chat>,
        bot: &BotRow,
        turn: &OpenTurn,
        failure: TelegramFailure,
        metadata: &EventMetadata,
    ) -> Result<Next, TurnError> {
        if let Some(to_chat_id) = failure.migrated_to {
            // The group is a supergroup now: move the chat and send again at once.
            self.record(
                work,
                bot.id,
                ChatCommand::RecordMigration { to_chat_id },
                metadata,
            )
            .await?;
            return Ok(Next::Continue);
        }
        if let Some(pause) = failure.retry_after {
            self.pacer.pause_bot(bot.id, pause);
        }
        let attempt = turn.attempts + 1;
        let retry = failure.class == FailureClass::Retryable && attempt < self.max_attempts;
        tracing::warn!(attempt, retry, error = %failure.message, "sending to Telegram failed");
        if retry {
            let retry_at = Utc::now() + self.backoff.pause(attempt, failure.retry_after);
            let record = ChatCommand::RecordAttemptFailure {
                update_id: turn.update_id,
                step: TurnStep::Send,
                class: FailureClass::Retryable,
                error: failure.message,
                retry_at: Some(retry_at),
            };
            self.record(work, bot.id, record, metadata).await?;
            return Ok(Next::Pause);
        }
        if failure.invalid_token {
            self.record_bot_error(
                bot.id,
                aggregates::bot::INVALID_TOKEN_ERROR,
                &failure.message,
                metadata,
            )
            .await;
        }
        let class = match failure.class {
            FailureClass::Retryable => FailureClass::Terminal,
            class => class,
        };
        let fail = ChatCommand::FailTurn {
            update_id: turn.update_id,
            step: TurnStep::Send,
            class,
            error: failure.message,
            // Blocked, kicked, deactivated, not found: the chat itself is out of reach.
            blocks_chat: failure.class == FailureClass::Terminal,
        };
        self.record(work, bot.id, fail, metadata).await?;
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

/// How long the runner trusts the bot settings it read: a bot disabled or changed is seen by
/// the turns within this time.
const BOT_ROW_FRESHNESS: Duration = Duration::from_secs(1);

/// Bots' settings as the runner last read them, shared by all the chats it works.
#[derive(Default)]
pub struct BotCache {
    rows: std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, Option<BotRow>)>>,
}

impl BotCache {
    async fn get(&self, pool: &PgPool, bot_id: Uuid) -> Result<Option<BotRow>, sqlx::Error> {
        {
            let rows = self.rows.lock().expect("bot cache lock");
            if let Some((read_at, row)) = rows.get(&bot_id) {
                if read_at.elapsed() < BOT_ROW_FRESHNESS {
                    return Ok(row.clone());
                }
            }
        }
        let row = find_bot(pool, bot_id).await?;
        let mut rows = self.rows.lock().expect("bot cache lock");
        if rows.len() > 10_000 {
            rows.retain(|_, (read_at, _)| read_at.elapsed() < BOT_ROW_FRESHNESS);
        }
        rows.insert(bot_id, (std::time::Instant::now(), row.clone()));
        Ok(row)
    }
}

/// How long a chat's claim lasts without renewal; renewed at a third of it.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    lease / 3
}

/// Whose personal data a turn's texts are: the person who wrote, else the chat.
fn subject(chat: &Chat, turn: &OpenTurn) -> i64 {
    turn.from_user_id
        .or_else(|| chat.telegram_chat.as_ref().map(|c| c.id))
        .unwrap_or_default()
}
