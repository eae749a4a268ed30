//! The parts of a Telegram update Botfleet reads, parsed leniently: an update of a kind it
//! does not handle is still an update (acknowledged, not recorded), never an error.

use aggregates::chat::media::{self, MediaFile};
use aggregates::chat::{
    IncomingCallback, IncomingMessage, TelegramChat, TelegramUser, ADDED_TO_GROUP,
};
use aggregates::ids::{BotId, UpdateId};
use aggregates::personal::PersonalText;
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: UpdateId,
    pub message: Option<Message>,
    pub edited_message: Option<Message>,
    pub callback_query: Option<CallbackQuery>,
    /// The person pressed stop on an answer's draft (sent with `can_stop`).
    pub stopped_message_generation: Option<GenerationStopped>,
}

/// Telegram's `MessageGenerationStopped`: which draft the person stopped.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationStopped {
    pub chat: Chat,
    pub draft_id: i64,
}

impl Update {
    /// Reads an update as Telegram sent it (the webhook's body, or one of getUpdates'). Every
    /// NUL character becomes U+FFFD first: PostgreSQL cannot store it in a JSON event or a
    /// text column, and an update refused for it would be redelivered forever.
    pub fn parse(mut value: serde_json::Value) -> Result<Self, serde_json::Error> {
        replace_nul(&mut value);
        serde_json::from_value(value)
    }
}

/// Replaces NUL in every string and key of `value`.
fn replace_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(fields) => {
            if fields.keys().any(|k| k.contains('\0')) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
            }
            fields.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    /// Unix time.
    pub date: i64,
    pub chat: Chat,
    pub from: Option<User>,
    pub text: Option<String>,
    /// A photo's, document's or audio file's caption: the question asked about it.
    pub caption: Option<String>,
    pub reply_to_message: Option<Box<Message>>,
    /// Sent in a group that became a supergroup.
    pub migrate_to_chat_id: Option<i64>,
    // What a non-text message carries instead of text; only their presence matters.
    pub photo: Option<serde_json::Value>,
    pub sticker: Option<serde_json::Value>,
    pub voice: Option<serde_json::Value>,
    pub video: Option<serde_json::Value>,
    pub video_note: Option<serde_json::Value>,
    pub audio: Option<serde_json::Value>,
    pub animation: Option<serde_json::Value>,
    pub document: Option<serde_json::Value>,
    pub location: Option<serde_json::Value>,
    pub contact: Option<serde_json::Value>,
    pub poll: Option<serde_json::Value>,
    /// The service message of people (or the bot itself) added to a group.
    pub new_chat_members: Option<Vec<User>>,
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

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    pub message: Option<Message>,
    pub data: Option<String>,
}

/// Who the bot is on Telegram: needed to tell whether a group message is meant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub bot_id: BotId,
    /// The bot's own Telegram user id (the digits of its token).
    pub telegram_id: i64,
    /// Its @username, once learned from getMe.
    pub username: Option<String>,
}

/// What an update asks of Botfleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateContent {
    /// A message to answer (text, or media answered with a notice).
    Message(Box<IncomingMessage>),
    Callback(Box<IncomingCallback>),
    /// A message edited after it was received: recorded, not answered.
    Edit {
        chat: TelegramChat,
        /// Whose text it is.
        from_id: Option<i64>,
        message_id: i64,
        text: String,
    },
    /// The person stopped the answer being written as draft `draft_id` in chat `chat_id`.
    StopAnswer {
        chat_id: i64,
        draft_id: i64,
    },
    /// The group became a supergroup.
    Migration {
        chat: TelegramChat,
        to_chat_id: i64,
    },
    /// Nothing Botfleet records; the reason is logged.
    Unhandled(&'static str),
}

impl Message {
    fn media_kind(&self) -> Option<&'static str> {
        [
            ("photo", &self.photo),
            ("sticker", &self.sticker),
            ("voice", &self.voice),
            ("video", &self.video),
            ("video_note", &self.video_note),
            ("audio", &self.audio),
            ("animation", &self.animation),
            ("document", &self.document),
            ("location", &self.location),
            ("contact", &self.contact),
            ("poll", &self.poll),
        ]
        .into_iter()
        .find_map(|(kind, value)| value.as_ref().map(|_| kind))
    }

    /// The files of a voice message, audio file, photo (every size) or document; none for
    /// other media (stickers, videos… are answered with a notice without being fetched).
    fn media_files(&self, kind: &str) -> Vec<MediaFile> {
        let file = |value: &serde_json::Value| {
            let number = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
            Some(MediaFile {
                file_id: value.get("file_id")?.as_str()?.to_owned(),
                file_size: number("file_size"),
                duration_secs: number("duration").and_then(|d| u32::try_from(d).ok()),
                mime_type: value
                    .get("mime_type")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned),
                width: number("width").and_then(|w| u32::try_from(w).ok()),
                height: number("height").and_then(|h| u32::try_from(h).ok()),
            })
        };
        let value = match kind {
            media::PHOTO => {
                let sizes = self.photo.as_ref().and_then(|p| p.as_array());
                return sizes.into_iter().flatten().filter_map(file).collect();
            }
            media::VOICE => self.voice.as_ref(),
            media::AUDIO => self.audio.as_ref(),
            media::DOCUMENT => self.document.as_ref(),
            _ => None,
        };
        value.and_then(file).into_iter().collect()
    }

    fn telegram_chat(&self) -> TelegramChat {
        TelegramChat {
            id: self.chat.id,
            kind: self.chat.kind.clone(),
            title: self.chat.title.clone().map(PersonalText::Plain),
            username: self.chat.username.clone().map(PersonalText::Plain),
        }
    }
}

impl User {
    fn telegram_user(&self) -> TelegramUser {
        TelegramUser {
            id: self.id,
            is_bot: self.is_bot,
            first_name: PersonalText::plain(self.first_name.clone()),
            last_name: self.last_name.clone().map(PersonalText::Plain),
            username: self.username.clone().map(PersonalText::Plain),
            language_code: self.language_code.clone(),
        }
    }
}

fn is_group(kind: &str) -> bool {
    matches!(kind, "group" | "supergroup")
}

/// In a group, the bot answers only when addressed: a command (for it), a mention of its
/// @username, or a reply to one of its messages. Returns the text the LLM should see (the
/// mention removed), or `None` when the message is not for the bot.
pub fn addressed_text(message: &Message, text: &str, bot: &BotIdentity) -> Option<String> {
    if !is_group(&message.chat.kind) {
        return Some(text.to_owned());
    }
    if let Some(command) = text.strip_prefix('/') {
        let first = command.split_whitespace().next().unwrap_or_default();
        let addressee = first.split_once('@').map(|(_, name)| name);
        return match (addressee, &bot.username) {
            (Some(name), Some(own)) if !name.eq_ignore_ascii_case(own) => None,
            _ => Some(text.to_owned()),
        };
    }
    let replied_to_bot = message
        .reply_to_message
        .as_ref()
        .and_then(|m| m.from.as_ref())
        .is_some_and(|u| u.id == bot.telegram_id);
    let mention = bot.username.as_ref().and_then(|name| {
        let needle = format!("@{}", name.to_lowercase());
        text.to_lowercase()
            .find(&needle)
            .map(|start| (start, needle.len()))
    });
    match mention {
        Some((start, len)) => {
            // Lowercasing keeps byte offsets for the ASCII of a @username.
            let stripped = format!("{}{}", &text[..start], &text[start + len..]);
            Some(stripped.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        None if replied_to_bot => Some(text.to_owned()),
        None => None,
    }
}

impl Update {
    pub fn content(&self, bot: &BotIdentity) -> UpdateContent {
        if let Some(stopped) = &self.stopped_message_generation {
            return UpdateContent::StopAnswer {
                chat_id: stopped.chat.id,
                draft_id: stopped.draft_id,
            };
        }
        if let Some(query) = &self.callback_query {
            let Some(message) = &query.message else {
                return UpdateContent::Unhandled("inline callback query");
            };
            return UpdateContent::Callback(Box::new(IncomingCallback {
                bot_id: bot.bot_id,
                update_id: self.update_id,
                query_id: query.id.clone(),
                data: query.data.clone(),
                chat: message.telegram_chat(),
                from: Some(query.from.telegram_user()),
            }));
        }
        if let Some(edited) = &self.edited_message {
            return match &edited.text {
                Some(text) => UpdateContent::Edit {
                    chat: edited.telegram_chat(),
                    from_id: edited.from.as_ref().map(|u| u.id),
                    message_id: edited.message_id,
                    text: text.clone(),
                },
                None => UpdateContent::Unhandled("edited media message"),
            };
        }
        let Some(message) = &self.message else {
            return UpdateContent::Unhandled("update kind");
        };
        if let Some(to_chat_id) = message.migrate_to_chat_id {
            return UpdateContent::Migration {
                chat: message.telegram_chat(),
                to_chat_id,
            };
        }
        let mut files = Vec::new();
        let (text, media) = match (&message.text, message.media_kind()) {
            (Some(text), _) => match addressed_text(message, text, bot) {
                Some(text) => (text, None),
                None => return UpdateContent::Unhandled("group message not addressed to the bot"),
            },
            // Media in a group is answered only when it replies to the bot.
            (None, Some(kind)) => {
                let replied_to_bot = message
                    .reply_to_message
                    .as_ref()
                    .and_then(|m| m.from.as_ref())
                    .is_some_and(|u| u.id == bot.telegram_id);
                if is_group(&message.chat.kind) && !replied_to_bot {
                    return UpdateContent::Unhandled("group media not addressed to the bot");
                }
                files = message.media_files(kind);
                let caption = message.caption.clone().unwrap_or_default();
                (caption, Some(kind.to_owned()))
            }
            // The bot was added to a group: a turn of its own, so that a group the bot may not
            // serve hears it at once, and another is greeted.
            (None, None) if self.adds_the_bot(message, bot) => {
                (String::new(), Some(ADDED_TO_GROUP.to_owned()))
            }
            (None, None) => return UpdateContent::Unhandled("service message"),
        };
        UpdateContent::Message(Box::new(IncomingMessage {
            bot_id: bot.bot_id,
            update_id: self.update_id,
            message_id: message.message_id,
            chat: message.telegram_chat(),
            from: message.from.as_ref().map(User::telegram_user),
            text: PersonalText::Plain(text),
            sent_at: DateTime::<Utc>::from_timestamp(message.date, 0).unwrap_or_default(),
            media,
            files,
        }))
    }
}

impl Update {
    fn adds_the_bot(&self, message: &Message, bot: &BotIdentity) -> bool {
        is_group(&message.chat.kind)
            && message
                .new_chat_members
                .iter()
                .flatten()
                .any(|member| member.id == bot.telegram_id)
    }
}

/// The bot's own Telegram id: the digits before the colon of its (masked) token.
pub fn telegram_id_from_hint(hint: &str) -> i64 {
    hint.split(':')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod nul_tests {
    use super::Update;

    #[test]
    fn nul_in_any_string_of_an_update_becomes_the_replacement_character() {
        let update = Update::parse(serde_json::json!({
            "update_id": 1,
            "callback_query": {
                "id": "q\u{0}1", "data": "d\u{0}",
                "from": {"id": 5, "first_name": "A\u{0}", "language_code": "e\u{0}n"},
                "message": {"message_id": 2, "date": 0, "chat": {"id": 5, "type": "pri\u{0}vate"}}
            }
        }))
        .unwrap();
        let query = update.callback_query.unwrap();
        assert_eq!(query.id, "q\u{FFFD}1");
        assert_eq!(query.data.as_deref(), Some("d\u{FFFD}"));
        assert_eq!(query.from.language_code.as_deref(), Some("e\u{FFFD}n"));
        assert_eq!(query.message.unwrap().chat.kind, "pri\u{FFFD}vate");
        assert!(!serde_json::to_string(&query.from.first_name)
            .unwrap()
            .contains("\\u0000"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            bot_id: BotId(uuid::Uuid::from_u128(1)),
            telegram_id: 999,
            username: Some("HelpBot".into()),
        }
    }

    fn group_message(text: &str, reply_from: Option<i64>) -> Update {
        let mut message = json!({
            "message_id": 5, "date": 1_764_000_000,
            "chat": {"id": -100, "type": "supergroup", "title": "Team"},
            "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
            "text": text
        });
        if let Some(id) = reply_from {
            message["reply_to_message"] = json!({"message_id": 4, "date": 1, "chat": {"id": -100, "type": "supergroup"},
                "from": {"id": id, "is_bot": true, "first_name": "X"}, "text": "earlier"});
        }
        serde_json::from_value(json!({"update_id": 1, "message": message})).unwrap()
    }

    fn text_of(content: UpdateContent) -> Option<String> {
        match content {
            UpdateContent::Message(m) => m.text.as_plain().map(str::to_owned),
            _ => None,
        }
    }

    #[test]
    fn in_groups_only_messages_addressed_to_the_bot_are_taken() {
        assert_eq!(
            text_of(group_message("hello all", None).content(&bot())),
            None
        );
        assert_eq!(
            text_of(group_message("@helpbot what is 2+2?", None).content(&bot())).as_deref(),
            Some("what is 2+2?")
        );
        assert_eq!(
            text_of(group_message("and you @HelpBot, think?", None).content(&bot())).as_deref(),
            Some("and you , think?")
        );
        assert_eq!(
            text_of(group_message("thanks", Some(999)).content(&bot())).as_deref(),
            Some("thanks")
        );
        assert_eq!(
            text_of(group_message("thanks", Some(7)).content(&bot())),
            None
        );
        assert!(text_of(group_message("/help", None).content(&bot())).is_some());
        assert!(text_of(group_message("/help@HelpBot", None).content(&bot())).is_some());
        assert_eq!(
            text_of(group_message("/help@OtherBot", None).content(&bot())),
            None
        );
    }

    #[test]
    fn media_callbacks_and_edits_are_told_apart() {
        let photo: Update = serde_json::from_value(json!({"update_id": 2, "message": {
            "message_id": 6, "date": 1, "chat": {"id": 42, "type": "private"},
            "photo": [{"file_id": "x"}]}}))
        .unwrap();
        match photo.content(&bot()) {
            UpdateContent::Message(m) => assert_eq!(m.media.as_deref(), Some("photo")),
            other => panic!("{other:?}"),
        }
        let callback: Update = serde_json::from_value(json!({"update_id": 3, "callback_query": {
            "id": "q1", "from": {"id": 42, "first_name": "Ann"}, "data": "refresh",
            "message": {"message_id": 7, "date": 1, "chat": {"id": 42, "type": "private"}}}}))
        .unwrap();
        assert!(
            matches!(callback.content(&bot()), UpdateContent::Callback(c) if c.data.as_deref() == Some("refresh"))
        );
        let edit: Update = serde_json::from_value(json!({"update_id": 4, "edited_message": {
            "message_id": 6, "date": 1, "chat": {"id": 42, "type": "private"}, "text": "fixed"}}))
        .unwrap();
        assert!(
            matches!(edit.content(&bot()), UpdateContent::Edit { text, .. } if text == "fixed")
        );
    }

    #[test]
    fn a_stop_pressed_on_a_draft_names_its_chat_and_draft() {
        let stopped: Update = serde_json::from_value(json!({"update_id": 5,
            "stopped_message_generation": {"chat": {"id": 42, "type": "private"}, "draft_id": 77}}))
        .unwrap();
        assert_eq!(
            stopped.content(&bot()),
            UpdateContent::StopAnswer {
                chat_id: 42,
                draft_id: 77
            }
        );
    }
}
