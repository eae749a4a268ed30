//! Where each subscription stands: stored in `subscription_checkpoints`, and observable in
//! this process so that a write can wait until its read model shows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projections::StreamPosition;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

/// Makes sure a subscription has a checkpoint row, at the start when new.
pub async fn ensure(pool: &PgPool, subscription: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (subscription) VALUES ($1)
         ON CONFLICT (subscription) DO NOTHING",
    )
    .bind(subscription)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn load(
    conn: &mut PgConnection,
    subscription: &str,
) -> Result<StreamPosition, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM subscription_checkpoints
         WHERE subscription = $1",
    )
    .bind(subscription)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some((transaction_id, global_position)) => StreamPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            global_position,
        },
        None => StreamPosition::START,
    })
}

pub async fn store(
    conn: &mut PgConnection,
    subscription: &str,
    position: StreamPosition,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_checkpoints (subscription, transaction_id, global_position, updated_at)
         VALUES ($1, $2::text::xid8, $3, now())
         ON CONFLICT (subscription) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id,
                global_position = EXCLUDED.global_position,
                updated_at = now()",
    )
    .bind(subscription)
    .bind(position.transaction_id.to_string())
    .bind(position.global_position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where a subscription stands, and whether it is paused before a poison event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub position: StreamPosition,
    pub paused: bool,
}

/// The checkpoints of several subscriptions, in the order of `subscriptions` (one statement).
pub async fn load_many(
    conn: &mut PgConnection,
    subscriptions: &[&str],
) -> Result<Vec<Checkpoint>, sqlx::Error> {
    let rows: Vec<(Option<String>, Option<i64>, bool)> = sqlx::query_as(
        "SELECT c.transaction_id::text, c.global_position,
                EXISTS (SELECT 1 FROM projection_faults f
                        WHERE f.subscription = n.name AND f.status = 'paused')
         FROM unnest($1::text[]) WITH ORDINALITY AS n(name, ord)
         LEFT JOIN subscription_checkpoints c ON c.subscription = n.name
         ORDER BY n.ord",
    )
    .bind(subscriptions)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(transaction_id, global_position, paused)| {
            let position = match (transaction_id, global_position) {
                (Some(transaction_id), Some(global_position)) => StreamPosition {
                    transaction_id: transaction_id
                        .parse()
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    global_position,
                },
                _ => StreamPosition::START,
            };
            Ok(Checkpoint { position, paused })
        })
        .collect()
}

/// Stores several subscriptions' checkpoints in one statement.
pub async fn store_many(
    conn: &mut PgConnection,
    positions: &[(&str, StreamPosition)],
) -> Result<(), sqlx::Error> {
    if positions.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = positions.iter().map(|(name, _)| *name).collect();
    let transaction_ids: Vec<String> = positions
        .iter()
        .map(|(_, p)| p.transaction_id.to_string())
        .collect();
    let global_positions: Vec<i64> = positions.iter().map(|(_, p)| p.global_position).collect();
    sqlx::query(
        "INSERT INTO subscription_checkpoints (subscription, transaction_id, global_position, updated_at)
         SELECT s, t::xid8, g, now() FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(s, t, g)
         ON CONFLICT (subscription) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id,
                global_position = EXCLUDED.global_position,
                updated_at = now()",
    )
    .bind(&names)
    .bind(&transaction_ids)
    .bind(&global_positions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The progress of this process's subscriptions, for waiters.
#[derive(Clone)]
pub struct SubscriptionProgress {
    pool: PgPool,
    channels: Arc<Mutex<HashMap<String, watch::Sender<StreamPosition>>>>,
    /// Per subscription, a counter that moves when a batch changed its read model (applied
    /// an event of a type it follows), for followers that need not look at every batch.
    changes: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

/// How often a waiter also looks at the stored checkpoint: the projection may be run by
/// another process, whose progress this one only sees in the table.
const STORED_CHECKPOINT_RECHECK: Duration = Duration::from_millis(25);

impl SubscriptionProgress {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            channels: Arc::default(),
            changes: Arc::default(),
        }
    }

    fn change_channel(&self, subscription: &str) -> watch::Sender<u64> {
        self.changes
            .lock()
            .expect("progress registry lock")
            .entry(subscription.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// A receiver that changes when this process projected a change to `subscription`'s
    /// read model ([`projections::Projector::follows`]).
    pub fn subscribe_changes(&self, subscription: &str) -> watch::Receiver<u64> {
        self.change_channel(subscription).subscribe()
    }

    /// Called by a runner after a committed batch that changed `subscription`'s read model.
    pub fn note_change(&self, subscription: &str) {
        self.change_channel(subscription).send_modify(|n| *n += 1);
    }

    fn channel(&self, subscription: &str) -> watch::Sender<StreamPosition> {
        self.channels
            .lock()
            .expect("progress registry lock")
            .entry(subscription.to_owned())
            .or_insert_with(|| watch::channel(StreamPosition::START).0)
            .clone()
    }

    /// Follows a subscription's position in this process (it changes after every batch).
    pub fn subscribe(&self, subscription: &str) -> watch::Receiver<StreamPosition> {
        self.channel(subscription).subscribe()
    }

    /// Called by a runner after each committed batch.
    pub fn advance(&self, subscription: &str, position: StreamPosition) {
        self.channel(subscription).send_if_modified(|current| {
            let moved = position > *current;
            if moved {
                *current = position;
            }
            moved
        });
    }

    /// Waits until `subscription` has handled the event at `target`, for at most `timeout`.
    /// Returns whether it did.
    pub async fn wait_for(
        &self,
        subscription: &str,
        target: StreamPosition,
        timeout: Duration,
    ) -> bool {
        let mut receiver = self.channel(subscription).subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if *receiver.borrow_and_update() >= target {
                return true;
            }
            tokio::select! {
                _ = receiver.changed() => continue,
                _ = tokio::time::sleep(STORED_CHECKPOINT_RECHECK) => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
            if let Ok(mut conn) = self.pool.acquire().await {
                if let Ok(stored) = load(&mut conn, subscription).await {
                    if stored >= target {
                        return true;
                    }
                }
            }
        }
    }
}
