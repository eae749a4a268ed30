//! Botfleet: a self-hosted, event-sourced platform for a fleet of LLM-answered Telegram bots.
//!
//! Where to start reading:
//!
//! - [`cli`]: the `botfleet` command (`serve`, `migrate`, `openapi`, `projections …`).
//! - [`app`]: wires one running service together: the pool, the command gateways, the
//!   subscriptions and the HTTP server; tests build it the same way on a random port.
//! - [`config`]: every setting, read from the environment or flags, checked at start.
//! - [`event_store`]: commands go in through a [`event_store::CommandGateway`], which appends
//!   the aggregates' events (with correlation, causation and actor metadata) to Postgres.
//! - [`subscriptions`]: catch-up subscriptions over the global event order; they run the
//!   projectors of the `projections` crate with durable checkpoints.
//! - [`api`]: the admin HTTP API (poem-openapi), whose reads come from the read models, and
//!   the open endpoints (Telegram's webhook, health, metrics).
//! - [`auth`]: admin accounts, server-side sessions and the failed-login throttle.
//! - [`health`], [`metrics`], [`rate_limit`]: what operators watch, and what keeps one client
//!   or one bot from taking the whole service.
//! - [`secrets`]: sealing bot tokens before they enter an event; [`keyring`]: the store's
//!   sealing keys, checked at start and rotated.
//! - [`installation`]: Botfleet on this machine: the database (DATABASE_URL, or the
//!   [`embedded_db`] in the [`data_dir`]), generated keys, backups.
//!
//! Dependencies point one way: this crate uses `projections`, which uses `aggregates`.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod bots;
pub mod cli;
pub mod config;
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
