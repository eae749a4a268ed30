//! One LISTEN connection per process, fanned out to every subscription in it, to the
//! answers this process writes (a stop pressed on one of their drafts), and to what it
//! remembers of bots (a bot changed).

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::runtime::answer_stops::{AnswerStops, DraftKey, STOPS_CHANNEL};
use crate::runtime::bot_changes::{BotChanges, CHANGES_CHANNEL};

/// The channel the `events_notify` trigger notifies at every commit that appended events.
pub const EVENTS_CHANNEL: &str = "botfleet_events";

/// A counter that moves whenever events may have been committed. Subscribers mark the value
/// they have seen before reading, so a commit during a read wakes them again.
#[derive(Clone)]
pub struct EventWakeups {
    receiver: watch::Receiver<u64>,
    sender: std::sync::Arc<watch::Sender<u64>>,
    /// Moves when chat_work announced work that this process's intake did not hand over.
    work: watch::Receiver<u64>,
}

impl EventWakeups {
    /// Starts listening; the task ends with `shutdown`. A stop announced by any process
    /// reaches `stops`, a changed bot `bots`.
    pub fn spawn(
        pool: PgPool,
        stops: AnswerStops,
        bots: BotChanges,
        shutdown: CancellationToken,
    ) -> Self {
        let (sender, receiver) = watch::channel(0u64);
        let (work_sender, work) = watch::channel(0u64);
        let sender = std::sync::Arc::new(sender);
        let wakeups = Self {
            receiver,
            sender: sender.clone(),
            work,
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    result = listen(&pool, &sender, &work_sender, &stops, &bots) => {
                        if let Err(e) = result {
                            tracing::warn!(error = ?e, "event notifications lost; reconnecting");
                        }
                    }
                }
                // Whatever was missed while disconnected is found by reading again.
                bots.changed(None);
                sender.send_modify(|n| *n += 1);
                work_sender.send_modify(|n| *n += 1);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        wakeups
    }

    /// A receiver that resolves `changed()` at the next possible commit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.receiver.clone()
    }

    /// A receiver that resolves `changed()` when chat work appeared that this process's own
    /// runner was not handed directly: a turn another process appended, a retry scheduled.
    pub fn subscribe_work(&self) -> watch::Receiver<u64> {
        self.work.clone()
    }

    /// Wakes every subscriber in this process now (after a local append, or a rebuild).
    pub fn nudge(&self) {
        self.sender.send_modify(|n| *n += 1);
    }
}

async fn listen(
    pool: &PgPool,
    events: &watch::Sender<u64>,
    work: &watch::Sender<u64>,
    stops: &AnswerStops,
    bots: &BotChanges,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([
            EVENTS_CHANNEL,
            projections::chat_work::WORK_CHANNEL,
            STOPS_CHANNEL,
            CHANGES_CHANNEL,
        ])
        .await?;
    // The turns this process's intake appended are announced with its pool's tag; its runner
    // has them already.
    let own_tag = crate::db::process_tag(&mut listener).await?;
    // Commits between the last read and LISTEN would otherwise go unnoticed.
    bots.changed(None);
    events.send_modify(|n| *n += 1);
    work.send_modify(|n| *n += 1);
    loop {
        // `None` means the connection was lost (and is re-established on the next call):
        // notifications may have been missed, so wake everyone.
        match listener.try_recv().await? {
            Some(n) if n.channel() == EVENTS_CHANNEL => events.send_modify(|n| *n += 1),
            Some(n) if n.channel() == STOPS_CHANNEL => match DraftKey::parse(n.payload()) {
                Some(key) => {
                    let here = stops.stop(&key);
                    tracing::debug!(bot_id = %key.bot_id, draft_id = key.draft_id, here, "an answer's stop announced");
                }
                None => tracing::warn!(payload = n.payload(), "an unreadable stop announcement"),
            },
            Some(n) if n.channel() == CHANGES_CHANNEL => bots.changed(n.payload().parse().ok()),
            Some(n) if !own_tag.is_empty() && n.payload() == own_tag => {}
            Some(_) => work.send_modify(|n| *n += 1),
            // A stop sent meanwhile is lost: its answer is then sent whole.
            None => {
                bots.changed(None);
                events.send_modify(|n| *n += 1);
                work.send_modify(|n| *n += 1);
            }
        }
    }
}
