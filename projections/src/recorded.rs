//! An event as the store holds it, with the columns postgres-es never writes.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::ProjectionError;

/// A place in the global stream. Events are ordered by the id of the transaction that wrote
/// them, then by their position: a reader that followed positions alone would skip an event
/// whose transaction committed after a later position was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamPosition {
    pub transaction_id: u64,
    pub global_position: i64,
}

impl StreamPosition {
    /// Before the first event.
    pub const START: StreamPosition = StreamPosition {
        transaction_id: 0,
        global_position: 0,
    };
}

impl std::fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.transaction_id, self.global_position)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: StreamPosition,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Decodes the payload into an aggregate's event type, upcasting an older version first.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, ProjectionError> {
        serde_json::from_value(crate::decode::upcast(self)).map_err(|source| {
            ProjectionError::Decode {
                event_type: self.event_type.clone(),
                position: self.position.global_position,
                source,
            }
        })
    }

    /// The aggregate id as a UUID, the form every Botfleet aggregate uses.
    pub fn aggregate_uuid(&self) -> Result<uuid::Uuid, ProjectionError> {
        self.aggregate_id
            .parse()
            .map_err(|_| ProjectionError::BadAggregateId {
                aggregate_type: self.aggregate_type.clone(),
                aggregate_id: self.aggregate_id.clone(),
            })
    }
}
