//! Accepting Telegram updates, from the webhook or from long polling, exactly once per
//! `(bot, update_id)`: the update becomes a command on its chat's aggregate, which ignores an
//! update id it has seen, and the expected version settles concurrent redeliveries.
//!
//! Nothing slow happens here: no Telegram or LLM call. The effect runner does the rest.

pub mod polling;

use std::sync::Arc;

use aggregates::chat::{Chat, ChatCommand, ChatError};
use aggregates::ids::ChatId;

use crate::event_store::{
    update_correlation_id, Actor, CommandError, CommandGateway, EventMetadata,
};
use crate::personal_data::PersonalDataVault;
use crate::runtime::answer_stops::{AnswerStops, DraftKey};
use crate::runtime::fresh_work::FreshWork;
use crate::telegram::updates::{BotIdentity, Update, UpdateContent};

/// What became of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded for the first time.
    Recorded,
    /// Seen before: nothing recorded.
    Duplicate,
    /// Not something Botfleet answers.
    Unhandled(&'static str),
    /// A stop pressed on an answer's draft, passed on to whichever process writes it.
    StopAnnounced,
}

#[derive(Clone)]
pub struct Intake {
    chats: Arc<CommandGateway<Chat>>,
    /// Seals names and texts before they enter an event.
    vault: Arc<PersonalDataVault>,
    /// Hands chats with a new turn straight to this process's effect runner.
    fresh_work: FreshWork,
    /// Where a stop pressed on a draft is announced to every process.
    pool: sqlx::PgPool,
}

/// Why an update could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Command(#[from] CommandError<ChatError>),
    #[error("personal data could not be sealed")]
    Sealing(#[from] sqlx::Error),
    #[error("a stop could not be announced")]
    StopAnnouncement(#[source] sqlx::Error),
}

impl Intake {
    pub fn new(
        chats: Arc<CommandGateway<Chat>>,
        vault: Arc<PersonalDataVault>,
        pool: sqlx::PgPool,
    ) -> Self {
        Self {
            chats,
            vault,
            fresh_work: FreshWork::default(),
            pool,
        }
    }

    /// Where this intake announces chats with a new turn.
    pub fn fresh_work(&self) -> &FreshWork {
        &self.fresh_work
    }

    pub async fn accept(
        &self,
        bot: &BotIdentity,
        update: &Update,
    ) -> Result<Accepted, IntakeError> {
        let person = |user: Option<&aggregates::chat::TelegramUser>| {
            user.map_or(Actor::System("telegram"), |u| Actor::TelegramUser(u.id))
        };
        let content = update.content(bot);
        let opens_turn = matches!(
            content,
            UpdateContent::Message(_) | UpdateContent::Callback(_)
        );
        let (telegram_chat_id, command, actor) = match content {
            UpdateContent::Message(message) => {
                let actor = person(message.from.as_ref());
                let message = self.vault.seal_message(*message).await?;
                (message.chat.id, ChatCommand::ReceiveMessage(message), actor)
            }
            UpdateContent::Callback(callback) => {
                let actor = person(callback.from.as_ref());
                let mut callback = *callback;
                let subject = PersonalDataVault::subject_of(&callback.chat, callback.from.as_ref());
                callback.chat = self.vault.seal_chat(subject, callback.chat).await?;
                if let Some(user) = callback.from.take() {
                    callback.from = Some(self.vault.seal_user(user).await?);
                }
                (
                    callback.chat.id,
                    ChatCommand::ReceiveCallback(callback),
                    actor,
                )
            }
            UpdateContent::Edit {
                chat,
                from_id,
                message_id,
                text,
            } => (
                chat.id,
                ChatCommand::RecordEdit {
                    update_id: update.update_id,
                    message_id,
                    text: self.vault.seal(from_id.unwrap_or(chat.id), &text).await?,
                },
                Actor::System("telegram"),
            ),
            UpdateContent::Migration { chat, to_chat_id } => (
                chat.id,
                ChatCommand::RecordMigration { to_chat_id },
                Actor::System("telegram"),
            ),
            UpdateContent::StopAnswer { chat_id, draft_id } => {
                let key = DraftKey {
                    bot_id: bot.bot_id.0,
                    chat_id,
                    draft_id,
                };
                tracing::info!(bot_id = %bot.bot_id, update_id = %update.update_id, draft_id, "the person stopped an answer");
                AnswerStops::announce(&self.pool, &key)
                    .await
                    .map_err(IntakeError::StopAnnouncement)?;
                return Ok(Accepted::StopAnnounced);
            }
            UpdateContent::Unhandled(what) => {
                tracing::debug!(bot_id = %bot.bot_id, update_id = %update.update_id, what, "update not handled");
                return Ok(Accepted::Unhandled(what));
            }
        };
        let ChatId(chat_id) = ChatId::of(bot.bot_id, telegram_chat_id);
        let correlation = update_correlation_id(bot.bot_id, update.update_id.into());
        let committed = self
            .chats
            .execute(
                &chat_id.to_string(),
                command,
                &EventMetadata::caused_by(correlation, correlation, actor),
            )
            .await?;
        Ok(if committed.appended > 0 {
            crate::metrics::update_received(bot.bot_id.0);
            if opens_turn {
                self.fresh_work.announce(bot.bot_id, ChatId(chat_id));
            }
            Accepted::Recorded
        } else {
            Accepted::Duplicate
        })
    }
}
