//! The callback step: a button press is answered promptly with answerCallbackQuery; the
//! `refresh` button resets the conversation.

use aggregates::chat::Chat;
use projections::bots::BotRow;

use aggregates::bot::texts::TextKey;

use super::policy::{self, CallbackAnswer, Next};
use super::texts::system_text;
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::telegram::failures::TelegramFailure;

impl TurnWorker {
    pub(super) async fn answer_callback(
        &self,
        work: &mut LoadedAggregate<Chat>,
        ctx: &TurnContext<'_>,
        bot: &BotRow,
        query_id: &str,
        data: Option<&str>,
    ) -> Result<Next, TurnError> {
        let refresh = data == Some("refresh");
        let key = if refresh {
            TextKey::Refresh
        } else {
            TextKey::UnknownButton
        };
        let text = system_text(bot, key, ctx.turn.language.as_deref());
        let answer = CallbackAnswer {
            text: &text,
            reset_conversation: refresh,
        };
        let outcome = match self.telegram.bot(bot.id, &bot.token_ciphertext) {
            Ok(messenger) => messenger.answer_callback_query(query_id, answer.text).await,
            Err(e) => Err(TelegramFailure::fatal(e.to_string())),
        };
        let decision = policy::after_callback(ctx.turn, &answer, outcome);
        self.carry_out(work, ctx, decision).await
    }
}
