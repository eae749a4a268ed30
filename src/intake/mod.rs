//! Accepting Telegram updates, from the webhook or from long polling, exactly once per
//! `(bot, update_id)`: the update becomes a command on its chat's aggregate, which ignores an
//! update id it has seen, and the expected version settles concurrent redeliveries.
//!
//! Nothing slow happens here: no Telegram or LLM call. The effect runner does the rest.

pub mod polling;

use std::sync::Arc;

use aggregates::chat::{chat_aggregate_id, Chat, ChatCommand, ChatError};
use uuid::Uuid;

use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata};
use crate::telegram::updates::{Update, UpdateContent};

/// The namespace of update correlation ids: UUIDv5 of `bot id:update id`.
const UPDATE_CORRELATION_NAMESPACE: Uuid =
    Uuid::from_u128(0x0b07_f1ee_7c0e_4a11_8d2e_0f5a_6e1a_7c3b);

/// The correlation id of everything one update causes. Derived, so a redelivery of the same
/// update, or the effect runner's later steps, share it without storing it anywhere.
pub fn update_correlation_id(bot_id: Uuid, update_id: i64) -> Uuid {
    Uuid::new_v5(
        &UPDATE_CORRELATION_NAMESPACE,
        format!("{bot_id}:{update_id}").as_bytes(),
    )
}

/// What became of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded for the first time.
    Recorded,
    /// Seen before: nothing recorded.
    Duplicate,
    /// Not something Botfleet answers.
    Unhandled(&'static str),
}

#[derive(Clone)]
pub struct Intake {
    chats: Arc<CommandGateway<Chat>>,
}

impl Intake {
    pub fn new(chats: Arc<CommandGateway<Chat>>) -> Self {
        Self { chats }
    }

    pub async fn accept(
        &self,
        bot_id: Uuid,
        update: &Update,
    ) -> Result<Accepted, CommandError<ChatError>> {
        let message = match update.content(bot_id) {
            UpdateContent::Text(message) => message,
            UpdateContent::Unhandled(what) => {
                tracing::debug!(%bot_id, update_id = update.update_id, what, "update not handled");
                return Ok(Accepted::Unhandled(what));
            }
        };
        let chat_id = chat_aggregate_id(bot_id, message.chat.id);
        let correlation = update_correlation_id(bot_id, update.update_id);
        let actor = message
            .from
            .as_ref()
            .map_or(Actor::System("telegram"), |user| {
                Actor::TelegramUser(user.id)
            });
        let committed = self
            .chats
            .execute(
                &chat_id.to_string(),
                ChatCommand::ReceiveMessage(*message),
                &EventMetadata::caused_by(correlation, correlation, actor),
            )
            .await?;
        Ok(if committed.appended > 0 {
            Accepted::Recorded
        } else {
            Accepted::Duplicate
        })
    }
}
