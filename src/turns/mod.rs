//! The effect runner's turns: claiming chats with due turns and working each chat's turns in
//! order, recording every outcome back as an event through the Chat aggregate.
//!
//! - [`runner`]: claims chats with due turns and works them, bounded in parallel.
//! - [`worker`]: one chat's turns, in order, and the recording the steps share.
//! - [`screen`]: whether the bot's policy lets a turn go ahead; a refusal's notice or leave.
//! - [`generate`]: a turn's response: a command's reply, the media notice, or the LLM's.
//! - [`media`]: a voice message transcribed, an image shown to the model.
//! - [`context`]: how much of the conversation the model is given (conversation limits).
//! - [`texts`]: the bot's system texts in the person's language.
//! - [`send`]: the response to Telegram, in parts, formatted, paced.
//! - [`stream`]: an LLM answer shown while it is written (drafts, or a paced preview in groups).
//! - [`callback`]: a button press answered.
//! - [`policy`]: what a step's outcome comes to (record what, retry when, or give up); pure.
//! - [`bot_rows`]: the bots' settings the webhook and the steps read, kept until the bot changes.

pub mod bot_rows;
pub mod callback;
pub mod context;
pub mod generate;
mod group_previews;
pub mod media;
pub mod policy;
pub mod runner;
pub mod screen;
pub mod send;
pub mod stream;
pub mod texts;
pub mod worker;
