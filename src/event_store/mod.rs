//! Appending to the event store: commands in, events out, each with its metadata.

mod gateway;
mod metadata;

pub use gateway::{CommandError, CommandGateway, Committed};
pub use metadata::{Actor, EventMetadata};
