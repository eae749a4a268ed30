//! The Telegram calls the effect runner makes while answering a chat, behind a trait: the
//! runner codes against [`Messenger`] only, so it can be driven in-process with a fake, as
//! `LanguageModel` (in the llm room) allows for the model. [`TelegramClients`] is the real one
//! (the Bot API over HTTP, [`super::bot_api`]).
//!
//! Two steps, because a bot's token is opened before anything is said: a bot whose sealed
//! token cannot be opened fails its turn without a call being made (and without a call being
//! counted), while a failed call is classified like any other ([`TelegramFailure`]).

use std::sync::Arc;

use teloxide_core::payloads::{
    AnswerCallbackQuery, AnswerCallbackQuerySetters, LeaveChat, SendChatAction, SendMessage,
    SendMessageSetters,
};
use teloxide_core::types::{CallbackQueryId, ChatAction, ChatId, ParseMode};
use uuid::Uuid;

use super::bot_api::BotEndpoint;
use super::drafts::LivePreview;
use super::failures::TelegramFailure;
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

    /// Fetches a file the chat sent (getFile, then the download), refusing one over
    /// `max_bytes`. The download address holds the bot's token and never leaves the call.
    async fn download_file(
        &self,
        file_id: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, super::files::DownloadError> {
        let _ = (file_id, max_bytes);
        Err(super::files::DownloadError::Failed(TelegramFailure::fatal(
            "this messenger cannot fetch files".to_owned(),
        )))
    }

    /// Shows "typing…" in the chat for about 5 s.
    async fn send_typing(&self, chat_id: i64) -> Result<(), TelegramFailure>;

    /// The calls that show an answer while it is written, when this messenger can make them;
    /// without them, answers are shown only once complete.
    fn live_preview(&self) -> Option<&dyn LivePreview> {
        None
    }

    /// Answers a button press (answerCallbackQuery) with `text`.
    async fn answer_callback_query(
        &self,
        query_id: &str,
        text: &str,
    ) -> Result<(), TelegramFailure>;

    /// Leaves a group the bot may not serve (leaveChat).
    async fn leave_chat(&self, chat_id: i64) -> Result<(), TelegramFailure>;
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
impl BotMessenger for BotEndpoint {
    async fn send_part(
        &self,
        chat_id: i64,
        html: &str,
        plain: &str,
    ) -> Result<i64, TelegramFailure> {
        let formatted = SendMessage::new(ChatId(chat_id), html).parse_mode(ParseMode::Html);
        let message = match self.call(&formatted).await {
            Ok(message) => message,
            Err(failure) if failure.cant_parse_entities => {
                tracing::info!(reason = %failure.message, "Telegram refused the formatting; sending plain text");
                self.call(&SendMessage::new(ChatId(chat_id), plain)).await?
            }
            Err(failure) => return Err(failure),
        };
        Ok(i64::from(message.id.0))
    }

    async fn download_file(
        &self,
        file_id: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, super::files::DownloadError> {
        super::files::download(self, file_id, max_bytes).await
    }

    fn live_preview(&self) -> Option<&dyn LivePreview> {
        Some(self)
    }

    async fn send_typing(&self, chat_id: i64) -> Result<(), TelegramFailure> {
        self.call(&SendChatAction::new(ChatId(chat_id), ChatAction::Typing))
            .await
            .map(|_| ())
    }

    async fn answer_callback_query(
        &self,
        query_id: &str,
        text: &str,
    ) -> Result<(), TelegramFailure> {
        let answer = AnswerCallbackQuery::new(CallbackQueryId(query_id.to_owned())).text(text);
        self.call(&answer).await.map(|_| ())
    }

    async fn leave_chat(&self, chat_id: i64) -> Result<(), TelegramFailure> {
        self.call(&LeaveChat::new(ChatId(chat_id)))
            .await
            .map(|_| ())
    }
}
