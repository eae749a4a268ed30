//! Telegram's flood limits, kept before each send: about one message per second per chat,
//! twenty per minute per group, thirty per second per bot, and a pause for the whole bot after
//! a 429's `retry_after`. The limits are kept per process: several processes each keep them.
//! A bot's sends that wait for its pace go in the order they came: a send that has waited
//! is not overtaken by one that arrives as a slot frees, so a burst's last answers wait the
//! burst's length, not more.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
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
    /// Each bot's queue for its pace: tokio's mutex is fair, so waiters take turns in order.
    bot_queues: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl SendPacer {
    /// Waits until a message to `chat` may be sent, and counts it as sent.
    pub async fn wait_turn(&self, bot: Uuid, chat: i64, is_group: bool) {
        // The chat's own limits first, outside the bot's queue: only this chat waits on them
        // (a chat's sends come one at a time, from the turn that holds its lease).
        loop {
            let delay = self.chat_wait(bot, chat, is_group, Instant::now());
            match delay {
                None => break,
                Some(delay) => tokio::time::sleep(delay).await,
            }
        }
        let queue = self.bot_queue(bot);
        let _turn = queue.lock().await;
        loop {
            let delay = self.try_take(bot, chat, is_group, Instant::now());
            match delay {
                None => return,
                Some(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    fn bot_queue(&self, bot: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut queues = self.bot_queues.lock().expect("pacer queues lock");
        queues.entry(bot).or_default().clone()
    }

    /// How long the chat's own limits (and a pause of its bot) hold a send, if at all.
    fn chat_wait(&self, bot: Uuid, chat: i64, is_group: bool, now: Instant) -> Option<Duration> {
        let mut sent = self.sent.lock().expect("pacer lock");
        let wait = sent.chat_wait(bot, chat, is_group, now);
        (wait > Duration::ZERO).then_some(wait)
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
        let mut wait = sent.chat_wait(bot, chat, is_group, now);
        if let Some(w) = window_wait(
            sent.per_bot.get_mut(&bot),
            now,
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

impl Sent {
    /// How long the chat's own limits and its bot's pause hold a send (zero: not at all).
    fn chat_wait(&mut self, bot: Uuid, chat: i64, is_group: bool, now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        if let Some(until) = self.bot_paused_until.get(&bot) {
            wait = wait.max(until.saturating_duration_since(now));
        }
        if let Some(last) = self.last_per_chat.get(&(bot, chat)) {
            wait = wait.max((*last + PER_CHAT_GAP).saturating_duration_since(now));
        }
        if is_group {
            let group = self.per_group.get_mut(&(bot, chat));
            if let Some(w) = window_wait(group, now, GROUP_WINDOW, GROUP_MESSAGES_PER_WINDOW) {
                wait = wait.max(w);
            }
        }
        wait
    }
}

/// How long until `queue` (send times, oldest first) holds fewer than `limit` sends within
/// `window` of `now`, if it holds that many now; sends older than the window are dropped.
fn window_wait(
    queue: Option<&mut VecDeque<Instant>>,
    now: Instant,
    window: Duration,
    limit: usize,
) -> Option<Duration> {
    let queue = queue?;
    while queue
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        queue.pop_front();
    }
    (queue.len() >= limit).then(|| (queue[0] + window).saturating_duration_since(now))
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

    #[tokio::test]
    async fn a_bots_sends_beyond_its_pace_go_in_the_order_they_asked() {
        let pacer = Arc::new(SendPacer::default());
        let bot = Uuid::from_u128(1);
        for chat in 0..30 {
            pacer.wait_turn(bot, chat, false).await;
        }
        // Forty more, asking one after another: they wait for the pace, then go in turn.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut sends = Vec::new();
        for chat in 100..140 {
            let (pacer, order) = (pacer.clone(), order.clone());
            sends.push(tokio::spawn(async move {
                pacer.wait_turn(bot, chat, false).await;
                order.lock().unwrap().push(chat);
            }));
            tokio::task::yield_now().await;
        }
        for send in sends {
            send.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (100..140).collect::<Vec<_>>());
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
