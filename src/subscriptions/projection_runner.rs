//! Runs one projector over the global stream, exactly once per event.
//!
//! Each batch is one transaction: take the projector's advisory lock (so that of several
//! processes only one projects at a time, and a rebuild pauses the live runner), read the
//! checkpoint, apply the settled events, store the new checkpoint, commit. A crash anywhere
//! before the commit leaves both the rows and the checkpoint as they were.

use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::{Projector, StreamPosition};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::checkpoints::{self, SubscriptionProgress};
use super::reader::read_batch;
use super::wakeups::EventWakeups;

/// Events per transaction: large enough to amortise the commit, small enough to keep the
/// transaction short.
pub const BATCH_SIZE: i64 = 500;

/// How long a busy runner waits for more events before projecting: a commit costs the
/// database more than the events in it, and under load every commit would otherwise wake
/// every projection for one event each (pipeline bench).
const GATHER: Duration = Duration::from_millis(2);

/// A runner counts as busy when its previous batch started less than this long ago.
const GATHER_WHEN_BUSY_WITHIN: Duration = Duration::from_millis(10);

/// The advisory-lock namespace of projection runners (the first key of the two-key form).
const PROJECTION_LOCK_NAMESPACE: i32 = 0x6266_0001;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: usize,
    pub blocked: bool,
    pub full: bool,
    /// Another process holds this projection's lock.
    pub busy: bool,
    pub position: StreamPosition,
}

pub struct ProjectionRunner {
    pool: PgPool,
    projector: Arc<dyn Projector>,
    progress: SubscriptionProgress,
}

/// A stable 32-bit key per subscription name (FNV-1a), for the advisory lock.
pub(crate) fn lock_key(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash as i32
}

/// Takes the projector's lock for the rest of the transaction; `wait` blocks for it.
pub(crate) async fn lock_projection(
    conn: &mut PgConnection,
    name: &str,
    wait: bool,
) -> Result<bool, sqlx::Error> {
    if wait {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(PROJECTION_LOCK_NAMESPACE)
            .bind(lock_key(name))
            .execute(&mut *conn)
            .await?;
        Ok(true)
    } else {
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(PROJECTION_LOCK_NAMESPACE)
            .bind(lock_key(name))
            .fetch_one(&mut *conn)
            .await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("database error while projecting")]
    Database(#[from] sqlx::Error),
    #[error("the projector failed")]
    Projector(#[from] projections::ProjectionError),
}

impl ProjectionRunner {
    pub fn new(
        pool: PgPool,
        projector: Arc<dyn Projector>,
        progress: SubscriptionProgress,
    ) -> Self {
        Self {
            pool,
            projector,
            progress,
        }
    }

    /// Applies the next batch of settled events in one transaction.
    pub async fn run_batch(&self) -> Result<BatchOutcome, RunError> {
        let name = self.projector.name();
        let mut tx = self.pool.begin().await?;
        if !lock_projection(&mut tx, name, false).await? {
            return Ok(BatchOutcome {
                busy: true,
                ..BatchOutcome::default()
            });
        }
        let start = checkpoints::load(&mut tx, name).await?;
        let batch = read_batch(&mut tx, start, BATCH_SIZE).await?;
        let mut position = start;
        for event in &batch.events {
            self.projector.project(&mut tx, event).await?;
            position = event.position;
        }
        if position != start {
            checkpoints::store(&mut tx, name, position).await?;
        }
        tx.commit().await?;
        self.progress.advance(name, position);
        Ok(BatchOutcome {
            applied: batch.events.len(),
            blocked: batch.blocked,
            full: batch.full,
            busy: false,
            position,
        })
    }

    /// Runs until `shutdown`, reading as soon as a commit is announced.
    pub fn spawn(
        self,
        wakeups: EventWakeups,
        poll_interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let name = self.projector.name();
            if let Err(e) = checkpoints::ensure(&self.pool, name).await {
                tracing::error!(projection = name, error = ?e, "cannot create the checkpoint");
            }
            let mut wake = wakeups.subscribe();
            let mut blocked_pause = Duration::from_millis(1);
            let mut error_pause = Duration::from_millis(100);
            let mut last_batch = Instant::now() - GATHER_WHEN_BUSY_WITHIN;
            loop {
                // Busy: let a few more commits arrive, so that one transaction projects them
                // all instead of one each. Idle: project at once.
                if last_batch.elapsed() < GATHER_WHEN_BUSY_WITHIN {
                    tokio::time::sleep(GATHER).await;
                }
                wake.borrow_and_update();
                last_batch = Instant::now();
                let pause = match self.run_batch().await {
                    Ok(outcome) => {
                        error_pause = Duration::from_millis(100);
                        if outcome.applied > 0 {
                            tracing::debug!(projection = name, applied = outcome.applied, position = %outcome.position, "projected");
                        }
                        if outcome.full {
                            continue;
                        }
                        if outcome.blocked {
                            // Wait for the transaction in flight; its commit (or abort, which
                            // sends no notification) will be seen on the next read.
                            let pause = blocked_pause;
                            blocked_pause = (blocked_pause * 2).min(Duration::from_millis(50));
                            Some(pause)
                        } else {
                            blocked_pause = Duration::from_millis(1);
                            None
                        }
                    }
                    Err(e) => {
                        tracing::error!(projection = name, error = ?e, "projection failed; retrying");
                        let pause = error_pause;
                        error_pause = (error_pause * 2).min(Duration::from_secs(30));
                        Some(pause)
                    }
                };
                let sleep = pause.unwrap_or(poll_interval);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.changed(), if pause.is_none() => {}
                    _ = tokio::time::sleep(sleep) => {}
                }
            }
        })
    }
}
