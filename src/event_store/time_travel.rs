//! Time travel: an aggregate's read-model rows as they were at an instant.
//!
//! The projector that builds the live rows replays the aggregate's events up to the instant
//! into temporary tables that shadow its live ones (PostgreSQL searches the session's
//! temporary schema first), in a transaction that is rolled back: the answer is exactly what
//! the live read model showed then, from the same code, and nothing is left behind.

use chrono::{DateTime, Utc};
use projections::{Projector, RecordedEvent};
use sqlx::{Connection, PgConnection, PgPool};

use crate::event_store::stream::EVENT_COLUMNS;

/// A connection of its own, holding the shadow tables until it is dropped.
pub struct PastView {
    connection: PgConnection,
    /// How many events were replayed: 0 means the aggregate did not exist yet.
    pub events: usize,
}

impl PastView {
    /// The connection to query, with the usual read-model queries.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}

/// Replays `aggregate_type`/`aggregate_id`'s events recorded up to `as_of` through
/// `projector` into shadow tables.
pub async fn view_as_of(
    pool: &PgPool,
    projector: &dyn Projector,
    aggregate_type: &str,
    aggregate_id: &str,
    as_of: DateTime<Utc>,
) -> Result<PastView, TimeTravelError> {
    // A fresh connection: a pooled one may hold statements prepared against the live
    // tables, which would bypass the shadows.
    let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("BEGIN").execute(&mut connection).await?;
    for table in projector.tables() {
        // Table names come from the projector's own constant list, never from input.
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP"
        ))
        .execute(&mut connection)
        .await?;
    }
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e
         WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 AND e.recorded_at <= $3
         ORDER BY e.sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(as_of)
    .fetch_all(&mut connection)
    .await?;
    let events: Vec<RecordedEvent> = rows
        .iter()
        .map(crate::event_store::stream::decode_row)
        .collect::<Result<_, _>>()?;
    for event in &events {
        projector.project(&mut connection, event).await?;
    }
    Ok(PastView {
        connection,
        events: events.len(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TimeTravelError {
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    #[error("an event could not be replayed")]
    Projection(#[from] projections::ProjectionError),
}
