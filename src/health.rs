//! How far behind the pipeline is: each subscription's checkpoint and lag, and the effect
//! runner's in-flight and failed counts. `/health/queue` judges it; `/metrics` exposes it.
//!
//! A subscription is *lagging* when it is more than `max_lag` events behind, and *stuck*
//! when the oldest event it has not handled was recorded more than `stuck_after` ago. The
//! age, not the checkpoint's last move, tells them apart from an idle subscription: one
//! that had nothing to do for an hour is not stuck the moment an event arrives.

use sqlx::PgPool;

use crate::subscriptions::checkpoints;

/// When /health/queue stops answering 200 (`HEALTH_MAX_LAG`, `HEALTH_STUCK_SECS`).
#[derive(Debug, Clone, Copy)]
pub struct HealthThresholds {
    /// Events behind.
    pub max_lag: i64,
    /// Age of the oldest event a subscription has not handled.
    pub stuck_after: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Ok,
    Lagging,
    Stuck,
    /// Stopped before a poison event until an operator retries or skips it.
    Paused,
}

#[derive(Debug, Clone)]
pub struct SubscriptionStatus {
    pub name: String,
    /// `transaction_id/global_position` of the last event handled.
    pub checkpoint: String,
    /// Committed events after the checkpoint.
    pub lag: i64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_pending_secs: Option<f64>,
    pub state: SubscriptionState,
    /// The event it is paused before, when paused.
    pub paused_before: Option<String>,
    /// Events it went on without, not yet acknowledged by an operator.
    pub parked_events: i64,
}

#[derive(Debug, Clone)]
pub struct QueueStatus {
    pub subscriptions: Vec<SubscriptionStatus>,
    /// Chats with unfinished turns whose lease a runner holds right now.
    pub in_flight: i64,
    /// User messages whose turn failed for good.
    pub failed: i64,
}

impl QueueStatus {
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.subscriptions
            .iter()
            .all(|s| s.state == SubscriptionState::Ok)
    }
}

/// Reads the status (a few indexed queries) and updates the matching metrics.
pub async fn queue_status(
    pool: &PgPool,
    thresholds: HealthThresholds,
) -> Result<QueueStatus, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let open_faults: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT subscription, count(*) FILTER (WHERE status = 'parked'),
                min(transaction_id::text || '/' || global_position) FILTER (WHERE status = 'paused')
         FROM projection_faults WHERE status IN ('paused', 'parked')
         GROUP BY subscription",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut subscriptions = Vec::new();
    for projector in projections::all() {
        let name = projector.name();
        let position = checkpoints::load(&mut conn, name).await?;
        let (lag, oldest_pending_secs) =
            crate::event_store::stream::pending_after(&mut conn, position).await?;
        let (parked_events, paused_before) = open_faults
            .iter()
            .find(|(subscription, _, _)| subscription == name)
            .map(|(_, parked, paused)| (*parked, paused.clone()))
            .unwrap_or_default();
        let state = if paused_before.is_some() {
            SubscriptionState::Paused
        } else if oldest_pending_secs.is_some_and(|age| age > thresholds.stuck_after.as_secs_f64())
        {
            SubscriptionState::Stuck
        } else if lag > thresholds.max_lag {
            SubscriptionState::Lagging
        } else {
            SubscriptionState::Ok
        };
        crate::metrics::subscription_faults(name, paused_before.is_some(), parked_events);
        crate::metrics::subscription_lag(name, lag);
        subscriptions.push(SubscriptionStatus {
            name: name.to_owned(),
            checkpoint: position.to_string(),
            lag,
            oldest_pending_secs,
            state,
            paused_before,
            parked_events,
        });
    }
    let in_flight = projections::chat_work::count_in_flight(&mut *conn).await?;
    let failed = projections::chats::messages::count_failed(&mut *conn).await?;
    crate::metrics::effects(in_flight, failed);
    Ok(QueueStatus {
        subscriptions,
        in_flight,
        failed,
    })
}
