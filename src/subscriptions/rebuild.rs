//! Rebuilding read models from position zero.
//!
//! One transaction per projector: take its lock (the live runner pauses), delete its rows
//! (readers keep seeing the old rows until the commit, unlike with TRUNCATE), replay every
//! settled event, store the checkpoint, commit. Events committed meanwhile are picked up by
//! the live runner from that checkpoint.

use std::sync::Arc;

use projections::{Projector, StreamPosition};
use sqlx::PgPool;

use super::checkpoints;
use super::projection_runner::{lock_projection, RunError, BATCH_SIZE};
use super::reader::read_batch;

/// Rebuilds one projector's tables; `on_progress` is told the count replayed so far.
pub async fn rebuild(
    pool: &PgPool,
    projector: &Arc<dyn Projector>,
    mut on_progress: impl FnMut(u64),
) -> Result<u64, RunError> {
    let name = projector.name();
    let mut tx = pool.begin().await?;
    lock_projection(&mut tx, name, true).await?;
    for table in projector.tables() {
        // Table names come from the projector's own constant list, never from input.
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    let mut position = StreamPosition::START;
    let mut replayed = 0u64;
    loop {
        let batch = read_batch(&mut tx, position, BATCH_SIZE).await?;
        for event in &batch.events {
            projector.project(&mut tx, event).await?;
            position = event.position;
        }
        replayed += batch.events.len() as u64;
        on_progress(replayed);
        if !batch.full {
            break;
        }
    }
    checkpoints::store(&mut tx, name, position).await?;
    tx.commit().await?;
    Ok(replayed)
}
