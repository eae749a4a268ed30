//! The parts of a Telegram update Botfleet reads, parsed leniently: an update of a kind it
//! does not handle is still an update (acknowledged, not recorded), never an error.

use aggregates::chat::{IncomingMessage, TelegramChat, TelegramUser};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub edited_message: Option<Message>,
    pub callback_query: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    /// Unix time.
    pub date: i64,
    pub chat: Chat,
    pub from: Option<User>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

/// What an update asks of Botfleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateContent {
    /// A text message to answer.
    Text(Box<IncomingMessage>),
    /// Nothing Botfleet answers yet; the reason is logged.
    Unhandled(&'static str),
}

impl Update {
    pub fn content(&self, bot_id: Uuid) -> UpdateContent {
        let Some(message) = &self.message else {
            return UpdateContent::Unhandled(if self.edited_message.is_some() {
                "edited message"
            } else if self.callback_query.is_some() {
                "callback query"
            } else {
                "update kind"
            });
        };
        let Some(text) = &message.text else {
            return UpdateContent::Unhandled("non-text message");
        };
        UpdateContent::Text(Box::new(IncomingMessage {
            bot_id,
            update_id: self.update_id,
            message_id: message.message_id,
            chat: TelegramChat {
                id: message.chat.id,
                kind: message.chat.kind.clone(),
                title: message.chat.title.clone(),
                username: message.chat.username.clone(),
            },
            from: message.from.as_ref().map(|u| TelegramUser {
                id: u.id,
                is_bot: u.is_bot,
                first_name: u.first_name.clone(),
                last_name: u.last_name.clone(),
                username: u.username.clone(),
                language_code: u.language_code.clone(),
            }),
            text: text.clone(),
            sent_at: DateTime::<Utc>::from_timestamp(message.date, 0).unwrap_or_default(),
        }))
    }
}
