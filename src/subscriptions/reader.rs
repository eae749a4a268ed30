//! Reading the global stream in commit order.

use projections::{RecordedEvent, StreamPosition};
use sqlx::{PgConnection, Row};

/// Events after a position, up to the first one whose transaction might not be the last to
/// commit below it.
#[derive(Debug, Default)]
pub struct Batch {
    /// Settled events, in order: everything before them has committed or never will.
    pub events: Vec<RecordedEvent>,
    /// A visible event lies beyond a transaction that is still running: read again soon
    /// rather than wait for the next notification, which may already have passed.
    pub blocked: bool,
    /// The batch hit its limit: more events are waiting.
    pub full: bool,
}

/// Reads up to `limit` settled events after `after`.
pub async fn read_batch(
    conn: &mut PgConnection,
    after: StreamPosition,
    limit: i64,
) -> Result<Batch, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT global_position, transaction_id::text AS transaction_id, aggregate_type,
                aggregate_id, sequence, event_type, event_version, payload, metadata,
                recorded_at,
                transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AS settled
         FROM events
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
         ORDER BY transaction_id, global_position
         LIMIT $3",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut batch = Batch {
        full: rows.len() as i64 == limit,
        ..Batch::default()
    };
    for row in rows {
        if !row.try_get::<bool, _>("settled")? {
            batch.blocked = true;
            batch.full = false;
            break;
        }
        batch.events.push(decode_row(&row)?);
    }
    Ok(batch)
}

pub(crate) fn decode_row(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let transaction_id: String = row.try_get("transaction_id")?;
    Ok(RecordedEvent {
        position: StreamPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            global_position: row.try_get("global_position")?,
        },
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}
