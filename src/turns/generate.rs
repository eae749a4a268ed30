//! The generate step: a turn's response, from a command's fixed reply, the notice that only
//! text is read, or the LLM (priced, charged to the person, with the typing indicator up while
//! it works). Every turn is screened first ([`super::screen`]). When the LLM fails for good,
//! the bot's error message is the response ([`super::policy`]).

use std::time::Duration;

use aggregates::bot::texts::TextKey;
use aggregates::chat::{
    BotCommandName, Charge, Chat, ResponseKind, TokenUsage, TurnKind, ADDED_TO_GROUP,
};
use projections::allowances::person_usage;
use projections::bots::BotRow;

use super::context::{self, ContextPlan};
use super::policy::{self, LlmBot, LlmOutcome, Next, Unanswerable};
use super::screen::Screened;
use super::stream::LiveAnswer;
use super::texts::{system_text, usage_text};
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::llm::{
    ErrorClass, HistoryTurn, LlmError, LlmReply, LlmRequest, PromptImage, TokenUsage as LlmUsage,
};
use aggregates::ids::BotErrorKind;

/// How often the typing indicator is refreshed (Telegram shows it for about 5 s).
const TYPING_REFRESH: Duration = Duration::from_secs(4);

impl TurnWorker {
    /// A photo, sticker, voice message…: answered with a notice, without the LLM; the bot
    /// added to a group greets it.
    pub(super) async fn answer_media(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<Next, TurnError> {
        // A voice message, or an image for a model that takes images ([`super::media`]).
        if let Some(next) = self.answer_readable_media(work, ctx, bot).await? {
            return Ok(next);
        }
        if let Screened::Refused = self.screen(work, ctx, bot, false).await? {
            return Ok(Next::Continue);
        }
        let added_to_group =
            matches!(&ctx.turn.kind, TurnKind::Media { media } if media == ADDED_TO_GROUP);
        // A group the bot joined is greeted with its start message.
        let key = if added_to_group {
            TextKey::Start
        } else {
            TextKey::MediaNotice
        };
        let text = system_text(bot, key, ctx.turn.language.as_deref());
        self.respond(work, ctx, &text, ResponseKind::Notice, false)
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
        let command = BotCommandName::parse(&user_text, None);
        if let Screened::Refused = self.screen(work, ctx, bot, command.is_none()).await? {
            return Ok(Next::Continue);
        }
        let Some(command) = command else {
            return self.ask_llm(work, ctx, bot, user_text, Vec::new()).await;
        };
        let language = ctx.turn.language.as_deref();
        let (text, reset) = match command {
            BotCommandName::Start => (system_text(bot, TextKey::Start, language), false),
            BotCommandName::Help => (system_text(bot, TextKey::Help, language), false),
            BotCommandName::Refresh => (system_text(bot, TextKey::Refresh, language), true),
            BotCommandName::Usage => {
                let person = ctx.turn.from_user_id;
                let usage =
                    person_usage::usage_at(&self.pool, bot.id, person, self.clock.now()).await?;
                let limits = bot.policy.budgets.limits_for(person);
                (usage_text(bot, &usage, limits, language), false)
            }
        };
        self.respond(work, ctx, &text, ResponseKind::Command { command }, reset)
            .await?;
        Ok(Next::Continue)
    }

    /// Asks the model `user_text`, with the turn's `images` (a photo's) beside it.
    pub(super) async fn ask_llm(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        user_text: String,
        images: Vec<PromptImage>,
    ) -> Result<Next, TurnError> {
        let plan = self.context_plan(ctx, bot, &user_text).await?;
        let mut request = self.llm_request(ctx.chat, bot, user_text, &plan).await?;
        request.images.extend(images);
        let typing = self.show_typing(bot, ctx.chat);
        let started = std::time::Instant::now();
        let draft_id = super::stream::draft_id(ctx.turn.update_id);
        let result = match self
            .respond_live(bot, ctx.chat, draft_id, &request, &typing)
            .await
        {
            // Telegram refuses an empty message, and the person would get nothing: an empty
            // answer is a failed attempt (sampling again usually writes one), and when the
            // attempts run out the person gets the bot's error message.
            Ok(LiveAnswer::Complete(reply)) if reply.text.trim().is_empty() => Err(LlmError::new(
                ErrorClass::Retryable,
                "empty_answer",
                "the model's answer had no text",
            )),
            other => other,
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if let Some(typing) = typing {
            typing.abort();
        }
        crate::metrics::llm_call(&bot.model, elapsed_ms as f64 / 1000.0, result.is_ok());
        let language = ctx.turn.language.as_deref();
        let error_message = system_text(bot, TextKey::Error, language);
        let llm_bot = LlmBot {
            shows_llm_error: self
                .bot_rows
                .shows_error(ctx.bot_id, bot, BotErrorKind::Llm),
            error_message: &error_message,
        };
        let decision = match result {
            Ok(answer) => {
                let charge = Charge {
                    bot_id: ctx.bot_id,
                    person: ctx.turn.from_user_id,
                };
                let (reply, stopped) = match answer {
                    LiveAnswer::Complete(reply) => (reply, false),
                    LiveAnswer::Stopped { text } => {
                        let chain_tokens = request
                            .previous_response_id
                            .as_ref()
                            .map_or(0, |_| ctx.chat.conversation.last_input_tokens);
                        (stopped_reply(bot, &request, chain_tokens, text), true)
                    }
                };
                let mut kind = self.priced(bot, &reply, elapsed_ms, charge, plan.context_turns);
                if let ResponseKind::Llm { stopped: flag, .. } = &mut kind {
                    *flag = stopped;
                }
                let kind = super::media::with_transcription_cost(kind, ctx.turn);
                let text = if plan.new_conversation {
                    // The user learns why the bot no longer knows what was said before.
                    let line = system_text(bot, TextKey::NewConversation, language);
                    format!("{line}\n\n{}", reply.text)
                } else {
                    reply.text
                };
                let answered = LlmOutcome::Answered {
                    text,
                    kind,
                    new_conversation: plan.new_conversation,
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

    /// The context the model gets under the bot's conversation limits.
    async fn context_plan(
        &self,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        user_text: &str,
    ) -> Result<ContextPlan, TurnError> {
        let conversation = &ctx.chat.conversation;
        // Exchanges are sealed: their lengths are known only once opened, so they are opened
        // for the count only when a token limit needs it.
        let limits = bot.policy.conversation;
        let mut lengths = Vec::with_capacity(conversation.history.len());
        if limits.max_input_tokens.is_some() {
            for (user, assistant) in &conversation.history {
                let user = self.vault.open(user).await?.unwrap_or_default();
                let assistant = self.vault.open(assistant).await?.unwrap_or_default();
                lengths.push(user.chars().count() + assistant.chars().count());
            }
        }
        let prompt_chars = user_text.chars().count() + bot.instructions.chars().count();
        Ok(context::plan(
            conversation,
            &limits,
            ctx.turn.sent_at,
            self.llm.keeps_conversation(),
            prompt_chars,
            |index| lengths.get(index).copied().unwrap_or(0),
        ))
    }

    /// The request for this turn, with the exchanges the plan keeps (a forgotten exchange is
    /// left out of the prompt).
    async fn llm_request(
        &self,
        chat: &Chat,
        bot: &BotRow,
        user_text: String,
        plan: &ContextPlan,
    ) -> Result<LlmRequest, TurnError> {
        let mut history = Vec::with_capacity(plan.history.len());
        // The images of the exchanges sent along, by their place in `history`.
        let mut earlier = Vec::new();
        let exchanges = chat.conversation.history.range(plan.history.clone());
        for (index, (user, assistant)) in (plan.history.start..).zip(exchanges) {
            if let (Some(user), Some(assistant)) = (
                self.vault.open(user).await?,
                self.vault.open(assistant).await?,
            ) {
                if let Some(image) = chat.conversation.image_at(index) {
                    earlier.push((history.len(), image.clone()));
                }
                history.push(HistoryTurn { user, assistant });
            }
        }
        Ok(LlmRequest {
            model: bot.model.clone(),
            instructions: bot.instructions.clone(),
            user_text,
            previous_response_id: plan.previous_response_id.clone(),
            history,
            images: self.earlier_images(bot, &earlier).await,
        })
    }

    /// What the answer cost, counted in the metrics; how the response was made.
    fn priced(
        &self,
        bot: &BotRow,
        reply: &LlmReply,
        elapsed_ms: u64,
        charge: Charge,
        context_turns: u32,
    ) -> ResponseKind {
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
            charged_to: Some(charge),
            context_turns: Some(context_turns),
            stopped: false,
        }
    }

    /// Keeps the "typing…" indicator up while the LLM works.
    pub(super) fn show_typing(
        &self,
        bot: &BotRow,
        chat: &Chat,
    ) -> Option<tokio::task::JoinHandle<()>> {
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

/// A stopped answer as the reply it stands for: the text written so far, and usage estimated
/// from lengths (a stream cancelled midway reports none; the provider bills what it produced).
/// Input: the request's text, images at a flat rate, and the chain a `previous_response_id`
/// replays (`chain_tokens`, the last turn's input); output: the written text.
fn stopped_reply(bot: &BotRow, request: &LlmRequest, chain_tokens: u64, text: String) -> LlmReply {
    /// What one image costs as input, roughly: a 1024×1024 image in tiles of OpenAI's models.
    const TOKENS_PER_IMAGE: u64 = 765;
    let history_chars: usize = request
        .history
        .iter()
        .map(|turn| turn.user.chars().count() + turn.assistant.chars().count())
        .sum();
    let request_chars =
        request.instructions.chars().count() + request.user_text.chars().count() + history_chars;
    // A stop before any text (the button shows only on a draft with text, but the text may
    // be blank) still needs a message to send: Telegram refuses an empty one.
    let text = if text.trim().is_empty() {
        "…".to_owned()
    } else {
        text
    };
    let input_tokens = chain_tokens
        + context::estimated_tokens(request_chars)
        + TOKENS_PER_IMAGE * request.images.len() as u64;
    LlmReply {
        usage: LlmUsage {
            input_tokens,
            cached_input_tokens: 0,
            output_tokens: context::estimated_tokens(text.chars().count()),
            reasoning_tokens: 0,
        },
        text,
        // An unfinished response cannot be continued: the next turn sends the conversation.
        response_id: None,
        model: bot.model.clone(),
    }
}
