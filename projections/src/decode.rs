//! Decoding stored events with the current code: upcasters first, then serde.

use std::sync::OnceLock;

use aggregates::bot::{Bot, BotEvent};
use aggregates::chat::{Chat, ChatEvent};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::Aggregate;
use serde_json::Value;

use crate::{ProjectionError, RecordedEvent};

fn upcasters() -> &'static [Box<dyn EventUpcaster>] {
    static UPCASTERS: OnceLock<Vec<Box<dyn EventUpcaster>>> = OnceLock::new();
    UPCASTERS.get_or_init(aggregates::upcasting::all)
}

/// The event's payload in the current shape.
pub fn upcast(event: &RecordedEvent) -> Value {
    let upcasters = upcasters();
    if upcasters.is_empty() {
        return event.payload.clone();
    }
    let mut serialized = SerializedEvent::new(
        event.aggregate_id.clone(),
        event.sequence as usize,
        event.aggregate_type.clone(),
        event.event_type.clone(),
        event.event_version.clone(),
        event.payload.clone(),
        event.metadata.clone(),
    );
    for upcaster in upcasters {
        if upcaster.can_upcast(&serialized.event_type, &serialized.event_version) {
            serialized = upcaster.upcast(serialized);
        }
    }
    serialized.payload
}

/// Whether the event decodes into its aggregate's event type.
pub fn check(event: &RecordedEvent) -> Result<(), ProjectionError> {
    match event.aggregate_type.as_str() {
        t if t == Bot::TYPE => event.decode::<BotEvent>().map(|_| ()),
        t if t == Chat::TYPE => event.decode::<ChatEvent>().map(|_| ()),
        t if t == aggregates::person::Person::TYPE => event
            .decode::<aggregates::person::PersonEvent>()
            .map(|_| ()),
        _ => Err(ProjectionError::BadAggregateId {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
        }),
    }
}
