use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::commands::ChatCommand;
use super::errors::ChatError;
use super::events::{ChatEvent, GeneratedResponse, ResponseKind, TurnKind, TurnStep};
use super::media::{ConversationImage, ImageRef, MediaFile, Transcription};
use super::values::TelegramChat;
use super::ChatServices;
use crate::bot::policy::RefusalReason;
use crate::ids::{BotId, TurnKey, UpdateId};
use crate::personal::PersonalText;

/// How many earlier exchanges a chat keeps for prompts built from its own history.
pub const HISTORY_WINDOW: usize = 20;

/// How many failed turns a chat keeps, so an admin can retry them.
pub const FAILED_TURNS_KEPT: usize = 100;

/// A message that has not been answered (or failed) yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTurn {
    /// The turn: the update that opened it, or an admin message.
    pub update_id: TurnKey,
    pub message_id: i64,
    pub user_text: PersonalText,
    pub from_user_id: Option<i64>,
    pub response: Option<GeneratedResponse>,
    /// Failed attempts at the current step.
    pub attempts: u32,
    #[serde(default)]
    pub kind: TurnKind,
    /// Not to be tried again before this (the backoff after a retryable failure).
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// When Telegram says the message was sent (none for admin messages and older turns).
    #[serde(default)]
    pub sent_at: Option<DateTime<Utc>>,
    /// The person's language as Telegram reports it (`language_code`), for system texts.
    #[serde(default)]
    pub language: Option<String>,
    /// The person's @username, sealed: only a username allow-list needs it.
    #[serde(default)]
    pub from_username: Option<PersonalText>,
    /// The bot's policy refused the turn; it stays open only for the notice or the leave.
    #[serde(default)]
    pub refusal: Option<TurnRefusal>,
    /// A media message's files (a photo's sizes, a voice message's file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<MediaFile>,
    /// A voice message's transcript once recorded (`user_text` is then the transcript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcription: Option<Transcription>,
    /// The image shown to the model, once fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
}

/// A refused turn's remaining work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRefusal {
    pub reason: RefusalReason,
    pub resets_at: Option<DateTime<Utc>>,
    /// The person is to be told.
    pub notified: bool,
    /// The bot is to leave the group.
    pub leave_chat: bool,
}

/// A message as the per-person rate counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentMessage {
    pub update_id: UpdateId,
    pub from: Option<i64>,
    pub sent_at: DateTime<Utc>,
}

/// How far back the per-person rate looks.
pub const RATE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl OpenTurn {
    #[must_use]
    pub fn step(&self) -> TurnStep {
        if self.response.is_some() {
            TurnStep::Send
        } else {
            TurnStep::Generate
        }
    }
}

/// What the LLM needs to continue the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The Responses API's last response id, sent as `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// The last exchanges (user text, answer), oldest first, at most [`HISTORY_WINDOW`].
    pub history: VecDeque<(PersonalText, PersonalText)>,
    /// How many exchanges the model has as context: the provider-side chain's length, or the
    /// history sent along.
    #[serde(default)]
    pub context_turns: u32,
    /// The input tokens of the last answer: what the context has grown to.
    #[serde(default)]
    pub last_input_tokens: u64,
    /// When the last answered message was sent, for the idle reset.
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Exchanges answered since the conversation started: numbers the exchanges, so that
    /// `images` can name theirs while old ones drop out of `history`.
    #[serde(default)]
    pub exchanges: u64,
    /// The images of the exchanges still in `history`, oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub images: VecDeque<ConversationImage>,
}

impl Conversation {
    /// Counts the exchange just pushed onto `history`, with its image, and forgets the images
    /// of exchanges that left the window.
    pub(crate) fn note_exchange(&mut self, image: Option<ImageRef>) {
        // A conversation from before exchanges were counted has at least its history.
        self.exchanges = self.exchanges.max(self.history.len() as u64 - 1) + 1;
        if let Some(image) = image {
            self.images.push_back(ConversationImage {
                exchange: self.exchanges - 1,
                image,
            });
        }
        let first = self.exchanges.saturating_sub(self.history.len() as u64);
        self.images.retain(|i| i.exchange >= first);
    }

    /// The image of the exchange at `index` of `history`, if it had one.
    #[must_use]
    pub fn image_at(&self, index: usize) -> Option<&ImageRef> {
        let first = self.exchanges.saturating_sub(self.history.len() as u64);
        let exchange = first + index as u64;
        self.images
            .iter()
            .find(|i| i.exchange == exchange)
            .map(|i| &i.image)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    pub bot_id: Option<BotId>,
    pub telegram_chat: Option<TelegramChat>,
    /// Every update id accepted, so a redelivered update is recognised whenever it comes.
    pub seen_updates: BTreeSet<UpdateId>,
    /// Unfinished turns in arrival order: the first is the one to work on.
    pub open_turns: Vec<OpenTurn>,
    pub conversation: Conversation,
    pub messages_received: u64,
    /// Telegram refuses this chat; cleared when its user writes again.
    #[serde(default)]
    pub blocked: bool,
    /// The last failed turns, newest last, for a manual retry.
    #[serde(default)]
    pub failed_turns: Vec<OpenTurn>,
    /// Admin messages so far; the next one is `TurnKey::AdminMessage(admin_messages + 1)`.
    #[serde(default)]
    pub admin_messages: u32,
    /// The last minute's messages, for the per-person rate.
    #[serde(default)]
    pub recent_messages: VecDeque<RecentMessage>,
    /// When each kind of refusal notice was last sent here.
    #[serde(default)]
    pub last_notices: BTreeMap<RefusalReason, DateTime<Utc>>,
    /// The bot left this group; cleared when someone writes in it again.
    #[serde(default)]
    pub left: bool,
}

impl Chat {
    /// The turn the effect runner should work on next: turns in a chat go strictly in order,
    /// since an LLM conversation cannot fork.
    #[must_use]
    pub fn next_turn(&self) -> Option<&OpenTurn> {
        // A button press expects an answer within seconds and does not continue the
        // conversation, so it goes before waiting messages.
        self.open_turns
            .iter()
            .find(|t| matches!(t.kind, TurnKind::Callback { .. }))
            .or_else(|| self.open_turns.first())
    }

    pub(super) fn open_turn(&self, update_id: TurnKey) -> Result<&OpenTurn, ChatError> {
        self.open_turns
            .iter()
            .find(|t| t.update_id == update_id)
            .ok_or(ChatError::NoOpenTurn(update_id))
    }

    fn open_turn_mut(&mut self, update_id: TurnKey) -> Option<&mut OpenTurn> {
        self.open_turns
            .iter_mut()
            .find(|t| t.update_id == update_id)
    }

    fn close_turn(&mut self, update_id: TurnKey) -> Option<OpenTurn> {
        let index = self
            .open_turns
            .iter()
            .position(|t| t.update_id == update_id)?;
        Some(self.open_turns.remove(index))
    }

    /// Keeps a failed turn for an admin's retry (the last [`FAILED_TURNS_KEPT`]).
    fn remember_failed(&mut self, turn: OpenTurn) {
        self.failed_turns.push(turn);
        if self.failed_turns.len() > FAILED_TURNS_KEPT {
            self.failed_turns.remove(0);
        }
    }

    fn ensure_same_bot(&self, bot_id: BotId) -> Result<(), ChatError> {
        if self.bot_id.is_some_and(|bot| bot != bot_id) {
            return Err(ChatError::OtherBot);
        }
        Ok(())
    }
}

impl Aggregate for Chat {
    const TYPE: &'static str = "Chat";
    type Command = ChatCommand;
    type Event = ChatEvent;
    type Error = ChatError;
    type Services = ChatServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ChatCommand::ReceiveMessage(message) => {
                self.ensure_same_bot(message.bot_id)?;
                if self.seen_updates.contains(&message.update_id) {
                    return Ok(());
                }
                vec![ChatEvent::MessageReceived {
                    bot_id: message.bot_id,
                    update_id: message.update_id,
                    message_id: message.message_id,
                    chat: message.chat,
                    from: message.from,
                    text: message.text,
                    sent_at: message.sent_at,
                    media: message.media,
                    files: message.files,
                }]
            }
            ChatCommand::ReceiveCallback(callback) => {
                self.ensure_same_bot(callback.bot_id)?;
                if self.seen_updates.contains(&callback.update_id) {
                    return Ok(());
                }
                vec![ChatEvent::CallbackQueryReceived {
                    bot_id: callback.bot_id,
                    update_id: callback.update_id,
                    query_id: callback.query_id,
                    data: callback.data,
                    chat: callback.chat,
                    from: callback.from,
                }]
            }
            ChatCommand::RecordEdit {
                update_id,
                message_id,
                text,
            } => {
                if self.seen_updates.contains(&update_id) {
                    return Ok(());
                }
                vec![ChatEvent::MessageEdited {
                    update_id,
                    message_id,
                    text,
                }]
            }
            ChatCommand::RecordCallbackAnswered {
                update_id,
                text,
                reset_conversation,
            } => {
                if !matches!(self.open_turn(update_id)?.kind, TurnKind::Callback { .. }) {
                    return Err(ChatError::NotACallback(update_id));
                }
                let mut events = Vec::with_capacity(2);
                if reset_conversation {
                    events.push(ChatEvent::ConversationReset { update_id });
                }
                events.push(ChatEvent::CallbackAnswered { update_id, text });
                events
            }
            ChatCommand::RecordMigration { to_chat_id } => {
                if self
                    .telegram_chat
                    .as_ref()
                    .is_none_or(|c| c.id == to_chat_id)
                {
                    return Ok(());
                }
                vec![ChatEvent::ChatMigrated { to_chat_id }]
            }
            ChatCommand::SendAdminMessage { text, admin } => {
                if self.telegram_chat.is_none() {
                    return Err(ChatError::NotStarted);
                }
                vec![ChatEvent::AdminMessageQueued {
                    update_id: TurnKey::AdminMessage(self.admin_messages + 1),
                    text,
                    admin,
                }]
            }
            ChatCommand::ResetConversation { admin } => {
                if self.telegram_chat.is_none() {
                    return Err(ChatError::NotStarted);
                }
                vec![ChatEvent::ConversationResetByAdmin { admin }]
            }
            ChatCommand::RetryTurn { update_id } => {
                if !self.failed_turns.iter().any(|t| t.update_id == update_id) {
                    return Err(ChatError::NotFailed(update_id));
                }
                vec![ChatEvent::TurnRetried { update_id }]
            }
            ChatCommand::RecordResponse {
                update_id,
                response,
                reset_conversation,
            } => {
                if self.open_turn(update_id)?.response.is_some() {
                    return Err(ChatError::AlreadyResponded(update_id));
                }
                let mut events = Vec::with_capacity(2);
                if reset_conversation {
                    events.push(ChatEvent::ConversationReset { update_id });
                }
                events.push(ChatEvent::ResponseGenerated {
                    update_id,
                    response,
                });
                events
            }
            ChatCommand::RecordSent {
                update_id,
                telegram_message_ids,
            } => {
                if self.open_turn(update_id)?.response.is_none() {
                    return Err(ChatError::NotGenerated(update_id));
                }
                vec![ChatEvent::ResponseSent {
                    update_id,
                    telegram_message_ids,
                }]
            }
            ChatCommand::RecordAttemptFailure {
                update_id,
                step,
                class,
                error,
                retry_at,
            } => {
                let turn = self.open_turn(update_id)?;
                match (step, turn.step()) {
                    (TurnStep::Generate, TurnStep::Send) => {
                        return Err(ChatError::AlreadyResponded(update_id))
                    }
                    (TurnStep::Send, TurnStep::Generate) => {
                        return Err(ChatError::NotGenerated(update_id))
                    }
                    _ => {}
                }
                vec![ChatEvent::AttemptFailed {
                    update_id,
                    step,
                    attempt: turn.attempts + 1,
                    class,
                    error,
                    retry_at,
                }]
            }
            ChatCommand::ScreenTurn {
                update_id,
                screening,
            } => {
                let turn = self.open_turn(update_id)?;
                if turn.response.is_some() {
                    return Err(ChatError::AlreadyResponded(update_id));
                }
                if turn.refusal.is_some() {
                    return Ok(());
                }
                let (Some(bot_id), Some(telegram_chat)) = (self.bot_id, &self.telegram_chat) else {
                    return Err(ChatError::NotStarted);
                };
                let Some(refusal) = self.screen(turn, &screening) else {
                    return Ok(());
                };
                vec![ChatEvent::TurnRefused {
                    update_id,
                    bot_id,
                    person: turn.from_user_id,
                    telegram_chat_id: telegram_chat.id,
                    reason: refusal.reason,
                    resets_at: refusal.resets_at,
                    at: screening.now,
                    notified: self.notice_due(refusal.reason, screening.now),
                    leave_chat: refusal.reason == RefusalReason::GroupNotAllowed
                        && screening.policy.access.leave_refused_groups,
                }]
            }
            ChatCommand::RecordTranscription {
                update_id,
                transcription,
            } => {
                let turn = self.open_turn(update_id)?;
                if turn.response.is_some() {
                    return Err(ChatError::AlreadyResponded(update_id));
                }
                if turn.transcription.is_some() {
                    return Ok(());
                }
                vec![ChatEvent::MediaTranscribed {
                    update_id,
                    transcription,
                }]
            }
            ChatCommand::RecordImage { update_id, image } => {
                let turn = self.open_turn(update_id)?;
                if turn.response.is_some() {
                    return Err(ChatError::AlreadyResponded(update_id));
                }
                if turn.image.as_ref().is_some_and(|known| known == &image) {
                    return Ok(());
                }
                vec![ChatEvent::ImageAttached { update_id, image }]
            }
            ChatCommand::RecordLeft { update_id } => {
                if self.left {
                    return Ok(());
                }
                vec![ChatEvent::ChatLeft {
                    update_id,
                    ends_turn: self.open_turn(update_id).is_ok(),
                }]
            }
            ChatCommand::FailTurn {
                update_id,
                step,
                class,
                error,
                blocks_chat,
            } => {
                self.open_turn(update_id)?;
                let mut events = vec![ChatEvent::TurnFailed {
                    update_id,
                    step,
                    class,
                    error: error.clone(),
                }];
                if blocks_chat && !self.blocked {
                    events.push(ChatEvent::ChatBlocked {
                        update_id,
                        reason: error,
                    });
                }
                events
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ChatEvent::MessageReceived {
                bot_id,
                update_id,
                message_id,
                chat,
                from,
                text,
                sent_at,
                media,
                files,
            } => {
                self.bot_id = Some(bot_id);
                self.telegram_chat = Some(chat);
                self.seen_updates.insert(update_id);
                self.messages_received += 1;
                self.blocked = false;
                self.left = false;
                let from_user_id = from.as_ref().map(|u| u.id);
                self.note_recent(RecentMessage {
                    update_id,
                    from: from_user_id,
                    sent_at,
                });
                self.open_turns.push(OpenTurn {
                    update_id: update_id.into(),
                    message_id,
                    user_text: text,
                    from_user_id,
                    response: None,
                    attempts: 0,
                    retry_at: None,
                    kind: media.map_or(TurnKind::Message, |media| TurnKind::Media { media }),
                    sent_at: Some(sent_at),
                    language: from.as_ref().and_then(|u| u.language_code.clone()),
                    from_username: from.and_then(|u| u.username),
                    refusal: None,
                    files,
                    transcription: None,
                    image: None,
                });
            }
            ChatEvent::CallbackQueryReceived {
                bot_id,
                update_id,
                query_id,
                data,
                chat,
                from,
            } => {
                self.bot_id = Some(bot_id);
                if self.telegram_chat.is_none() {
                    self.telegram_chat = Some(chat);
                }
                self.seen_updates.insert(update_id);
                self.blocked = false;
                self.open_turns.push(OpenTurn {
                    update_id: update_id.into(),
                    message_id: 0,
                    user_text: PersonalText::plain(data.clone().unwrap_or_default()),
                    from_user_id: from.as_ref().map(|u| u.id),
                    response: None,
                    attempts: 0,
                    retry_at: None,
                    kind: TurnKind::Callback { query_id, data },
                    sent_at: None,
                    language: from.and_then(|u| u.language_code),
                    from_username: None,
                    refusal: None,
                    files: Vec::new(),
                    transcription: None,
                    image: None,
                });
            }
            ChatEvent::CallbackAnswered { update_id, .. } => {
                self.close_turn(update_id);
            }
            ChatEvent::MessageEdited { update_id, .. } => {
                self.seen_updates.insert(update_id);
            }
            ChatEvent::ChatBlocked { .. } => self.blocked = true,
            ChatEvent::ChatMigrated { to_chat_id } => {
                if let Some(chat) = &mut self.telegram_chat {
                    chat.id = to_chat_id;
                }
            }
            ChatEvent::AdminMessageQueued {
                update_id,
                text,
                admin,
            } => {
                self.admin_messages += 1;
                self.open_turns.push(OpenTurn {
                    update_id,
                    message_id: 0,
                    user_text: PersonalText::plain(""),
                    from_user_id: None,
                    response: Some(GeneratedResponse {
                        text,
                        kind: ResponseKind::Admin { admin },
                    }),
                    attempts: 0,
                    retry_at: None,
                    kind: TurnKind::Message,
                    sent_at: None,
                    language: None,
                    from_username: None,
                    refusal: None,
                    files: Vec::new(),
                    transcription: None,
                    image: None,
                });
            }
            ChatEvent::TurnRetried { update_id } => {
                // An admin's retry overrides a block: they know the chat is reachable again.
                self.blocked = false;
                if let Some(index) = self
                    .failed_turns
                    .iter()
                    .position(|t| t.update_id == update_id)
                {
                    let mut turn = self.failed_turns.remove(index);
                    turn.attempts = 0;
                    turn.retry_at = None;
                    self.open_turns.push(turn);
                }
            }
            ChatEvent::ResponseGenerated {
                update_id,
                response,
            } => {
                let Some(turn) = self.open_turn_mut(update_id) else {
                    return;
                };
                turn.attempts = 0;
                turn.retry_at = None;
                let (user_text, sent_at, image) =
                    (turn.user_text.clone(), turn.sent_at, turn.image.clone());
                if let ResponseKind::Llm {
                    response_id,
                    usage,
                    context_turns,
                    ..
                } = &response.kind
                {
                    let conversation = &mut self.conversation;
                    conversation.context_turns =
                        context_turns.unwrap_or(conversation.context_turns) + 1;
                    conversation.last_input_tokens = usage.input_tokens;
                    conversation.last_message_at = sent_at.or(conversation.last_message_at);
                    conversation.previous_response_id = response_id.clone();
                    conversation
                        .history
                        .push_back((user_text, response.text.clone()));
                    while conversation.history.len() > HISTORY_WINDOW {
                        conversation.history.pop_front();
                    }
                    conversation.note_exchange(image);
                }
                if let Some(turn) = self.open_turn_mut(update_id) {
                    turn.response = Some(response);
                }
            }
            ChatEvent::ResponseSent { update_id, .. } => {
                if let Some(mut turn) = self.close_turn(update_id) {
                    // The user got the error message: the turn failed, and an admin may retry
                    // it (a retry asks the model again).
                    if turn
                        .response
                        .as_ref()
                        .is_some_and(|r| matches!(r.kind, ResponseKind::ErrorMessage { .. }))
                    {
                        turn.response = None;
                        self.remember_failed(turn);
                    }
                }
            }
            ChatEvent::TurnFailed { update_id, .. } => {
                if let Some(turn) = self.close_turn(update_id) {
                    self.remember_failed(turn);
                }
            }
            ChatEvent::ConversationReset { .. } | ChatEvent::ConversationResetByAdmin { .. } => {
                self.conversation = Conversation::default()
            }
            ChatEvent::TurnRefused {
                update_id,
                reason,
                resets_at,
                at,
                notified,
                leave_chat,
                ..
            } => {
                // A refused message is not counted against the person's rate.
                if let TurnKey::Update(refused) = update_id {
                    self.recent_messages.retain(|m| m.update_id != refused);
                }
                if notified {
                    self.last_notices.insert(reason, at);
                }
                if notified || leave_chat {
                    if let Some(turn) = self.open_turn_mut(update_id) {
                        turn.refusal = Some(TurnRefusal {
                            reason,
                            resets_at,
                            notified,
                            leave_chat,
                        });
                    }
                } else {
                    self.close_turn(update_id);
                }
            }
            ChatEvent::MediaTranscribed {
                update_id,
                transcription,
            } => {
                if let Some(turn) = self.open_turn_mut(update_id) {
                    turn.user_text = transcription.text.clone();
                    turn.transcription = Some(transcription);
                }
            }
            ChatEvent::ImageAttached { update_id, image } => {
                if let Some(turn) = self.open_turn_mut(update_id) {
                    turn.image = Some(image);
                }
            }
            ChatEvent::ChatLeft { update_id, .. } => {
                self.left = true;
                self.close_turn(update_id);
            }
            ChatEvent::AttemptFailed {
                update_id,
                attempt,
                retry_at,
                ..
            } => {
                if let Some(turn) = self.open_turn_mut(update_id) {
                    turn.attempts = attempt;
                    turn.retry_at = retry_at;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
