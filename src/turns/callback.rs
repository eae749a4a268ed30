//! The callback step: a button press is answered promptly with answerCallbackQuery; the
//! `refresh` button resets the conversation.

use aggregates::chat::Chat;
use projections::bots::BotRow;

use super::generate::REFRESH_TEXT;
use super::policy::{self, CallbackAnswer, Next};
use super::worker::{TurnContext, TurnError, TurnWorker};
use crate::event_store::LoadedAggregate;
use crate::telegram::failures::TelegramFailure;

/// The answer to a button press whose data this bot does not know.
pub const UNKNOWN_BUTTON_NOTICE: &str = "Sorry, this button no longer does anything.";

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
        let answer = CallbackAnswer {
            text: if refresh {
                REFRESH_TEXT
            } else {
                UNKNOWN_BUTTON_NOTICE
            },
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
