//! Runs projectors over the global stream, each exactly once per event.
//!
//! Each batch is one transaction: take each projector's advisory lock (so that of several
//! processes only one projects it at a time, and a rebuild pauses the live runner), read the
//! checkpoints, apply the settled events, store the new checkpoints, commit. A crash anywhere
//! before the commit leaves both the rows and the checkpoints as they were.
//!
//! Several projectors can share a runner: one transaction then projects a batch for all of
//! them, which costs the database one commit instead of one each. Each keeps its own
//! checkpoint, so one can be rebuilt (or be behind) while the others go on; and when a batch
//! fails, the next tries each projector on its own, so a broken projector holds back only
//! its own read model.

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
    projectors: Vec<Arc<dyn Projector>>,
    progress: SubscriptionProgress,
    /// Events per transaction ([`BATCH_SIZE`] unless a test asks for another).
    batch_size: i64,
    /// The last batch failed: try each projector alone until one succeeds together again.
    isolate: std::sync::atomic::AtomicBool,
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

/// Tries the locks of several projections at once; returns which were taken.
async fn try_lock_projections(
    conn: &mut PgConnection,
    names: &[&'static str],
) -> Result<Vec<bool>, sqlx::Error> {
    let keys: Vec<i32> = names.iter().map(|name| lock_key(name)).collect();
    let taken: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT n, pg_try_advisory_xact_lock($1, k)
         FROM unnest($2::int[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
    )
    .bind(PROJECTION_LOCK_NAMESPACE)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    Ok(taken.into_iter().map(|(_, taken)| taken).collect())
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
        Self::group(pool, vec![projector], progress)
    }

    /// One runner, and one transaction per batch, for several projectors.
    pub fn group(
        pool: PgPool,
        projectors: Vec<Arc<dyn Projector>>,
        progress: SubscriptionProgress,
    ) -> Self {
        Self {
            pool,
            projectors,
            progress,
            batch_size: BATCH_SIZE,
            isolate: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Reads at most `events` per transaction.
    #[must_use]
    pub fn with_batch_size(mut self, events: i64) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Applies the next batch of settled events in one transaction (one per projector
    /// after a failure, until they succeed again).
    pub async fn run_batch(&self) -> Result<BatchOutcome, RunError> {
        use std::sync::atomic::Ordering;
        if self.projectors.len() == 1 || !self.isolate.load(Ordering::Relaxed) {
            let outcome = self.run_batch_for(&self.projectors).await;
            if outcome.is_err() && self.projectors.len() > 1 {
                self.isolate.store(true, Ordering::Relaxed);
            }
            return outcome;
        }
        let mut combined = BatchOutcome {
            busy: true,
            ..BatchOutcome::default()
        };
        let mut failures = Vec::new();
        for projector in &self.projectors {
            match self.run_batch_for(std::slice::from_ref(projector)).await {
                Ok(outcome) => {
                    combined.applied += outcome.applied;
                    combined.blocked |= outcome.blocked;
                    combined.full |= outcome.full;
                    combined.busy &= outcome.busy;
                    combined.position = combined.position.max(outcome.position);
                }
                Err(e) => {
                    tracing::error!(projection = projector.name(), error = ?e, "projection failed; the others go on");
                    failures.push(e);
                }
            }
        }
        if failures.is_empty() {
            self.isolate.store(false, Ordering::Relaxed);
        }
        // Only when every projector failed does the runner back off as a whole.
        match failures.len() == self.projectors.len() {
            true => Err(failures.remove(0)),
            false => Ok(combined),
        }
    }

    async fn run_batch_for(
        &self,
        projectors: &[Arc<dyn Projector>],
    ) -> Result<BatchOutcome, RunError> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<&'static str> = projectors.iter().map(|p| p.name()).collect();
        let taken = try_lock_projections(&mut tx, &names).await?;
        let members: Vec<(&Arc<dyn Projector>, &'static str)> = projectors
            .iter()
            .zip(&names)
            .zip(&taken)
            .filter(|(_, taken)| **taken)
            .map(|((projector, name), _)| (projector, *name))
            .collect();
        if members.is_empty() {
            return Ok(BatchOutcome {
                busy: true,
                ..BatchOutcome::default()
            });
        }
        let member_names: Vec<&'static str> = members.iter().map(|(_, name)| *name).collect();
        let starts = checkpoints::load_many(&mut tx, &member_names).await?;
        let from = starts.iter().copied().min().unwrap_or_default();
        let batch = read_batch(&mut tx, from, self.batch_size).await?;
        let mut positions = starts.clone();
        for event in &batch.events {
            for ((projector, _), position) in members.iter().zip(positions.iter_mut()) {
                // A projector ahead of the others (say, just rebuilt) skips what it has seen.
                if event.position > *position {
                    projector.project(&mut tx, event).await?;
                    *position = event.position;
                }
            }
        }
        let moved: Vec<(&'static str, StreamPosition)> = member_names
            .iter()
            .zip(starts.iter().zip(&positions))
            .filter(|(_, (start, position))| position != start)
            .map(|(name, (_, position))| (*name, *position))
            .collect();
        checkpoints::store_many(&mut tx, &moved).await?;
        tx.commit().await?;
        for (name, position) in member_names.iter().zip(&positions) {
            self.progress.advance(name, *position);
        }
        Ok(BatchOutcome {
            applied: batch.events.len(),
            blocked: batch.blocked,
            full: batch.full,
            busy: false,
            position: positions.iter().copied().max().unwrap_or(from),
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
            let names: Vec<&'static str> = self.projectors.iter().map(|p| p.name()).collect();
            let name = names.join("+");
            for name in &names {
                if let Err(e) = checkpoints::ensure(&self.pool, name).await {
                    tracing::error!(projection = name, error = ?e, "cannot create the checkpoint");
                }
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
