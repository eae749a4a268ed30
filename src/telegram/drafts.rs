//! Showing an answer while it is written: the Bot API calls behind a live preview.
//!
//! - In a private chat, `sendMessageDraft` (Bot API 9.3, every bot since 9.5): an animated,
//!   ephemeral draft that Telegram drops by itself after about 30 s, or as soon as the bot sends
//!   any other message. teloxide-core has no payload for it, so it goes as a raw call on the
//!   same client ([`BotEndpoint::call_method`]).
//! - In a group (no drafts there), one plain message, edited as the text grows, then deleted.
//!
//! A preview is never the answer: the answer is always sent afterwards as real messages by the
//! send step, so every failure here only costs the preview.

use serde::Serialize;
use teloxide_core::payloads::{DeleteMessage, EditMessageText, SendMessage};
use teloxide_core::types::{ChatId, MessageId};

use super::bot_api::BotEndpoint;
use super::failures::TelegramFailure;

/// A draft or preview holds at most this many characters of the text; Telegram takes 4096
/// after entity parsing (counted in UTF-16 units), so some room is kept.
pub const PREVIEW_CHARS: usize = 4000;

/// The calls a live preview makes. None retries: a preview that fails is skipped.
#[async_trait::async_trait]
pub trait LivePreview: Send + Sync {
    /// Shows `text` as the draft `draft_id` (non-zero) in the private chat `chat_id`, with a
    /// button that lets the person stop the answer.
    async fn send_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        text: &str,
    ) -> Result<(), TelegramFailure>;

    /// Sends `text` (plain) as a new message and returns its id.
    async fn send_preview(&self, chat_id: i64, text: &str) -> Result<i64, TelegramFailure>;

    /// Replaces the message's text (plain); an edit that changes nothing is no failure.
    async fn edit_preview(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<(), TelegramFailure>;

    /// Deletes the preview message.
    async fn delete_preview(&self, chat_id: i64, message_id: i64) -> Result<(), TelegramFailure>;
}

#[derive(Serialize)]
struct SendMessageDraft<'a> {
    chat_id: i64,
    draft_id: i64,
    text: &'a str,
    /// The stop button (Bot API 10.3): pressing it sends a `stopped_message_generation`
    /// update; a server that predates it ignores the field.
    can_stop: bool,
    /// The draft stays up after a stop until the answer (what was written) is sent.
    keep_on_stop: bool,
}

#[async_trait::async_trait]
impl LivePreview for BotEndpoint {
    async fn send_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        text: &str,
    ) -> Result<(), TelegramFailure> {
        let draft = SendMessageDraft {
            chat_id,
            draft_id,
            text,
            can_stop: true,
            keep_on_stop: true,
        };
        self.call_method::<bool>("sendMessageDraft", &draft, self.call_timeout())
            .await
            .map(|_| ())
    }

    async fn send_preview(&self, chat_id: i64, text: &str) -> Result<i64, TelegramFailure> {
        let message = self.call(&SendMessage::new(ChatId(chat_id), text)).await?;
        Ok(i64::from(message.id.0))
    }

    async fn edit_preview(
        &self,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Result<(), TelegramFailure> {
        let id = MessageId(i32::try_from(message_id).unwrap_or(i32::MAX));
        match self
            .call(&EditMessageText::new(ChatId(chat_id), id, text))
            .await
        {
            Ok(_) => Ok(()),
            Err(failure) if failure.not_modified => Ok(()),
            Err(failure) => Err(failure),
        }
    }

    async fn delete_preview(&self, chat_id: i64, message_id: i64) -> Result<(), TelegramFailure> {
        let id = MessageId(i32::try_from(message_id).unwrap_or(i32::MAX));
        self.call(&DeleteMessage::new(ChatId(chat_id), id))
            .await
            .map(|_| ())
    }
}

/// The start of `text` a preview can hold, marked as unfinished.
pub fn preview_text(text: &str) -> String {
    let mut shown: String = text.chars().take(PREVIEW_CHARS).collect();
    shown.push_str(" …");
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_bounded_and_marked_unfinished() {
        assert_eq!(preview_text("Hello"), "Hello …");
        let long = "ж".repeat(PREVIEW_CHARS + 10);
        assert_eq!(preview_text(&long).chars().count(), PREVIEW_CHARS + 2);
    }
}
