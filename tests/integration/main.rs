//! Botfleet's integration tests: the real application on a random port, a fresh database per
//! test (dropped afterwards), and fake outside servers on 127.0.0.1.
//!
//! One test binary with modules, so the dependency tree links once.

mod fakes;
mod helpers;

mod bots_api;
mod event_store;
mod llm;
mod openapi;
mod resilience;
mod subscriptions;
mod turns;
