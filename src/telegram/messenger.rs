//! The Telegram calls the effect runner makes while answering a chat, behind a trait: the
//! runner codes against [`Messenger`] only, so it can be driven in-process with a fake, as
//! `LanguageModel` (in the llm room) allows for the model. [`TelegramClients`] is the real one
//! (teloxide-core).
//!
//! Two steps, because a bot's token is opened before anything is said: a bot whose sealed
//! token cannot be opened fails its turn without a call being made (and without a call being
//! counted), while a failed call is classified like any other ([`TelegramFailure`]).

use std::sync::Arc;

use teloxide_core::payloads::{AnswerCallbackQuerySetters, SendMessageSetters};
use teloxide_core::requests::Requester;
use teloxide_core::types::{CallbackQueryId, ChatAction, ChatId, ParseMode};
use teloxide_core::{ApiError, RequestError};
use uuid::Uuid;

use super::failures::{classify, TelegramFailure};
use super::TelegramClients;
use crate::secrets::UnsealError;

/// Telegram, as seen by the bots whose turns are worked.
pub trait Messenger: Send + Sync {
    /// `bot_id` speaking with its own token (`token_ciphertext`, sealed); refused when the
    /// token cannot be opened.
    fn bot(
        &self,
        bot_id: Uuid,
        token_ciphertext: &str,
    ) -> Result<Arc<dyn BotMessenger>, UnsealError>;
}

/// The calls one bot makes while working a turn; none retries (the runner owns retries).
#[async_trait::async_trait]
pub trait BotMessenger: Send + Sync {
    /// Sends one part of a reply as Telegram HTML; when Telegram cannot parse its entities,
    /// sends `plain` instead, so that a reply is never lost to its formatting. Returns the id
    /// of the message that arrived.
    async fn send_part(
        &self,
        chat_id: i64,
        html: &str,
        plain: &str,
    ) -> Result<i64, TelegramFailure>;

    /// Shows "typing…" in the chat for about 5 s.
    async fn send_typing(&self, chat_id: i64) -> Result<(), TelegramFailure>;

    /// Answers a button press (answerCallbackQuery) with `text`.
    async fn answer_callback_query(
        &self,
        query_id: &str,
        text: &str,
    ) -> Result<(), TelegramFailure>;
}

impl Messenger for TelegramClients {
    fn bot(
        &self,
        bot_id: Uuid,
        token_ciphertext: &str,
    ) -> Result<Arc<dyn BotMessenger>, UnsealError> {
        Ok(Arc::new(self.client(bot_id, token_ciphertext)?))
    }
}

#[async_trait::async_trait]
impl BotMessenger for teloxide_core::Bot {
    async fn send_part(
        &self,
        chat_id: i64,
        html: &str,
        plain: &str,
    ) -> Result<i64, TelegramFailure> {
        let formatted = self
            .send_message(ChatId(chat_id), html)
            .parse_mode(ParseMode::Html)
            .await;
        let message = match formatted {
            Ok(message) => message,
            Err(RequestError::Api(ApiError::CantParseEntities(reason))) => {
                tracing::info!(%reason, "Telegram refused the formatting; sending plain text");
                self.send_message(ChatId(chat_id), plain)
                    .await
                    .map_err(|e| classify(&e))?
            }
            Err(e) => return Err(classify(&e)),
        };
        Ok(i64::from(message.id.0))
    }

    async fn send_typing(&self, chat_id: i64) -> Result<(), TelegramFailure> {
        self.send_chat_action(ChatId(chat_id), ChatAction::Typing)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn answer_callback_query(
        &self,
        query_id: &str,
        text: &str,
    ) -> Result<(), TelegramFailure> {
        Requester::answer_callback_query(self, CallbackQueryId(query_id.to_owned()))
            .text(text)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
