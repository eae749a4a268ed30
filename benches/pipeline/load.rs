//! An open-loop load generator: updates leave at a fixed rate whatever the server does, and
//! each one's latency counts from when it was *meant* to leave. They go to the webhook, or,
//! for a Botfleet that long-polls, into the fake Telegram's queue for `getUpdates`.
//!
//! A closed-loop client (send, wait, send) slows down with the server and so never sees the
//! queue a stalled server builds up: coordinated omission. Here a dedicated thread keeps the
//! schedule (std's sleep is finer than tokio's millisecond timer) and hands each send to the
//! runtime; a send that has to wait for a free connection slot still counts from its intended
//! time, so waiting anywhere shows up in the figures.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::fakes::UpdateQueue;
use crate::timeline::{question, Timeline};

/// Most requests in flight at once; beyond it, sends queue (and their wait is measured).
const MAX_IN_FLIGHT: usize = 4096;

/// The header Telegram authenticates its webhook calls with.
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

pub struct UpdateLoad {
    client: reqwest::Client,
    /// Per bot: its webhook URL and secret token.
    bots: Vec<(String, String)>,
    /// Set when Botfleet long-polls: updates wait there for its `getUpdates`.
    polled: Option<UpdateQueue>,
    in_flight: Arc<Semaphore>,
    timeline: Arc<Timeline>,
}

/// The numeric id of bench bot `index` (its token's digits, see `Admin::create_enabled_bot`).
pub fn bot_number(index: usize) -> i64 {
    7_000_000 + index as i64
}

/// What one fixed-rate step achieved.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub seqs: Range<usize>,
    pub accepted: usize,
    pub failed: usize,
    /// From the first intended send to the last answer.
    pub elapsed: Duration,
}

impl StepOutcome {
    /// Updates acknowledged per second over the step (including any tail of queued requests).
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The bot a Telegram chat belongs to: fixed per chat, so each chat is one Chat aggregate.
pub fn bot_of(chat: i64, bots: usize) -> usize {
    (chat.unsigned_abs() as usize) % bots
}

/// A private-chat text message as Telegram delivers it.
fn update_body(seq: usize, chat: i64) -> serde_json::Value {
    serde_json::json!({
        "update_id": seq,
        "message": {
            "message_id": seq,
            "date": 1_764_000_000,
            "chat": {"id": chat, "type": "private", "first_name": "A"},
            "from": {"id": chat, "is_bot": false, "first_name": "A", "language_code": "en"},
            "text": question(seq)
        }
    })
}

impl UpdateLoad {
    /// `bots`: (bot id, webhook secret) of each bench bot served at `base_url`.
    pub fn new(base_url: &str, bots: &[(uuid::Uuid, String)], timeline: Arc<Timeline>) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("the load generator's HTTP client builds");
        Self {
            client,
            bots: bots
                .iter()
                .map(|(id, secret)| (format!("{base_url}/telegram/{id}/webhook"), secret.clone()))
                .collect(),
            polled: None,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            timeline,
        }
    }

    /// The same load delivered by long polling: each update is queued for its bot's
    /// `getUpdates` at its time (the fake marks it acknowledged when a poll takes it).
    pub fn polled(mut self, queue: UpdateQueue) -> Self {
        self.polled = Some(queue);
        self
    }

    /// Sends `rate` updates per second for `duration`, numbered from `first_seq`, update `seq`
    /// going to chat `chat_of(seq)`; returns once every request has been answered or has
    /// failed.
    pub async fn fixed_rate(
        self: &Arc<Self>,
        rate: f64,
        duration: Duration,
        first_seq: usize,
        chat_of: impl Fn(usize) -> i64 + Send + 'static,
    ) -> anyhow::Result<StepOutcome> {
        let count = (rate * duration.as_secs_f64()).round() as usize;
        let runtime = tokio::runtime::Handle::current();
        let this = self.clone();
        let start = Instant::now() + Duration::from_millis(5);
        let sends = tokio::task::spawn_blocking(move || {
            let mut sends = Vec::with_capacity(count);
            for i in 0..count {
                let intended = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(ahead) = intended.checked_duration_since(Instant::now()) {
                    std::thread::sleep(ahead);
                }
                let seq = first_seq + i;
                this.timeline.intended.mark(seq, this.timeline.at(intended));
                sends.push(runtime.spawn(this.clone().send(seq, chat_of(seq))));
            }
            sends
        })
        .await?;
        let mut accepted = 0;
        for send in sends {
            if send.await? {
                accepted += 1;
            }
        }
        let seqs = first_seq..first_seq + count;
        let last_ack = seqs
            .clone()
            .filter_map(|seq| self.timeline.acked.get(seq))
            .max()
            .unwrap_or_else(|| self.timeline.now());
        Ok(StepOutcome {
            failed: count - accepted,
            accepted,
            elapsed: Duration::from_nanos(last_ack.saturating_sub(self.timeline.at(start))),
            seqs,
        })
    }

    /// Sends updates `seqs` as fast as Botfleet takes them with `concurrency` requests in
    /// flight (closed loop: for filling a queue, not for measuring latency); returns how many
    /// were accepted.
    pub async fn fill(
        self: &Arc<Self>,
        seqs: Range<usize>,
        concurrency: usize,
        chat_of: impl Fn(usize) -> i64 + Send + Sync + 'static,
    ) -> anyhow::Result<usize> {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(seqs.start));
        let chat_of = Arc::new(chat_of);
        let mut senders = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (this, next, chat_of, end) =
                (self.clone(), next.clone(), chat_of.clone(), seqs.end);
            senders.spawn(async move {
                let mut accepted = 0;
                loop {
                    let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seq >= end {
                        return accepted;
                    }
                    if this.clone().send(seq, chat_of(seq)).await {
                        accepted += 1;
                    }
                }
            });
        }
        let mut accepted = 0;
        while let Some(sender) = senders.join_next().await {
            accepted += sender?;
        }
        Ok(accepted)
    }

    async fn send(self: Arc<Self>, seq: usize, chat: i64) -> bool {
        let bot = bot_of(chat, self.bots.len());
        if let Some(queue) = &self.polled {
            queue.queue_update(bot_number(bot), seq, update_body(seq, chat));
            return true;
        }
        let Ok(_slot) = self.in_flight.acquire().await else {
            return false;
        };
        let (url, secret) = &self.bots[bot];
        let response = self
            .client
            .post(url)
            .header(SECRET_HEADER, secret)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(update_body(seq, chat).to_string())
            .send()
            .await;
        let ok = match response {
            // The body is read so that the connection goes back to the pool.
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            self.timeline.acked.mark(seq, self.timeline.now());
        }
        ok
    }
}
