//! The stop button on an answer's draft: from whichever process Telegram told, to the one
//! writing that answer.
//!
//! A draft sent with `can_stop` shows the person a stop button; pressing it sends the bot a
//! `stopped_message_generation` update naming the chat and the draft. That update reaches one
//! process (the webhook's, or the poller's), while the answer is being written by whichever
//! process holds the chat's lease. So a stop always travels through PostgreSQL: the intake
//! sends `NOTIFY` on [`STOPS_CHANNEL`] with the draft's key, every process listens, and the one
//! that registered that draft ([`AnswerStops::watch`]) ends its stream. One path, whether the
//! writer is this process or another.
//!
//! A stop is a signal, not a record: it is not stored, and a stop that finds no stream (the
//! answer was already complete, the writer crashed, the notification was lost while a process
//! reconnected) changes nothing: the person then gets the whole answer. What a stop did is
//! recorded by the answer itself (`stopped` on its `ResponseGenerated`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The channel a stop is announced on; the payload is [`DraftKey::payload`].
pub const STOPS_CHANNEL: &str = "botfleet_answer_stops";

/// One answer's draft: a bot's, in one Telegram chat, with the draft id the answer streams
/// under (stable for the turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DraftKey {
    pub bot_id: Uuid,
    pub chat_id: i64,
    pub draft_id: i64,
}

impl DraftKey {
    /// The notification's payload: `bot:chat:draft`.
    pub fn payload(&self) -> String {
        format!("{}:{}:{}", self.bot_id, self.chat_id, self.draft_id)
    }

    /// Reads a payload written by [`Self::payload`].
    pub fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(3, ':');
        Some(Self {
            bot_id: parts.next()?.parse().ok()?,
            chat_id: parts.next()?.parse().ok()?,
            draft_id: parts.next()?.parse().ok()?,
        })
    }
}

/// The drafts this process is writing, by key.
#[derive(Clone, Default)]
pub struct AnswerStops {
    writing: Arc<Mutex<HashMap<DraftKey, Registration>>>,
}

struct Registration {
    /// Tells a registration from a later one under the same key (a retried attempt).
    serial: u64,
    stop: CancellationToken,
}

/// A draft being written; its `stopped` future resolves when the person stops it. Dropping it
/// forgets the draft.
pub struct StopWatch {
    key: DraftKey,
    serial: u64,
    stop: CancellationToken,
    stops: AnswerStops,
}

impl StopWatch {
    /// Resolves once the person pressed stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        let mut writing = self.stops.writing.lock().expect("answer stops lock");
        if writing
            .get(&self.key)
            .is_some_and(|r| r.serial == self.serial)
        {
            writing.remove(&self.key);
        }
    }
}

impl AnswerStops {
    /// Registers `key` as being written here, until the returned watch is dropped.
    pub fn watch(&self, key: DraftKey) -> StopWatch {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stop = CancellationToken::new();
        self.writing.lock().expect("answer stops lock").insert(
            key,
            Registration {
                serial,
                stop: stop.clone(),
            },
        );
        StopWatch {
            key,
            serial,
            stop,
            stops: self.clone(),
        }
    }

    /// Stops the draft `key` if this process is writing it; says whether it was.
    pub fn stop(&self, key: &DraftKey) -> bool {
        let writing = self.writing.lock().expect("answer stops lock");
        match writing.get(key) {
            Some(registration) => {
                registration.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Tells every process (this one included) that the person stopped draft `key`.
    pub async fn announce(pool: &sqlx::PgPool, key: &DraftKey) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(STOPS_CHANNEL)
            .bind(key.payload())
            .execute(pool)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(draft_id: i64) -> DraftKey {
        DraftKey {
            bot_id: Uuid::from_u128(7),
            chat_id: -1_001_234_567_890,
            draft_id,
        }
    }

    #[test]
    fn a_key_survives_its_payload() {
        assert_eq!(DraftKey::parse(&key(42).payload()), Some(key(42)));
        assert_eq!(DraftKey::parse("not:a:key"), None);
        assert_eq!(DraftKey::parse(""), None);
    }

    #[tokio::test]
    async fn a_stop_reaches_the_draft_being_written_and_no_other() {
        let stops = AnswerStops::default();
        let watch = stops.watch(key(1));
        assert!(!stops.stop(&key(2)), "nobody writes draft 2");
        assert!(stops.stop(&key(1)));
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.stopped())
            .await
            .expect("the writer hears the stop");
        drop(watch);
        assert!(!stops.stop(&key(1)), "a finished draft is forgotten");
    }

    #[test]
    fn an_earlier_attempts_watch_does_not_forget_the_later_one() {
        let stops = AnswerStops::default();
        let earlier = stops.watch(key(1));
        let later = stops.watch(key(1));
        drop(earlier);
        assert!(stops.stop(&key(1)));
        drop(later);
        assert!(!stops.stop(&key(1)));
    }
}
