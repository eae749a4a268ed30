//! Talking to the Telegram Bot API (at TELEGRAM_API_URL): our own HTTP calls, teloxide-core's
//! payloads and types.
//!
//! - [`bot_api`]: one call, one request, one classified answer (no sleeping on a 5xx).
//! - [`clients`]: one endpoint per bot, made on demand from its sealed token and cached.
//! - [`updates`]: the parts of an incoming update Botfleet reads.
//! - [`failures`]: what a failed call means for the turn (retry, give up, stop the bot).
//! - [`split`]: long replies become several messages, cut at natural boundaries.
//! - [`markdown`]: the LLM's Markdown as Telegram HTML.
//! - [`pacing`]: Telegram's flood limits per chat, group and bot.
//! - [`messenger`]: the calls made answering a chat (send, typing, answer a button), as a trait.
//! - [`files`]: a voice message's or photo's bytes, fetched with the bot's own token.
//! - [`drafts`]: an answer shown while it is written (drafts, or a preview message in groups).

pub mod bot_api;
pub mod clients;
pub mod drafts;
pub mod failures;
pub mod files;
pub mod markdown;
pub mod messenger;
pub mod pacing;
pub mod split;
pub mod updates;

pub use clients::TelegramClients;
pub use messenger::{BotMessenger, Messenger};
