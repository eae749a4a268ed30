//! Telegram's flood limits, kept before each send: about one message per second per chat,
//! twenty per minute per group, thirty per second per bot, and a pause for the whole bot after
//! a 429's `retry_after`. The limits are kept per process: several processes each keep them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const GROUP_WINDOW: Duration = Duration::from_secs(60);
const GROUP_MESSAGES_PER_WINDOW: usize = 20;
const BOT_WINDOW: Duration = Duration::from_secs(1);
const BOT_MESSAGES_PER_WINDOW: usize = 30;

#[derive(Default)]
struct Sent {
    last_per_chat: HashMap<(Uuid, i64), Instant>,
    per_group: HashMap<(Uuid, i64), VecDeque<Instant>>,
    per_bot: HashMap<Uuid, VecDeque<Instant>>,
    bot_paused_until: HashMap<Uuid, Instant>,
}

#[derive(Default)]
pub struct SendPacer {
    sent: Mutex<Sent>,
}

impl SendPacer {
    /// Waits until a message to `chat` may be sent, and counts it as sent.
    pub async fn wait_turn(&self, bot: Uuid, chat: i64, is_group: bool) {
        loop {
            let delay = self.try_take(bot, chat, is_group, Instant::now());
            match delay {
                None => return,
                Some(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    /// Holds every send of `bot` for `pause` (Telegram's `retry_after`).
    pub fn pause_bot(&self, bot: Uuid, pause: Duration) {
        let until = Instant::now() + pause;
        let mut sent = self.sent.lock().expect("pacer lock");
        let entry = sent.bot_paused_until.entry(bot).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// `None` when the message may go now (it is then counted), or how long to wait.
    fn try_take(&self, bot: Uuid, chat: i64, is_group: bool, now: Instant) -> Option<Duration> {
        let mut sent = self.sent.lock().expect("pacer lock");
        let mut wait = Duration::ZERO;
        if let Some(until) = sent.bot_paused_until.get(&bot) {
            wait = wait.max(until.saturating_duration_since(now));
        }
        if let Some(last) = sent.last_per_chat.get(&(bot, chat)) {
            wait = wait.max((*last + PER_CHAT_GAP).saturating_duration_since(now));
        }
        let window_wait =
            |queue: Option<&mut VecDeque<Instant>>, window: Duration, limit: usize| {
                let queue = queue?;
                while queue
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    queue.pop_front();
                }
                (queue.len() >= limit).then(|| (queue[0] + window).saturating_duration_since(now))
            };
        if is_group {
            let group = sent.per_group.get_mut(&(bot, chat));
            if let Some(w) = window_wait(group, GROUP_WINDOW, GROUP_MESSAGES_PER_WINDOW) {
                wait = wait.max(w);
            }
        }
        if let Some(w) = window_wait(
            sent.per_bot.get_mut(&bot),
            BOT_WINDOW,
            BOT_MESSAGES_PER_WINDOW,
        ) {
            wait = wait.max(w);
        }
        if wait > Duration::ZERO {
            return Some(wait);
        }
        // Forget chats that have been quiet, so the map stays as small as the traffic.
        if sent.last_per_chat.len() > 50_000 {
            sent.last_per_chat
                .retain(|_, t| now.duration_since(*t) < GROUP_WINDOW);
            sent.per_group.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < GROUP_WINDOW)
            });
        }
        sent.last_per_chat.insert((bot, chat), now);
        if is_group {
            sent.per_group
                .entry((bot, chat))
                .or_default()
                .push_back(now);
        }
        sent.per_bot.entry(bot).or_default().push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_gets_one_message_per_second() {
        let pacer = SendPacer::default();
        let (bot, now) = (Uuid::from_u128(1), Instant::now());
        assert_eq!(pacer.try_take(bot, 1, false, now), None);
        let wait = pacer.try_take(bot, 1, false, now).unwrap();
        assert!(wait > Duration::from_millis(900));
        assert_eq!(
            pacer.try_take(bot, 2, false, now),
            None,
            "other chats are not held"
        );
        assert_eq!(
            pacer.try_take(bot, 1, false, now + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn a_bot_sends_at_most_thirty_per_second_and_pauses_when_told() {
        let pacer = SendPacer::default();
        let (bot, now) = (Uuid::from_u128(1), Instant::now());
        for chat in 0..30 {
            assert_eq!(pacer.try_take(bot, chat, false, now), None);
        }
        assert!(pacer.try_take(bot, 99, false, now).is_some());
        assert_eq!(pacer.try_take(Uuid::from_u128(2), 99, false, now), None);
        pacer.pause_bot(Uuid::from_u128(3), Duration::from_secs(5));
        assert!(
            pacer
                .try_take(Uuid::from_u128(3), 1, false, Instant::now())
                .unwrap()
                > Duration::from_secs(4)
        );
    }

    #[test]
    fn a_group_gets_twenty_per_minute() {
        let pacer = SendPacer::default();
        let bot = Uuid::from_u128(1);
        let start = Instant::now();
        for n in 0..20u64 {
            let at = start + Duration::from_secs(n + n);
            assert_eq!(pacer.try_take(bot, -100, true, at), None, "message {n}");
        }
        let wait = pacer
            .try_take(bot, -100, true, start + Duration::from_secs(41))
            .unwrap();
        assert!(wait >= Duration::from_secs(18), "{wait:?}");
    }
}
