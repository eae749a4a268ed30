//! Reading the global stream in commit order.
//!
//! Every reader of the stream (subscriptions, the audit feed, `events export`, time travel)
//! selects [`EVENT_COLUMNS`] and sorts by [`COMMIT_ORDER`]. The transaction id travels to Rust
//! as text (sqlx has no `xid8` type) under a name of its own, `commit_txid`: PostgreSQL
//! resolves an `ORDER BY` name to an output column before an input column, so an alias
//! `transaction_id` would make `ORDER BY transaction_id` sort the text ("1000" < "999") and
//! skip events wherever a batch spans a power of ten. Sorting by the qualified `e.` columns
//! always means the `xid8` value.

use projections::{RecordedEvent, StreamPosition};
use sqlx::{PgConnection, Row};

/// The columns [`decode_row`] reads, from `events e`.
pub(crate) const EVENT_COLUMNS: &str =
    "e.global_position, e.transaction_id::text AS commit_txid, e.aggregate_type,
     e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata,
     e.recorded_at";

/// Commit order: by the `xid8` value of the writing transaction, then by position.
pub(crate) const COMMIT_ORDER: &str = "e.transaction_id, e.global_position";

/// The horizon below which every event the statement sees is settled: the oldest transaction
/// in flight at the statement's snapshot that could still commit an event here. That is every
/// transaction in flight (`pg_snapshot_xip`) except those positively known to belong to a
/// session connected to another database (`pg_stat_activity`), which cannot write to this
/// one's `events`; with none left, the snapshot's `xmax`. Transaction ids are cluster-wide, so
/// the plain `pg_snapshot_xmin` would let any write transaction on the same server, in any
/// database (an idle-in-transaction session of another application, say), hold every reader
/// here back for as long as it stays open. A transaction that cannot be placed (its session
/// ended meanwhile, a prepared transaction, its details hidden from this role) still counts:
/// the horizon is only ever lowered by what is known.
pub(crate) const SETTLED_HORIZON: &str = "(SELECT coalesce(
        (SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE NOT EXISTS (
            SELECT 1 FROM pg_stat_activity a
            WHERE a.datname IS DISTINCT FROM current_database()
              AND a.backend_xid::text = (x::text::numeric % 4294967296)::text)
         ORDER BY x LIMIT 1),
        pg_snapshot_xmax(pg_current_snapshot())))";

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
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS},
                e.transaction_id < {SETTLED_HORIZON} AS settled
         FROM events e
         WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
         ORDER BY {COMMIT_ORDER}
         LIMIT $3"
    ))
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

/// What lies after a position: how many committed events, and how long ago the oldest of
/// them was recorded, in seconds (a subscription's lag and age).
pub async fn pending_after(
    conn: &mut PgConnection,
    after: StreamPosition,
) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(recorded_at))::float8
         FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .fetch_one(&mut *conn)
    .await
}

/// The newest committed event of one aggregate type, in commit order.
pub async fn newest_of_type(
    conn: &mut PgConnection,
    aggregate_type: &str,
) -> Result<Option<StreamPosition>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events
         WHERE aggregate_type = $1
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .bind(aggregate_type)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(transaction_id, global_position)| {
        Ok(StreamPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            global_position,
        })
    })
    .transpose()
}

/// An event from a row of [`EVENT_COLUMNS`].
pub(crate) fn decode_row(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let transaction_id: String = row.try_get("commit_txid")?;
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
