//! The send step: the recorded response to Telegram, split into parts Telegram accepts, each
//! as HTML converted from the LLM's Markdown (plain text when Telegram refuses the
//! formatting), each when the flood limits allow; then `ResponseSent` is recorded.

use aggregates::chat::{Chat, GeneratedResponse};
use projections::bots::BotRow;
use uuid::Uuid;

use super::policy::{self, Next, Unanswerable};
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::telegram::failures::TelegramFailure;
use crate::telegram::markdown::render_parts;
use crate::telegram::split::TELEGRAM_MESSAGE_LIMIT;
use crate::telegram::BotMessenger;

impl TurnWorker {
    pub(super) async fn send(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        response: &GeneratedResponse,
    ) -> Result<Next, TurnError> {
        let Some(telegram_chat) = &ctx.chat.telegram_chat else {
            return Ok(Next::Pause);
        };
        let is_group = matches!(telegram_chat.kind.as_str(), "group" | "supergroup");
        let messenger = match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => messenger,
            Err(e) => {
                let decision =
                    policy::unanswerable(ctx.turn, Unanswerable::TokenUnreadable(e.to_string()));
                return self.carry_out(work, ctx, decision).await;
            }
        };
        let Some(text) = self.vault.open(&response.text).await? else {
            let decision = policy::unanswerable(ctx.turn, Unanswerable::Forgotten);
            return self.carry_out(work, ctx, decision).await;
        };
        let outcome = self
            .send_parts(&*messenger, bot.id, telegram_chat.id, is_group, &text)
            .await;
        let sent = outcome.is_ok();
        // A migration is no failure: the reply goes to the supergroup at once.
        let failed = outcome
            .as_ref()
            .err()
            .filter(|failure| failure.migrated_to.is_none())
            .map(|failure| failure.message.clone());
        let decision = policy::after_send(ctx.turn, outcome, &self.retries());
        if let Some(error) = failed {
            let (attempt, retry) = (ctx.turn.attempts + 1, decision.next == Next::Pause);
            tracing::warn!(attempt, retry, %error, "sending to Telegram failed");
        }
        let next = self.carry_out(work, ctx, decision).await?;
        if sent {
            crate::metrics::turn_completed(bot.id);
            // The group heard why the bot cannot serve it; now the bot goes.
            if ctx.turn.refusal.is_some_and(|r| r.leave_chat) {
                self.leave_group(work, ctx, bot).await?;
            }
        }
        Ok(next)
    }

    /// Sends the parts in order, each when the pacer allows; stops at the first one Telegram
    /// refuses (a retry sends them all again). Returns the message ids.
    async fn send_parts(
        &self,
        messenger: &dyn BotMessenger,
        bot_id: Uuid,
        chat_id: i64,
        is_group: bool,
        text: &str,
    ) -> Result<Vec<i64>, TelegramFailure> {
        let mut message_ids = Vec::new();
        for part in render_parts(text, TELEGRAM_MESSAGE_LIMIT) {
            self.pacer.wait_turn(bot_id, chat_id, is_group).await;
            // Each call is counted by the transport (`botfleet_telegram_calls_total`).
            let message_id = messenger
                .send_part(chat_id, &part.html, &part.plain)
                .await?;
            message_ids.push(message_id);
        }
        Ok(message_ids)
    }
}
