//! Botfleet: a self-hosted, event-sourced platform for a fleet of LLM-answered Telegram bots.
//!
//! The rooms of this crate, in the order an update's data flows through them. Each room may
//! use the rooms listed *below* it and none above (a test, `tests/integration/floor_plan.rs`,
//! fails when one does), so a newcomer in a room knows what it may touch:
//!
//! - [`cli`], [`installation`], [`app`], [`config`]: the wiring. `cli` is the `botfleet`
//!   command; `installation` is Botfleet on this machine (the database: DATABASE_URL or the
//!   [`embedded_db`] in the [`data_dir`]; generated keys; backups); `app` builds one running
//!   service (pool, gateways, subscriptions, runners, HTTP server) from a
//!   [`config::Config`], which hands each subsystem its own settings.
//! - [`console`]: the admin console, web pages for admins and auditors under `/console`,
//!   built on the HTTP room's sessions and the API's own operations and read models.
//! - [`http`]: the HTTP surface: Telegram's webhook, the admin API (poem-openapi, one error
//!   enum per operation), health and metrics. Each API holds only what it uses.
//! - [`turns`] and [`bots`]: the effects. `turns` claims chats with due turns and works each
//!   chat's turns in order (ask the LLM, send to Telegram, record every outcome as an
//!   event); `bots` keeps each bot reachable (webhooks set and deleted, pollers started) and
//!   sends admins their alerts.
//! - [`intake`], [`auth`], [`health`]: accepting Telegram updates exactly once (webhook and
//!   polling); admin accounts and sessions; how far behind the pipeline is.
//! - [`subscriptions`], [`personal_data`]: catch-up subscriptions that run the projectors of
//!   the `projections` crate with durable checkpoints (and park or pause on poison events);
//!   per-person keys that seal names and texts (crypto-shredding).
//! - [`event_store`]: commands in, events out through a [`event_store::CommandGateway`], with
//!   correlation, causation and actor metadata; the stream read in commit order; history and
//!   time travel for auditors.
//! - [`keyring`]: the store's sealing keys, checked at start and rotated.
//! - [`llm`], [`telegram`]: the outside world's adapters, behind traits the effects code
//!   against ([`llm::LanguageModel`]; Telegram's markdown, splitting, pacing and failures).
//! - The ground floor: [`runtime`] (backoff, leases, the intake-to-runner hand-off, error
//!   chains, TLS), [`secrets`], [`metrics`], [`rate_limit`], [`db`], [`telemetry`],
//!   [`data_dir`], [`embedded_db`].
//!
//! Between crates, dependencies point one way: this crate uses `projections` (read models and
//! every query on them), which uses `aggregates` (the domain, no I/O).
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod bots;
pub mod cli;
pub mod config;
pub mod console;
pub mod data_dir;
pub mod db;
pub mod embedded_db;
pub mod event_store;
pub mod health;
pub mod http;
pub mod installation;
pub mod intake;
pub mod keyring;
pub mod llm;
pub mod metrics;
pub mod personal_data;
pub mod rate_limit;
pub mod runtime;
pub mod secrets;
pub mod subscriptions;
pub mod telegram;
pub mod telemetry;
pub mod turns;
