//! The generate step: a turn's response, from a command's fixed reply, the notice that only
//! text is read, or the LLM (priced, with the typing indicator up while it works). When the
//! LLM fails for good, the bot's error message is the response ([`super::policy`]).

use std::time::Duration;

use aggregates::chat::{BotCommandName, Chat, ResponseKind, TokenUsage};
use projections::bots::BotRow;

use super::policy::{self, LlmBot, LlmOutcome, Next, Unanswerable};
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::llm::{HistoryTurn, LlmReply, LlmRequest};
use aggregates::ids::BotErrorKind;

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

/// How often the typing indicator is refreshed (Telegram shows it for about 5 s).
const TYPING_REFRESH: Duration = Duration::from_secs(4);

impl TurnWorker {
    /// A photo, sticker, voice message…: answered with a notice, without the LLM.
    pub(super) async fn answer_media(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
    ) -> Result<Next, TurnError> {
        self.respond(work, ctx, MEDIA_NOTICE, ResponseKind::Notice, false)
            .await?;
        Ok(Next::Continue)
    }

    /// A text message: a command's fixed reply, else the LLM's.
    pub(super) async fn generate(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<Next, TurnError> {
        let Some(user_text) = self.vault.open(&ctx.turn.user_text).await? else {
            let decision = policy::unanswerable(ctx.turn, Unanswerable::Forgotten);
            return self.carry_out(work, ctx, decision).await;
        };
        let Some(command) = BotCommandName::parse(&user_text, None) else {
            return self.ask_llm(work, ctx, bot, user_text).await;
        };
        let (text, reset) = match command {
            BotCommandName::Start => (bot.start_message.as_str(), false),
            BotCommandName::Help => (HELP_TEXT, false),
            BotCommandName::Refresh => (REFRESH_TEXT, true),
        };
        self.respond(work, ctx, text, ResponseKind::Command { command }, reset)
            .await?;
        Ok(Next::Continue)
    }

    async fn ask_llm(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        user_text: String,
    ) -> Result<Next, TurnError> {
        let request = self.llm_request(ctx.chat, bot, user_text).await?;
        let typing = self.show_typing(bot, ctx.chat);
        let started = std::time::Instant::now();
        let result = self.llm.respond(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if let Some(typing) = typing {
            typing.abort();
        }
        crate::metrics::llm_call(&bot.model, elapsed_ms as f64 / 1000.0, result.is_ok());
        let llm_bot = LlmBot {
            shows_llm_error: self
                .bot_rows
                .shows_error(ctx.bot_id, bot, BotErrorKind::Llm),
            error_message: &bot.error_message,
        };
        let decision = match result {
            Ok(reply) => {
                let kind = self.priced(bot, &reply, elapsed_ms);
                let answered = LlmOutcome::Answered {
                    text: reply.text,
                    kind,
                };
                policy::after_llm(ctx.turn, answered, &llm_bot, &self.retries())
            }
            Err(error) => {
                let failed = LlmOutcome::Failed(&error);
                let decision = policy::after_llm(ctx.turn, failed, &llm_bot, &self.retries());
                let (attempt, retry) = (ctx.turn.attempts + 1, decision.next == Next::Pause);
                tracing::warn!(elapsed_ms, attempt, retry, error = %error, "LLM call failed");
                decision
            }
        };
        self.carry_out(work, ctx, decision).await
    }

    /// The request for this turn, with the chat's own history (a forgotten exchange is left
    /// out of the prompt).
    async fn llm_request(
        &self,
        chat: &Chat,
        bot: &BotRow,
        user_text: String,
    ) -> Result<LlmRequest, TurnError> {
        let mut history = Vec::with_capacity(chat.conversation.history.len());
        for (user, assistant) in &chat.conversation.history {
            if let (Some(user), Some(assistant)) = (
                self.vault.open(user).await?,
                self.vault.open(assistant).await?,
            ) {
                history.push(HistoryTurn { user, assistant });
            }
        }
        Ok(LlmRequest {
            model: bot.model.clone(),
            instructions: bot.instructions.clone(),
            user_text,
            previous_response_id: chat.conversation.previous_response_id.clone(),
            history,
        })
    }

    /// What the answer cost, counted in the metrics; how the response was made.
    fn priced(&self, bot: &BotRow, reply: &LlmReply, elapsed_ms: u64) -> ResponseKind {
        let usage = TokenUsage {
            input_tokens: reply.usage.input_tokens,
            cached_input_tokens: reply.usage.cached_input_tokens,
            output_tokens: reply.usage.output_tokens,
            reasoning_tokens: reply.usage.reasoning_tokens,
        };
        // Priced as the model the provider says answered (a dated snapshot of the one asked
        // for, say), else as the one asked for.
        let priced_model = if reply.model.is_empty() {
            &bot.model
        } else {
            &reply.model
        };
        let cost = self
            .prices
            .cost_micro_usd(priced_model, &reply.usage)
            .unwrap_or_else(|| {
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
        ResponseKind::Llm {
            model: reply.model.clone(),
            response_id: reply.response_id.clone(),
            usage,
            cost_micro_usd: cost,
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
}
