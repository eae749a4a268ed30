//! The screening step: before a turn's response is made, the bot's policy decides whether it
//! goes ahead (the Chat records a refusal, [`aggregates::chat::Screening`]). A refused turn
//! gets its notice in the person's language, and the bot leaves a group it may not serve.
//!
//! A bot without a policy costs nothing here; one with budgets costs one indexed read of the
//! usage read model per turn that asks the model.

use std::sync::Arc;

use aggregates::bot::policy::Usage;
use aggregates::chat::{
    Chat, ChatCommand, FailureClass, ResponseKind, Screening, TurnRefusal, TurnStep,
};
use projections::allowances::person_usage;
use projections::bots::BotRow;

use super::policy::Next;
use super::texts::refusal_text;
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;

/// What screening came to.
pub(super) enum Screened {
    /// The turn goes ahead.
    Pass,
    /// The turn was refused (or moved on meanwhile): the worker looks at the chat again.
    Refused,
}

impl TurnWorker {
    /// Screens the turn; `asks_model` for a text that is no command (budgets and the rate
    /// apply only then).
    pub(super) async fn screen(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        asks_model: bool,
    ) -> Result<Screened, TurnError> {
        let policy: &Arc<_> = &bot.policy.0;
        if !policy.screens_anything() {
            return Ok(Screened::Pass);
        }
        let now = self.clock.now();
        let person = ctx.turn.from_user_id;
        let usage = if asks_model && policy.budgets.counts_use() {
            person_usage::usage_at(&self.pool, bot.id, person, now).await?
        } else {
            Usage::default()
        };
        let username = match (&ctx.turn.from_username, policy.needs_username(person)) {
            (Some(sealed), true) => self.vault.open(sealed).await?,
            _ => None,
        };
        let command = ChatCommand::ScreenTurn {
            update_id: ctx.turn.update_id,
            screening: Screening {
                policy: policy.clone(),
                username,
                asks_model,
                usage,
                now,
            },
        };
        self.record(work, ctx.bot_id, command, &ctx.metadata)
            .await?;
        let unchanged = work
            .state()
            .open_turns
            .iter()
            .any(|t| t.update_id == ctx.turn.update_id && t.refusal.is_none());
        Ok(if unchanged {
            Screened::Pass
        } else {
            Screened::Refused
        })
    }

    /// A refused turn: its notice, else (refused without one) the leave that is left.
    pub(super) async fn answer_refusal(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        refusal: TurnRefusal,
    ) -> Result<Next, TurnError> {
        if refusal.notified {
            let text = refusal_text(bot, &refusal, ctx.turn.language.as_deref());
            let kind = ResponseKind::Refusal {
                reason: refusal.reason,
            };
            self.respond(work, ctx, &text, kind, false).await?;
            return Ok(Next::Continue);
        }
        self.leave_group(work, ctx, bot).await?;
        Ok(Next::Continue)
    }

    /// Leaves the group (leaveChat) and records it. A leave Telegram refuses ends a turn still
    /// open as a failure: the next refused message tries again.
    pub(super) async fn leave_group(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
    ) -> Result<(), TurnError> {
        let Some(chat) = &ctx.chat.telegram_chat else {
            return Ok(());
        };
        let outcome = match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => messenger.leave_chat(chat.id).await,
            Err(e) => Err(crate::telegram::failures::TelegramFailure::fatal(
                e.to_string(),
            )),
        };
        let update_id = ctx.turn.update_id;
        let command = match outcome {
            Ok(()) => ChatCommand::RecordLeft { update_id },
            Err(failure) => {
                tracing::warn!(error = %failure.message, "cannot leave the group");
                let still_open = work
                    .state()
                    .open_turns
                    .iter()
                    .any(|t| t.update_id == update_id);
                if !still_open {
                    return Ok(());
                }
                ChatCommand::FailTurn {
                    update_id,
                    step: TurnStep::Send,
                    class: FailureClass::Terminal,
                    error: format!("cannot leave the group: {}", failure.message),
                    blocks_chat: false,
                }
            }
        };
        self.record(work, ctx.bot_id, command, &ctx.metadata).await
    }
}
