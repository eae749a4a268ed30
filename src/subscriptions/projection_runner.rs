//! Runs projectors over the global stream, each exactly once per event.
//!
//! Each batch is one transaction: take each projector's advisory lock (so that of several
//! processes only one projects it at a time, and a rebuild pauses the live runner), read the
//! checkpoints, apply the settled events, store the new checkpoints, commit. A crash anywhere
//! before the commit leaves both the rows and the checkpoints as they were.
//!
//! Several projectors can share a runner: one transaction then projects a batch for all of
//! them, which costs the database one commit instead of one each. Each keeps its own
//! checkpoint, so one can be rebuilt (or be behind) while the others go on.
//!
//! A projector that fails is taken out of the shared batch and tried alone, with backoff, so
//! it holds back only its own read model. When it keeps failing on the same event (an error
//! about the event, not a lost connection) for `max_attempts` tries, its
//! [`PoisonPolicy`] decides: *pause* before the event, or *park* it and go on. Either way the
//! event is recorded in `projection_faults` for an operator (see [`super::faults`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use projections::{PoisonPolicy, ProjectionError, Projector, RecordedEvent, StreamPosition};
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::checkpoints::{self, SubscriptionProgress};
use super::faults::{self, FaultStatus};
use super::wakeups::EventWakeups;
use crate::event_store::stream::read_batch;
use crate::runtime::backoff::{Backoff, Retrying};

/// Events per transaction: large enough to amortise the commit, small enough to keep the
/// transaction short.
pub const BATCH_SIZE: i64 = 500;

/// Tries of one event before the projector's poison policy applies.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The pause before a failed projector's next try: 0.1 s doubling to 30 s, so the default
/// five tries span about three seconds, enough for a deadlock or a restart to pass.
const RETRY_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(30),
};

/// While a transaction in flight holds the stream back: read again after 1 ms, doubling to
/// 50 ms (its commit, or its abort, which sends no notification, comes soon).
const BLOCKED_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(1),
    max: Duration::from_millis(50),
};

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
    /// A failed projector waits for its next try until then.
    pub retry_at: Option<Instant>,
}

/// A projector that failed, and on which event.
#[derive(Debug, Clone)]
struct Failing {
    position: StreamPosition,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// Failures that were about the event (not a lost connection): they count towards the
    /// poison policy.
    attempts: u32,
    retry_at: Instant,
    error: String,
}

pub struct ProjectionRunner {
    pool: PgPool,
    projectors: Vec<Arc<dyn Projector>>,
    progress: SubscriptionProgress,
    /// Events per transaction ([`BATCH_SIZE`] unless a test asks for another).
    batch_size: i64,
    /// Tries of one event before the poison policy applies.
    max_attempts: u32,
    backoff: Backoff,
    /// Projectors whose last try failed, by name.
    failing: Mutex<HashMap<&'static str, Failing>>,
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
    #[error("the {projection} projector failed on event {position} ({event_type})")]
    Projector {
        projection: &'static str,
        position: StreamPosition,
        event_type: String,
        #[source]
        source: ProjectionError,
    },
}

/// Whether an error says nothing about the event: the connection or the server went away,
/// or a conflict that passes (deadlock, serialization). Such failures are retried without
/// end, like any database outage, and never make an event poison.
pub(crate) fn is_transient(error: &ProjectionError) -> bool {
    let ProjectionError::Database(e) = error else {
        return false;
    };
    // A deadlock or a serialization failure (class 40) passes too.
    crate::db::is_unavailable(e)
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("40")))
}

/// The error with its causes, for the fault record and the log.
fn describe(error: &ProjectionError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: RETRY_BACKOFF,
            failing: Mutex::default(),
        }
    }

    /// Reads at most `events` per transaction.
    #[must_use]
    pub fn with_batch_size(mut self, events: i64) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Tries an event `attempts` times before the poison policy applies.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Pauses between a failed projector's tries.
    #[must_use]
    pub fn with_retry_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Failing>> {
        self.failing.lock().expect("failing projectors lock")
    }

    /// Applies the next batch of settled events: one transaction for the projectors in good
    /// standing, and one each for failed projectors whose next try is due. Fails only when
    /// nothing could be done: the database failed, or every projector tried failed.
    pub async fn run_batch(&self) -> Result<BatchOutcome, RunError> {
        let now = Instant::now();
        let (healthy, due, retry_at) = {
            let failing = self.failing();
            let mut healthy = Vec::new();
            let mut due = Vec::new();
            for projector in &self.projectors {
                match failing.get(projector.name()) {
                    None => healthy.push(projector.clone()),
                    Some(f) if f.retry_at <= now => due.push(projector.clone()),
                    Some(_) => {}
                }
            }
            let retry_at = failing
                .values()
                .map(|f| f.retry_at)
                .filter(|at| *at > now)
                .min();
            (healthy, due, retry_at)
        };
        let mut groups: Vec<Vec<Arc<dyn Projector>>> = due.into_iter().map(|p| vec![p]).collect();
        if !healthy.is_empty() {
            groups.insert(0, healthy);
        }
        let mut combined = BatchOutcome {
            busy: true,
            retry_at,
            ..BatchOutcome::default()
        };
        let mut last_error = None;
        let mut succeeded = groups.is_empty();
        for group in groups {
            match self.run_batch_for(&group).await {
                Ok(outcome) => {
                    succeeded = true;
                    combined.applied += outcome.applied;
                    combined.blocked |= outcome.blocked;
                    combined.full |= outcome.full;
                    combined.busy &= outcome.busy;
                    combined.position = combined.position.max(outcome.position);
                }
                Err(e) => {
                    if let RunError::Projector { projection, .. } = &e {
                        // Others in its group were rolled back with it: go again at once,
                        // without it.
                        combined.full |= group.len() > 1;
                        let retry_at = self.failing()[projection].retry_at;
                        combined.retry_at =
                            Some(combined.retry_at.map_or(retry_at, |at| at.min(retry_at)));
                    }
                    last_error = Some(e);
                }
            }
        }
        match (succeeded, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(combined),
        }
    }

    /// Notes a projector's failure on an event, for its backoff and its attempts.
    fn note_failure(
        &self,
        projection: &'static str,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) {
        let transient = is_transient(error);
        let mut failing = self.failing();
        let entry = failing.entry(projection).or_insert_with(|| Failing {
            position: event.position,
            failures: 0,
            attempts: 0,
            retry_at: Instant::now(),
            error: String::new(),
        });
        if entry.position != event.position {
            entry.position = event.position;
            entry.attempts = 0;
            entry.failures = 0;
        }
        entry.failures += 1;
        if !transient {
            entry.attempts += 1;
        }
        entry.error = describe(error);
        entry.retry_at = Instant::now() + self.backoff.pause(entry.failures, None);
        if transient {
            tracing::warn!(projection, position = %event.position, error = %entry.error, "projection failed for a passing reason; retrying");
        } else {
            tracing::error!(
                projection,
                position = %event.position,
                event_type = event.event_type,
                aggregate_id = event.aggregate_id,
                attempt = entry.attempts,
                max_attempts = self.max_attempts,
                error = %entry.error,
                "the projector cannot apply an event"
            );
        }
    }

    /// The projectors that have used up their tries on the event they stand before: what
    /// the batch must do with it instead of trying again.
    fn exhausted(&self) -> HashMap<&'static str, Failing> {
        self.failing()
            .iter()
            .filter(|(_, f)| f.attempts >= self.max_attempts)
            .map(|(name, f)| (*name, f.clone()))
            .collect()
    }

    async fn run_batch_for(
        &self,
        projectors: &[Arc<dyn Projector>],
    ) -> Result<BatchOutcome, RunError> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<&'static str> = projectors.iter().map(|p| p.name()).collect();
        let taken = try_lock_projections(&mut tx, &names).await?;
        let locked: Vec<(&Arc<dyn Projector>, &'static str)> = projectors
            .iter()
            .zip(&names)
            .zip(&taken)
            .filter(|(_, taken)| **taken)
            .map(|((projector, name), _)| (projector, *name))
            .collect();
        if locked.is_empty() {
            return Ok(BatchOutcome {
                busy: true,
                ..BatchOutcome::default()
            });
        }
        let locked_names: Vec<&'static str> = locked.iter().map(|(_, name)| *name).collect();
        let checkpoints = checkpoints::load_many(&mut tx, &locked_names).await?;
        // A paused projector waits for an operator; what it failed on is recorded.
        let mut members = Vec::new();
        let mut starts = Vec::new();
        for ((projector, name), checkpoint) in locked.into_iter().zip(checkpoints) {
            if checkpoint.paused {
                self.failing().remove(name);
            } else {
                members.push((projector, name));
                starts.push(checkpoint.position);
            }
        }
        if members.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let exhausted = self.exhausted();
        let from = starts.iter().copied().min().unwrap_or_default();
        let batch = read_batch(&mut tx, from, self.batch_size).await?;
        let mut positions = starts.clone();
        let mut halted = vec![false; members.len()];
        // Which read models this batch changed, for what follows them.
        let mut changed = vec![false; members.len()];
        for event in &batch.events {
            for ((((projector, name), position), halted), changed) in members
                .iter()
                .zip(positions.iter_mut())
                .zip(halted.iter_mut())
                .zip(changed.iter_mut())
            {
                // A projector ahead of the others (say, just rebuilt) skips what it has seen.
                if *halted || event.position <= *position {
                    continue;
                }
                if let Some(failing) = exhausted.get(name).filter(|f| f.position == event.position)
                {
                    let status = match projector.poison_policy() {
                        PoisonPolicy::Pause => FaultStatus::Paused,
                        PoisonPolicy::Park => FaultStatus::Parked,
                    };
                    faults::record(
                        &mut tx,
                        name,
                        event,
                        &failing.error,
                        failing.attempts,
                        status,
                    )
                    .await?;
                    tracing::error!(projection = name, position = %event.position, event_type = event.event_type, attempts = failing.attempts, %status, "poison event: {}", match status {
                        FaultStatus::Paused => "the projection pauses before it until an operator retries or skips it",
                        _ => "the projection goes on without it",
                    });
                    match status {
                        FaultStatus::Paused => *halted = true,
                        _ => *position = event.position,
                    }
                    continue;
                }
                if let Err(source) = projector.project(&mut tx, event).await {
                    drop(tx);
                    self.note_failure(name, event, &source);
                    return Err(RunError::Projector {
                        projection: name,
                        position: event.position,
                        event_type: event.event_type.clone(),
                        source,
                    });
                }
                *position = event.position;
                *changed |= projector.follows(&event.aggregate_type);
            }
        }
        let moved: Vec<(&'static str, StreamPosition)> = members
            .iter()
            .zip(starts.iter().zip(&positions))
            .filter(|(_, (start, position))| position != start)
            .map(|((_, name), (_, position))| (*name, *position))
            .collect();
        checkpoints::store_many(&mut tx, &moved).await?;
        tx.commit().await?;
        {
            let mut failing = self.failing();
            for (((_, name), position), halted) in members.iter().zip(&positions).zip(&halted) {
                let passed = failing.get(name).is_some_and(|f| f.position <= *position);
                if passed || *halted {
                    failing.remove(name);
                }
            }
        }
        for (((_, name), position), changed) in members.iter().zip(&positions).zip(&changed) {
            self.progress.advance(name, *position);
            if *changed {
                self.progress.note_change(name);
            }
        }
        Ok(BatchOutcome {
            applied: batch.events.len(),
            blocked: batch.blocked,
            full: batch.full,
            busy: false,
            position: positions.iter().copied().max().unwrap_or(from),
            retry_at: None,
        })
    }

    /// Runs until `shutdown`, reading as soon as a commit is announced. Idle, it reads
    /// nothing: every commit that appends events notifies (and a lost notification
    /// connection wakes every subscriber when it is back). It reads again without a
    /// notification only while it has a reason to: a transaction in flight holds the stream
    /// back, a failed projector's next try falls due, or another process held the
    /// projection's lock (`poll_interval` later, to see its progress in the checkpoint).
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
            let mut blocked = Retrying::new(BLOCKED_BACKOFF);
            let mut errors = Retrying::new(RETRY_BACKOFF);
            let mut last_batch = Instant::now() - GATHER_WHEN_BUSY_WITHIN;
            loop {
                // Busy: let a few more commits arrive, so that one transaction projects them
                // all instead of one each. Idle: project at once.
                if last_batch.elapsed() < GATHER_WHEN_BUSY_WITHIN {
                    tokio::time::sleep(GATHER).await;
                }
                wake.borrow_and_update();
                last_batch = Instant::now();
                let (pause, retry_at, busy) = match self.run_batch().await {
                    Ok(outcome) => {
                        errors.succeeded();
                        if outcome.applied > 0 {
                            tracing::debug!(projection = name, applied = outcome.applied, position = %outcome.position, "projected");
                        }
                        if outcome.full {
                            continue;
                        }
                        if outcome.blocked {
                            // Wait for the transaction in flight; its commit (or abort, which
                            // sends no notification) will be seen on the next read.
                            (Some(blocked.failed(None)), outcome.retry_at, false)
                        } else {
                            blocked.succeeded();
                            (None, outcome.retry_at, outcome.busy)
                        }
                    }
                    // Every projector failed on its event: each waits for its own next try.
                    Err(RunError::Projector { .. }) => (
                        None,
                        self.failing().values().map(|f| f.retry_at).min(),
                        false,
                    ),
                    Err(e) => {
                        tracing::error!(projection = name, error = ?e, "projection failed; retrying");
                        (Some(errors.failed(None)), None, false)
                    }
                };
                let mut sleep = pause.or(busy.then_some(poll_interval));
                if let Some(at) = retry_at {
                    let until = at.saturating_duration_since(Instant::now());
                    sleep = Some(sleep.map_or(until, |s| s.min(until)));
                }
                let timer = async {
                    match sleep {
                        Some(sleep) => tokio::time::sleep(sleep).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.changed(), if pause.is_none() => {}
                    _ = timer => {}
                }
            }
        })
    }
}
