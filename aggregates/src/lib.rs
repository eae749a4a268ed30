//! Botfleet's domain: the aggregates whose events are the system's source of truth.
//!
//! - [`bot`]: a Telegram bot registered by an admin (its settings, sealed token and lifecycle).
//! - [`chat`]: one Telegram chat with one bot: messages received, responses generated and sent.
//! - [`ids`]: typed identities (bot, chat, update, turn) and the bot error kinds.
//!
//! This crate is pure domain: no database, no HTTP. Side effects the domain needs (sealing a
//! bot token) sit behind service traits that the application implements, so every rule here is
//! unit-tested with cqrs-es's `TestFramework`.
#![forbid(unsafe_code)]

pub mod bot;
pub mod chat;
pub mod ids;
pub mod person;
pub mod personal;
pub mod text;
pub mod upcasting;

/// The version written into `events.event_version` for every event of the current schema.
/// An incompatible change bumps it and adds an upcaster for the old one.
pub const EVENT_VERSION: &str = "1.0";
