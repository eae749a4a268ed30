//! Appending to the event store: commands in, events out, each with its metadata.

mod gateway;
pub mod history;
mod loading;
mod metadata;
pub mod stream;
pub mod time_travel;

pub use gateway::{CommandError, CommandGateway, Committed, LoadedAggregate};
pub use metadata::{update_correlation_id, Actor, EventMetadata};
