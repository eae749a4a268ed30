//! Botfleet's integration tests: the real application on a random port, a fresh database per
//! test (dropped afterwards), and fake outside servers on 127.0.0.1.
//!
//! One test binary with modules, so the dependency tree links once.

mod browser;
mod fakes;
mod helpers;
mod served;

mod allowances;
mod audit;
mod auth;
mod bots_api;
mod chats_api;
mod commit_order;
mod console;
mod console_api;
mod embedded_db;
mod erasure;
mod event_store;
mod failures;
mod fairness;
mod first_admin;
mod floor_plan;
mod fresh_machine;
mod health;
mod idle;
mod input_edges;
mod key_rotation;
mod limits;
mod llm;
mod media;
mod metrics;
mod openapi;
mod projection_faults;
mod resilience;
mod restored_counter;
mod retry_timing;
mod runner_index;
mod schema_conformance;
mod start_up;
mod streaming;
mod subscriptions;
mod takeover;
mod telegram_transport;
mod turn_worker;
mod turns;
