//! Poison events: what a projector could not apply after its attempts ran out, and what an
//! operator did about it (`projection_faults`).
//!
//! A *paused* subscription stands before its event until an operator either retries it
//! (after fixing the cause) or skips it (moving the checkpoint past it, knowingly leaving
//! the read model without it). A *parked* event was left behind by a subscription that went
//! on; skipping it acknowledges it, and a rebuild replays it with everything else.

use std::fmt;

use chrono::{DateTime, Utc};
use projections::{RecordedEvent, StreamPosition};
use sqlx::{PgConnection, PgPool};

use super::checkpoints;
use super::projection_runner::lock_projection;
use super::wakeups::EVENTS_CHANNEL;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStatus {
    /// The subscription stands before this event.
    Paused,
    /// The subscription went on without this event.
    Parked,
    /// An operator asked for another try; applied once the checkpoint is past it.
    Retried,
    /// An operator moved past it (or acknowledged it, when it was parked).
    Skipped,
}

impl FaultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultStatus::Paused => "paused",
            FaultStatus::Parked => "parked",
            FaultStatus::Retried => "retried",
            FaultStatus::Skipped => "skipped",
        }
    }

    fn parse(value: &str) -> Result<Self, sqlx::Error> {
        Ok(match value {
            "paused" => FaultStatus::Paused,
            "parked" => FaultStatus::Parked,
            "retried" => FaultStatus::Retried,
            "skipped" => FaultStatus::Skipped,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown fault status {other:?}").into(),
                ))
            }
        })
    }

    /// Whether the fault still needs an operator.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, FaultStatus::Paused | FaultStatus::Parked)
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One poison event of one subscription.
#[derive(Debug, Clone)]
pub struct Fault {
    pub subscription: String,
    pub position: StreamPosition,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// The projector's error, with its causes.
    pub error: String,
    /// Failed attempts, over every try (an operator's retry adds to them).
    pub attempts: i32,
    pub status: FaultStatus,
    pub failed_at: DateTime<Utc>,
    /// Who retried or skipped it (`admin:<id>`, `cli:<user>`).
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A `projection_faults` row as selected by [`FAULT_COLUMNS`].
#[derive(sqlx::FromRow)]
struct FaultRow {
    subscription: String,
    commit_txid: String,
    global_position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    error: String,
    attempts: i32,
    status: String,
    failed_at: DateTime<Utc>,
    resolved_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
}

const FAULT_COLUMNS: &str = "subscription, transaction_id::text AS commit_txid, global_position,
    aggregate_type, aggregate_id, sequence, event_type, error, attempts, status, failed_at,
    resolved_by, resolved_at";

fn decode(row: FaultRow) -> Result<Fault, sqlx::Error> {
    Ok(Fault {
        position: StreamPosition {
            transaction_id: row
                .commit_txid
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            global_position: row.global_position,
        },
        status: FaultStatus::parse(&row.status)?,
        subscription: row.subscription,
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        sequence: row.sequence,
        event_type: row.event_type,
        error: row.error,
        attempts: row.attempts,
        failed_at: row.failed_at,
        resolved_by: row.resolved_by,
        resolved_at: row.resolved_at,
    })
}

/// Records that `subscription` paused before, or parked, `event` (in the runner's
/// transaction). A fault recorded again (it failed after a retry) adds its attempts.
pub(crate) async fn record(
    conn: &mut PgConnection,
    subscription: &str,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
    status: FaultStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_faults (subscription, transaction_id, global_position,
            aggregate_type, aggregate_id, sequence, event_type, error, attempts, status)
         VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (subscription, global_position) DO UPDATE SET
            error = EXCLUDED.error,
            attempts = projection_faults.attempts + EXCLUDED.attempts,
            status = EXCLUDED.status,
            failed_at = now(),
            resolved_by = NULL,
            resolved_at = NULL",
    )
    .bind(subscription)
    .bind(event.position.transaction_id.to_string())
    .bind(event.position.global_position)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .bind(&event.event_type)
    .bind(error)
    .bind(attempts as i32)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The faults of one subscription (or all), open ones first, newest first.
pub async fn list(
    conn: impl sqlx::PgExecutor<'_>,
    subscription: Option<&str>,
    only_open: bool,
) -> Result<Vec<Fault>, sqlx::Error> {
    let rows: Vec<FaultRow> = sqlx::query_as(&format!(
        "SELECT {FAULT_COLUMNS} FROM projection_faults
         WHERE ($1::text IS NULL OR subscription = $1)
           AND (NOT $2 OR status IN ('paused', 'parked'))
         ORDER BY status NOT IN ('paused', 'parked'), failed_at DESC, global_position DESC
         LIMIT 1000"
    ))
    .bind(subscription)
    .bind(only_open)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(decode).collect()
}

/// What an operator's retry or skip could not do.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0} is not paused")]
    NotPaused(String),
    #[error("no paused or parked event at position {position}{}", .subscription.as_ref().map(|s| format!(" in {s}")).unwrap_or_default())]
    NoSuchFault {
        subscription: Option<String>,
        position: String,
    },
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
}

/// Resumes a paused subscription: the runners try its event again (with a fresh set of
/// attempts), after the operator fixed what made it fail. Returns the event.
pub async fn retry(pool: &PgPool, subscription: &str, by: &str) -> Result<Fault, ResolveError> {
    let mut tx = pool.begin().await?;
    let row: Option<FaultRow> = sqlx::query_as(&format!(
        "UPDATE projection_faults SET status = 'retried', resolved_by = $2, resolved_at = now()
         WHERE subscription = $1 AND status = 'paused'
         RETURNING {FAULT_COLUMNS}"
    ))
    .bind(subscription)
    .bind(by)
    .fetch_optional(&mut *tx)
    .await?;
    let fault = decode(row.ok_or_else(|| ResolveError::NotPaused(subscription.to_owned()))?)?;
    wake_runners(&mut tx).await?;
    tx.commit().await?;
    tracing::info!(subscription, position = %fault.position, by, "poison event retried");
    Ok(fault)
}

/// Skips a poison event: a paused subscription moves its checkpoint past it (its read model
/// will never hold it); a parked one is acknowledged. `position` is `transaction/position`
/// as listed, or the global position alone. Returns the faults resolved.
pub async fn skip(
    pool: &PgPool,
    subscription: Option<&str>,
    position: &str,
    by: &str,
) -> Result<Vec<Fault>, ResolveError> {
    let no_such = || ResolveError::NoSuchFault {
        subscription: subscription.map(str::to_owned),
        position: position.to_owned(),
    };
    let global_position: i64 = position
        .rsplit('/')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(no_such)?;
    let mut tx = pool.begin().await?;
    let rows: Vec<FaultRow> = sqlx::query_as(&format!(
        "SELECT {FAULT_COLUMNS} FROM projection_faults
         WHERE global_position = $1 AND ($2::text IS NULL OR subscription = $2)
           AND status IN ('paused', 'parked')
         ORDER BY subscription
         FOR UPDATE"
    ))
    .bind(global_position)
    .bind(subscription)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Err(no_such());
    }
    let mut resolved = Vec::new();
    for row in rows {
        let mut fault = decode(row)?;
        if fault.status == FaultStatus::Paused {
            // The runner stopped right before this event: moving the checkpoint onto it is
            // stepping over exactly this one.
            lock_projection(&mut tx, &fault.subscription, true).await?;
            let checkpoint = checkpoints::load(&mut tx, &fault.subscription).await?;
            if checkpoint < fault.position {
                checkpoints::store(&mut tx, &fault.subscription, fault.position).await?;
            }
        }
        sqlx::query(
            "UPDATE projection_faults SET status = 'skipped', resolved_by = $3, resolved_at = now()
             WHERE subscription = $1 AND global_position = $2",
        )
        .bind(&fault.subscription)
        .bind(global_position)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        tracing::warn!(subscription = fault.subscription, position = %fault.position, by, was = %fault.status, "poison event skipped");
        fault.status = FaultStatus::Skipped;
        fault.resolved_by = Some(by.to_owned());
        resolved.push(fault);
    }
    wake_runners(&mut tx).await?;
    tx.commit().await?;
    Ok(resolved)
}

/// Positions a rebuild must not replay: events an operator chose to skip.
pub(crate) async fn skipped_positions(
    conn: &mut PgConnection,
    subscription: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT global_position FROM projection_faults
         WHERE subscription = $1 AND status = 'skipped'",
    )
    .bind(subscription)
    .fetch_all(&mut *conn)
    .await
}

/// A rebuild decides every event afresh: its open faults go (they come back if the events
/// still fail); resolved ones stay as history.
pub(crate) async fn clear_open(
    conn: &mut PgConnection,
    subscription: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM projection_faults WHERE subscription = $1 AND status IN ('paused', 'parked')",
    )
    .bind(subscription)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Runners in every process read again at once (NOTIFY is delivered at commit).
async fn wake_runners(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
