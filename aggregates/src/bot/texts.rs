//! The texts a bot says on its own (not the model's answers): built-in English and Russian,
//! overridable per bot and per language, and chosen by the person's language.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::SystemTexts;

/// Which system text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextKey {
    /// The reply to /start.
    Start,
    /// The reply to /help.
    Help,
    /// The reply to /refresh (and the refresh button).
    Refresh,
    /// The reply to a photo, sticker, voice message… the bot cannot read.
    MediaNotice,
    /// Said once a day to someone not on the bot's list.
    Refusal,
    /// Said once in a group the bot may not serve.
    GroupRefusal,
    /// Said once a day to someone at their limit; `{resets_at}` is when it lifts.
    LimitReached,
    /// Said once a day when the bot's monthly spend cap is reached; `{resets_at}`.
    BotLimitReached,
    /// Said once in ten minutes to someone writing too fast.
    SlowDown,
    /// Sent when the model failed for good.
    Error,
    /// The line before the first answer of a conversation that started afresh after a pause.
    NewConversation,
    /// The reply to /usage: `{messages_today}`, `{cost_today}`, `{messages_month}`,
    /// `{cost_month}`, and the limits `{limit_messages_day}`, `{limit_cost_day}`,
    /// `{limit_messages_month}`, `{limit_cost_month}` (∞ when not set).
    Usage,
    /// The answer to a button that no longer does anything.
    UnknownButton,
    /// The reply to a voice message or file over the limits: `{max_minutes}` (of audio) and
    /// `{max_megabytes}` (of a file).
    MediaTooLarge,
    /// The reply to a voice message in which the transcription heard no words.
    VoiceUnclear,
}

impl TextKey {
    pub fn as_str(self) -> &'static str {
        match self {
            TextKey::Start => "start",
            TextKey::Help => "help",
            TextKey::Refresh => "refresh",
            TextKey::MediaNotice => "media_notice",
            TextKey::Refusal => "refusal",
            TextKey::GroupRefusal => "group_refusal",
            TextKey::LimitReached => "limit_reached",
            TextKey::BotLimitReached => "bot_limit_reached",
            TextKey::SlowDown => "slow_down",
            TextKey::Error => "error",
            TextKey::NewConversation => "new_conversation",
            TextKey::Usage => "usage",
            TextKey::UnknownButton => "unknown_button",
            TextKey::MediaTooLarge => "media_too_large",
            TextKey::VoiceUnclear => "voice_unclear",
        }
    }
}

/// The languages Botfleet ships texts in.
pub const BUILT_IN_LANGUAGES: &[&str] = &["en", "ru"];

/// A built-in text, when the language has one.
pub fn built_in(key: TextKey, language: &str) -> Option<&'static str> {
    Some(match (language, key) {
        ("en", TextKey::Start) => "Hello! Ask me anything.",
        ("en", TextKey::Help) => "I answer your messages with an AI model.\n\n\
Commands:\n\
/start — the welcome message\n\
/help — this help\n\
/refresh — start a new conversation (I forget the earlier messages)\n\
/usage — what you have used and your limits",
        ("en", TextKey::Refresh) => "Done: a new conversation starts with your next message.",
        ("en", TextKey::MediaNotice) => {
            "Sorry, I can only read text messages. Please write your question as text."
        }
        ("en", TextKey::Refusal) => "Sorry, this bot answers only the people it was set up for.",
        ("en", TextKey::GroupRefusal) => "Sorry, I am not set up to answer in this group.",
        ("en", TextKey::LimitReached) => {
            "You have reached your limit for now. It resets at {resets_at}."
        }
        ("en", TextKey::BotLimitReached) => {
            "This bot has reached its spending limit for the month. It resets at {resets_at}."
        }
        ("en", TextKey::SlowDown) => "You are writing faster than I can answer. Please slow down.",
        ("en", TextKey::Error) => "Sorry, something went wrong. Please try again later.",
        ("en", TextKey::NewConversation) => "(A new conversation: I forgot our earlier messages.)",
        ("en", TextKey::Usage) => "Your use of this bot\n\
Today: {messages_today} of {limit_messages_day} messages, {cost_today} of {limit_cost_day}.\n\
This month: {messages_month} of {limit_messages_month} messages, {cost_month} of {limit_cost_month}.",
        ("en", TextKey::UnknownButton) => "Sorry, this button no longer does anything.",
        ("en", TextKey::VoiceUnclear) => {
            "Sorry, I could not make out any words in that message. Please try again, or write."
        }
        ("en", TextKey::MediaTooLarge) => {
            "Sorry, that is too long for me: I can listen to voice messages of up to \
{max_minutes} min and take files of up to {max_megabytes} MB. Please send a shorter one, or write."
        }
        ("ru", TextKey::Start) => "Здравствуйте! Спросите меня о чём угодно.",
        ("ru", TextKey::Help) => "Я отвечаю на ваши сообщения с помощью модели ИИ.\n\n\
Команды:\n\
/start — приветствие\n\
/help — эта справка\n\
/refresh — начать новый разговор (я забуду прежние сообщения)\n\
/usage — сколько вы использовали и ваши лимиты",
        ("ru", TextKey::Refresh) => "Готово: со следующего сообщения начнётся новый разговор.",
        ("ru", TextKey::MediaNotice) => {
            "Извините, я читаю только текстовые сообщения. Пожалуйста, напишите вопрос текстом."
        }
        ("ru", TextKey::Refusal) => {
            "Извините, этот бот отвечает только тем, для кого он настроен."
        }
        ("ru", TextKey::GroupRefusal) => "Извините, я не настроен отвечать в этой группе.",
        ("ru", TextKey::LimitReached) => {
            "Вы исчерпали свой лимит. Он обновится {resets_at}."
        }
        ("ru", TextKey::BotLimitReached) => {
            "Бот исчерпал лимит расходов на этот месяц. Он обновится {resets_at}."
        }
        ("ru", TextKey::SlowDown) => {
            "Вы пишете быстрее, чем я успеваю отвечать. Пожалуйста, помедленнее."
        }
        ("ru", TextKey::Error) => "Извините, что-то пошло не так. Попробуйте позже.",
        ("ru", TextKey::NewConversation) => {
            "(Новый разговор: я забыл наши прежние сообщения.)"
        }
        ("ru", TextKey::Usage) => "Ваше использование бота\n\
Сегодня: сообщений {messages_today} из {limit_messages_day}, {cost_today} из {limit_cost_day}.\n\
В этом месяце: сообщений {messages_month} из {limit_messages_month}, {cost_month} из {limit_cost_month}.",
        ("ru", TextKey::UnknownButton) => "Извините, эта кнопка больше ничего не делает.",
        ("ru", TextKey::VoiceUnclear) => {
            "Извините, я не разобрал в этом сообщении ни слова. Повторите, пожалуйста, или напишите."
        }
        ("ru", TextKey::MediaTooLarge) => {
            "Извините, это слишком длинно для меня: я слушаю голосовые сообщения до \
{max_minutes} мин и принимаю файлы до {max_megabytes} МБ. Пришлите покороче или напишите текстом."
        }
        _ => return None,
    })
}

/// The bot's own texts that predate per-language texts: its start and error messages, in
/// its default language.
#[derive(Debug, Clone, Copy)]
pub struct LegacyTexts<'a> {
    pub start_message: &'a str,
    pub error_message: &'a str,
}

/// The text for `key` in the person's `language` (Telegram's `language_code`, e.g. `ru` or
/// `pt-br`): the bot's own text in that language, else the built-in one in that language;
/// else, in the bot's default language, its own text, else the built-in one; else English.
/// The start and error messages are the bot's own in its default language (they come before
/// a built-in text in another language: they say who the bot is).
pub fn choose(
    texts: &SystemTexts,
    legacy: LegacyTexts<'_>,
    key: TextKey,
    language: Option<&str>,
) -> String {
    let own = |lang: &str| -> Option<String> {
        texts
            .by_language
            .get(lang)
            .and_then(|by_key: &BTreeMap<TextKey, String>| by_key.get(&key))
            .cloned()
    };
    let legacy_text = match key {
        TextKey::Start => Some(legacy.start_message),
        TextKey::Error => Some(legacy.error_message),
        _ => None,
    }
    .filter(|text| !text.is_empty())
    .map(str::to_owned);
    let default = texts.default_language.as_str();
    let person = language
        .map(|code| {
            code.split(['-', '_'])
                .next()
                .unwrap_or(code)
                .to_ascii_lowercase()
        })
        .filter(|code| code != default);
    if let Some(person) = person.as_deref() {
        if let Some(text) = own(person) {
            return text;
        }
        if legacy_text.is_none() {
            if let Some(text) = built_in(key, person) {
                return text.to_owned();
            }
        }
    }
    own(default)
        .or(legacy_text)
        .or_else(|| built_in(key, default).map(str::to_owned))
        .or_else(|| built_in(key, "en").map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy() -> LegacyTexts<'static> {
        LegacyTexts {
            start_message: "Welcome to Example Ltd.",
            error_message: "Oops.",
        }
    }

    #[test]
    fn every_key_has_a_built_in_text_in_every_shipped_language() {
        for language in BUILT_IN_LANGUAGES {
            for key in [
                TextKey::Start,
                TextKey::Help,
                TextKey::Refresh,
                TextKey::MediaNotice,
                TextKey::Refusal,
                TextKey::GroupRefusal,
                TextKey::LimitReached,
                TextKey::BotLimitReached,
                TextKey::SlowDown,
                TextKey::Error,
                TextKey::NewConversation,
                TextKey::Usage,
                TextKey::UnknownButton,
                TextKey::MediaTooLarge,
                TextKey::VoiceUnclear,
            ] {
                assert!(built_in(key, language).is_some(), "{language} {key:?}");
            }
        }
    }

    #[test]
    fn a_text_is_chosen_by_the_persons_language_with_the_bots_default_as_fallback() {
        let mut texts = SystemTexts::default();
        assert!(choose(&texts, legacy(), TextKey::Help, Some("ru")).starts_with("Я отвечаю"));
        assert!(choose(&texts, legacy(), TextKey::Help, Some("ru-RU")).starts_with("Я отвечаю"));
        assert!(choose(&texts, legacy(), TextKey::Help, Some("pt-br")).starts_with("I answer"));
        assert!(choose(&texts, legacy(), TextKey::Help, None).starts_with("I answer"));
        // The bot's own start message speaks for it in any language it has no text for.
        assert_eq!(
            choose(&texts, legacy(), TextKey::Start, Some("ru")),
            "Welcome to Example Ltd."
        );
        texts.by_language.insert(
            "ru".into(),
            BTreeMap::from([(TextKey::Start, "Добро пожаловать!".to_owned())]),
        );
        assert_eq!(
            choose(&texts, legacy(), TextKey::Start, Some("ru")),
            "Добро пожаловать!"
        );
        // A bot whose default is Russian answers a Portuguese speaker in Russian.
        texts.default_language = "ru".into();
        assert!(choose(&texts, legacy(), TextKey::Refresh, Some("pt")).starts_with("Готово"));
    }
}
