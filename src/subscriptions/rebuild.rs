//! Rebuilding read models from position zero.
//!
//! One transaction per projector: take its lock (the live runner pauses), delete its rows
//! (readers keep seeing the old rows until the commit, unlike with TRUNCATE), replay every
//! settled event, store the checkpoint, commit. Events committed meanwhile are picked up by
//! the live runner from that checkpoint, which is the newest settled event the replay read.
//!
//! A rebuild decides every event afresh, with the projector's poison policy: events an
//! operator skipped stay skipped; an event that fails a parking projector is parked again;
//! an event that fails a pausing projector stops the rebuild, which then changes nothing and
//! names the event (skip it, or fix its cause, and rebuild again).

use std::collections::HashSet;
use std::sync::Arc;

use projections::{PoisonPolicy, Projector, StreamPosition};
use sqlx::{PgConnection, PgPool};

use super::checkpoints;
use super::faults::{self, FaultStatus};
use super::projection_runner::{lock_projection, RunError, BATCH_SIZE};
use crate::event_store::stream::read_batch;

/// Rebuilds one projector's tables; `on_progress` is told the count replayed so far.
pub async fn rebuild(
    pool: &PgPool,
    projector: &Arc<dyn Projector>,
    on_progress: impl FnMut(u64),
) -> Result<u64, RunError> {
    let mut tx = pool.begin().await?;
    lock_projection(&mut tx, projector.name(), true).await?;
    let replayed = replay_from_start(&mut tx, projector, on_progress).await?;
    tx.commit().await?;
    Ok(replayed)
}

/// Rebuilds, at start, the read models an upgrade asked to be rebuilt (see migration 0013).
/// Several processes starting together rebuild each one once: the flag is read under the
/// projection's lock.
pub async fn rebuild_where_required(
    pool: &PgPool,
    projectors: &[Arc<dyn Projector>],
) -> Result<(), RunError> {
    for projector in projectors {
        let name = projector.name();
        if !rebuild_required(&mut *pool.acquire().await?, name).await? {
            continue;
        }
        let mut tx = pool.begin().await?;
        lock_projection(&mut tx, name, true).await?;
        if !rebuild_required(&mut tx, name).await? {
            continue;
        }
        tracing::warn!(
            projection = name,
            "rebuilding the read model once after the upgrade (earlier releases could skip events)"
        );
        let replayed = replay_from_start(&mut tx, projector, |_| {}).await?;
        tx.commit().await?;
        tracing::info!(projection = name, events = replayed, "read model rebuilt");
    }
    Ok(())
}

async fn rebuild_required(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let required: Option<bool> = sqlx::query_scalar(
        "SELECT rebuild_required FROM subscription_checkpoints WHERE subscription = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(required == Some(true))
}

async fn replay_from_start(
    tx: &mut PgConnection,
    projector: &Arc<dyn Projector>,
    mut on_progress: impl FnMut(u64),
) -> Result<u64, RunError> {
    let name = projector.name();
    for table in projector.tables() {
        // Table names come from the projector's own constant list, never from input.
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    faults::clear_open(tx, name).await?;
    let skipped: HashSet<i64> = faults::skipped_positions(tx, name)
        .await?
        .into_iter()
        .collect();
    let mut position = StreamPosition::START;
    let mut replayed = 0u64;
    loop {
        let batch = read_batch(tx, position, BATCH_SIZE).await?;
        // A batch is replayed under a savepoint, so that an event that fails can be set
        // aside and the batch replayed without it.
        let mut parked: HashSet<i64> = HashSet::new();
        loop {
            sqlx::query("SAVEPOINT replay_batch")
                .execute(&mut *tx)
                .await?;
            let mut failed = None;
            for event in &batch.events {
                let global_position = event.position.global_position;
                if skipped.contains(&global_position) || parked.contains(&global_position) {
                    continue;
                }
                if let Err(source) = projector.project(tx, event).await {
                    failed = Some((event, source));
                    break;
                }
            }
            let Some((event, source)) = failed else {
                sqlx::query("RELEASE SAVEPOINT replay_batch")
                    .execute(&mut *tx)
                    .await?;
                break;
            };
            sqlx::query("ROLLBACK TO SAVEPOINT replay_batch")
                .execute(&mut *tx)
                .await?;
            if projector.poison_policy() == PoisonPolicy::Pause
                || super::projection_runner::is_transient(&source)
            {
                return Err(RunError::Projector {
                    projection: name,
                    position: event.position,
                    event_type: event.event_type.clone(),
                    source,
                });
            }
            tracing::error!(projection = name, position = %event.position, error = %source, "rebuild: poison event parked");
            parked.insert(event.position.global_position);
            faults::record(tx, name, event, &source.to_string(), 1, FaultStatus::Parked).await?;
        }
        if let Some(last) = batch.events.last() {
            position = last.position;
        }
        replayed += batch.events.len() as u64;
        on_progress(replayed);
        if !batch.full {
            break;
        }
    }
    checkpoints::store(tx, name, position).await?;
    sqlx::query(
        "UPDATE subscription_checkpoints SET rebuild_required = false WHERE subscription = $1",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    Ok(replayed)
}
