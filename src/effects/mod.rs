//! The effect runner: reacting to events by calling Telegram and the LLM, and recording
//! every outcome back as an event through the aggregates.
//!
//! - [`leases`]: which process works on which chat or bot right now.
//! - [`chat_runner`]: claims chats with due turns and works them, bounded in parallel.
//! - [`fresh_work`]: the fast path from this process's intake to its runner.
//! - [`turns`]: one chat's turns, in order: generate the response, send it, record both.
//! - [`bot_supervisor`]: webhooks set and deleted, pollers started and stopped.
//! - [`backoff`]: when a failed attempt may be tried again.
//! - [`alerts`]: admin notifications of final errors, deduplicated per bot and kind.

pub mod alerts;
pub mod backoff;
pub mod bot_supervisor;
pub mod chat_runner;
pub mod fresh_work;
pub mod leases;
pub mod turns;
