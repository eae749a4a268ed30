//! Reading the event log as auditors see it: in commit order, filtered, secrets redacted.

use chrono::{DateTime, Utc};
use projections::{RecordedEvent, StreamPosition};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::event_store::stream::{COMMIT_ORDER, EVENT_COLUMNS, SETTLED_HORIZON};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub after: Option<StreamPosition>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    pub correlation_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Reads up to `limit` events matching `filter`, in commit order. Only settled events are
/// returned (none whose transaction might still commit before them), so paging with the
/// last position as `after` never skips one.
pub async fn read(
    pool: &PgPool,
    filter: &HistoryFilter,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events e
         WHERE e.transaction_id < {SETTLED_HORIZON}"
    ));
    if let Some(after) = filter.after {
        query
            .push(" AND (e.transaction_id, e.global_position) > (")
            .push_bind(after.transaction_id.to_string())
            .push("::xid8, ")
            .push_bind(after.global_position)
            .push(")");
    }
    if let Some(value) = &filter.aggregate_type {
        query
            .push(" AND e.aggregate_type = ")
            .push_bind(value.clone());
    }
    if let Some(value) = &filter.aggregate_id {
        query
            .push(" AND e.aggregate_id = ")
            .push_bind(value.clone());
    }
    if let Some(value) = &filter.event_type {
        query.push(" AND e.event_type = ").push_bind(value.clone());
    }
    if let Some(value) = &filter.correlation_id {
        query
            .push(" AND e.metadata ->> 'correlation_id' = ")
            .push_bind(value.clone());
    }
    if let Some(value) = filter.since {
        query.push(" AND e.recorded_at >= ").push_bind(value);
    }
    if let Some(value) = filter.until {
        query.push(" AND e.recorded_at <= ").push_bind(value);
    }
    query
        .push(format!(" ORDER BY {COMMIT_ORDER} LIMIT "))
        .push_bind(limit);
    let rows = query.build().fetch_all(pool).await?;
    rows.iter()
        .map(crate::event_store::stream::decode_row)
        .collect()
}

/// One event by its global position (settled or not: it is asked for by name).
pub async fn find(
    pool: &PgPool,
    global_position: i64,
) -> Result<Option<RecordedEvent>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.global_position = $1"
    ))
    .bind(global_position)
    .fetch_optional(pool)
    .await?;
    row.as_ref()
        .map(crate::event_store::stream::decode_row)
        .transpose()
}

/// Whether an aggregate has any event at all.
pub async fn stream_exists(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2)",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_one(pool)
    .await
}

/// The metadata of an aggregate's latest event of one of `event_types`: what a later effect
/// continues the story of.
pub async fn latest_metadata(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    event_types: &[&str],
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT metadata FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = ANY($3)
         ORDER BY sequence DESC LIMIT 1",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(event_types)
    .fetch_optional(pool)
    .await
}

/// The payload with every secret replaced: a sealed token's ciphertext and fingerprint.
/// (Personal data is sealed per person and shown as stored.)
pub fn redact(event_type: &str, mut payload: Value) -> Value {
    if matches!(event_type, "BotCreated" | "BotUpdated") {
        if let Some(token) = payload
            .get_mut(event_type)
            .and_then(|body| body.get_mut("token"))
            .and_then(Value::as_object_mut)
        {
            for secret in ["ciphertext", "fingerprint"] {
                if token.contains_key(secret) {
                    token.insert(secret.to_owned(), Value::String("[redacted]".into()));
                }
            }
        }
    }
    payload
}

/// Counts of what `verify` found wrong; all zero means the store is sound.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    pub events: i64,
    pub aggregates: i64,
    pub sequence_gaps: Vec<String>,
    pub undecodable: Vec<String>,
    pub duplicate_positions: i64,
    /// Events not decoded because a transaction before them stayed open for the whole wait.
    pub unchecked: bool,
}

impl Verification {
    pub fn is_sound(&self) -> bool {
        self.sequence_gaps.is_empty()
            && self.undecodable.is_empty()
            && self.duplicate_positions == 0
            && !self.unchecked
    }
}

/// How long `verify` waits for a transaction that holds back the rest of the stream.
const VERIFY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Checks the whole store: every aggregate's sequence runs 1..n without a gap, every payload
/// decodes with the current code (through the upcasters), and no position is used twice.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let mut report = Verification::default();
    let gaps = sqlx::query(
        "SELECT aggregate_type, aggregate_id, count(*) AS n, min(sequence) AS first,
                max(sequence) AS last
         FROM events GROUP BY aggregate_type, aggregate_id",
    )
    .fetch_all(pool)
    .await?;
    for row in &gaps {
        let (n, first, last): (i64, i64, i64) = (row.get("n"), row.get("first"), row.get("last"));
        report.aggregates += 1;
        report.events += n;
        if first != 1 || last != n {
            report.sequence_gaps.push(format!(
                "{} {}: {n} events numbered {first}..{last}",
                row.get::<String, _>("aggregate_type"),
                row.get::<String, _>("aggregate_id")
            ));
        }
    }
    report.duplicate_positions = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT global_position FROM events
                               GROUP BY global_position HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await?;
    let mut after = StreamPosition::START;
    // The stream is read in commit order, which is known for an event only once every older
    // transaction has ended: a running service may have one open for a moment.
    let patience = tokio::time::Instant::now() + VERIFY_PATIENCE;
    loop {
        let mut conn = pool.acquire().await?;
        let batch = crate::event_store::stream::read_batch(&mut conn, after, 1000).await?;
        drop(conn);
        for event in &batch.events {
            if let Err(e) = projections::decode::check(event) {
                report.undecodable.push(format!(
                    "{} {} #{} ({} {}): {e}",
                    event.aggregate_type,
                    event.aggregate_id,
                    event.sequence,
                    event.event_type,
                    event.event_version
                ));
            }
            after = event.position;
        }
        if batch.blocked && batch.events.is_empty() {
            if tokio::time::Instant::now() > patience {
                report.unchecked = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        if !batch.full && !batch.blocked {
            break;
        }
    }
    Ok(report)
}
