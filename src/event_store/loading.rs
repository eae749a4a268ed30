//! Loading an aggregate that keeps snapshots in one statement: its snapshot and the events
//! after it, read together. cqrs-es reads them one after the other, two round trips and two
//! transactions, which for a new chat (no snapshot, no events) was a fifth of a turn's
//! commits. The rows and their meaning are postgres-es's; the events pass through the same
//! upcasters and are applied as cqrs-es applies them.

use cqrs_es::persist::{
    EventStoreAggregateContext, EventUpcaster, PersistenceError, SerializedEvent,
    SerializedSnapshot,
};
use cqrs_es::{Aggregate, EventEnvelope};
use sqlx::PgPool;

/// One row: the snapshot (no sequence) first, then the events after it, in order.
type Row = (
    Option<i64>,
    Option<String>,
    Option<String>,
    serde_json::Value,
    Option<i64>,
    Option<i64>,
);

/// The aggregate `aggregate_id` as of now, or `None` when its snapshot cannot be read (an
/// aggregate whose shape changed): the caller then replays every event, as cqrs-es does.
pub async fn load_with_snapshot<A: Aggregate>(
    pool: &PgPool,
    upcasters: &[Box<dyn EventUpcaster>],
    aggregate_id: &str,
) -> Result<Option<EventStoreAggregateContext<A>>, LoadError> {
    let rows: Vec<Row> = sqlx::query_as(
        "WITH snapshot AS (
            SELECT last_sequence, current_snapshot, payload FROM snapshots
            WHERE aggregate_type = $1 AND aggregate_id = $2
            ORDER BY last_sequence DESC LIMIT 1
         )
         SELECT NULL::bigint, NULL::text, NULL::text, payload, last_sequence, current_snapshot
         FROM snapshot
         UNION ALL
         SELECT * FROM (
            SELECT e.sequence, e.event_type, e.event_version, e.payload, NULL::bigint, NULL::bigint
            FROM events e
            WHERE e.aggregate_type = $1 AND e.aggregate_id = $2
              AND e.sequence > coalesce((SELECT last_sequence FROM snapshot), 0)
            ORDER BY e.sequence
         ) after_snapshot",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    let mut context = EventStoreAggregateContext {
        aggregate_id: aggregate_id.to_owned(),
        aggregate: A::default(),
        current_sequence: 0,
        current_snapshot: None,
    };
    for (sequence, event_type, event_version, payload, last_sequence, current_snapshot) in rows {
        let (Some(sequence), Some(event_type), Some(event_version)) =
            (sequence, event_type, event_version)
        else {
            let snapshot = SerializedSnapshot {
                aggregate_id: aggregate_id.to_owned(),
                aggregate: payload,
                current_sequence: last_sequence.unwrap_or_default() as usize,
                current_snapshot: current_snapshot.unwrap_or_default() as usize,
            };
            match EventStoreAggregateContext::try_from(snapshot) {
                Ok(from_snapshot) => context = from_snapshot,
                Err(PersistenceError::DeserializationError(_)) => return Ok(None),
                Err(e) => return Err(LoadError::Event(e)),
            }
            continue;
        };
        let serialized = SerializedEvent::new(
            aggregate_id.to_owned(),
            sequence as usize,
            A::TYPE.to_owned(),
            event_type,
            event_version,
            payload,
            serde_json::Value::Object(Default::default()),
        );
        let upcast = upcasters.iter().fold(serialized, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        });
        let envelope = EventEnvelope::<A>::try_from(upcast).map_err(LoadError::Event)?;
        context.current_sequence = envelope.sequence;
        context.aggregate.apply(envelope.payload);
    }
    Ok(Some(context))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the aggregate could not be read")]
    Read(#[from] sqlx::Error),
    #[error("an event of the aggregate could not be read")]
    Event(#[source] PersistenceError),
}
