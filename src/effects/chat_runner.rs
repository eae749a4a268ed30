//! Claims chats with due turns and works them, many chats at once, one turn at a time per
//! chat.
//!
//! The runner wakes when its own process's `chat_work` projection moves (within
//! milliseconds of a message's commit), when another process announces work, when a retry
//! falls due, or after a slow poll. Several processes on one database share the work: a
//! chat is worked only under its lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::leases::{chat_resource, Leases};
use super::turns::{heartbeat_interval, TurnWorker};
use crate::subscriptions::{EventWakeups, SubscriptionProgress};

/// How long shutdown waits for turns in flight before abandoning them to their leases.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct ChatRunner {
    pub worker: Arc<TurnWorker>,
    pub leases: Leases,
    /// Chats worked at once by this process.
    pub concurrency: usize,
    pub progress: SubscriptionProgress,
    pub wakeups: EventWakeups,
    pub poll_interval: Duration,
}

impl ChatRunner {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        let mut work_projected = self.progress.subscribe("chat_work");
        let mut work_announced = self.wakeups.subscribe_work();
        // Stops turns in flight only after the grace period.
        let abandon = CancellationToken::new();
        loop {
            work_projected.borrow_and_update();
            work_announced.borrow_and_update();
            let free = slots.available_permits();
            if free > 0 {
                match self.leases.claim_due_chats(free as i64).await {
                    Ok(chats) => {
                        for chat_id in chats {
                            let permit =
                                slots.clone().acquire_owned().await.expect("open semaphore");
                            let (worker, leases, abandon) =
                                (self.worker.clone(), self.leases.clone(), abandon.clone());
                            in_flight.spawn(async move {
                                work_claimed_chat(worker, leases, chat_id, abandon).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "cannot claim chats; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            let next_due = match self.leases.next_due_in().await {
                Ok(due) => due.unwrap_or(self.poll_interval).min(self.poll_interval),
                Err(_) => self.poll_interval,
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = work_projected.changed() => {}
                _ = work_announced.changed() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = tokio::time::sleep(next_due) => {}
            }
        }
        // Let turns in flight finish, so that no send is interrupted between Telegram's
        // answer and its record; past the grace period, their leases hand them over.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            abandon.cancel();
            in_flight.abort_all();
        }
    }
}

/// Works one claimed chat while renewing its lease, then gives the lease back.
async fn work_claimed_chat(
    worker: Arc<TurnWorker>,
    leases: Leases,
    chat_id: Uuid,
    abandon: CancellationToken,
) {
    let resource = chat_resource(chat_id);
    let lost = abandon.child_token();
    let heartbeat = {
        let (leases, resource, lost) = (leases.clone(), resource.clone(), lost.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(heartbeat_interval(leases.duration()));
            interval.tick().await;
            loop {
                interval.tick().await;
                match leases.renew(&resource).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(%resource, "lease lost; stopping work on the chat");
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(%resource, error = ?e, "cannot renew the lease"),
                }
            }
        })
    };
    let result = worker.work_chat(chat_id, &lost).await;
    heartbeat.abort();
    match result {
        Ok(()) => {
            if let Err(e) = leases.release(&resource).await {
                tracing::warn!(%resource, error = ?e, "cannot release the lease; it will expire");
            }
        }
        // Keeping the lease until it expires is the backoff: the chat is not retried in a
        // tight loop while, say, the database is away.
        Err(e) => {
            tracing::error!(%chat_id, error = %crate::api::errors::ErrorChain(&e), "working the chat failed; retrying when its lease expires")
        }
    }
}
