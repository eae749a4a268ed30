//! When each benchmark update reached each point of its journey.
//!
//! Every update the load generator sends has a sequence number `seq`; its text carries it
//! (`question #seq`), the fake LLM echoes it (`answer #seq`), so the fake Telegram can tell
//! which update a `sendMessage` answers. Each point is a slot of nanoseconds since the bench's
//! own epoch (0 = not reached), written lock-free by whichever task saw it, so that recording
//! costs next to nothing on the hot paths of the fakes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// One column of the timeline: a time per sequence number.
pub struct Column(Vec<AtomicU64>);

impl Column {
    fn new(len: usize) -> Self {
        Self((0..len).map(|_| AtomicU64::new(0)).collect())
    }

    /// Records `at` for `seq`, keeping the first record (a redelivery must not move it).
    pub fn mark(&self, seq: usize, at: u64) {
        if let Some(slot) = self.0.get(seq) {
            let _ = slot.compare_exchange(0, at.max(1), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    pub fn get(&self, seq: usize) -> Option<u64> {
        match self.0.get(seq)?.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }
}

pub struct Timeline {
    epoch: Instant,
    /// When the open-loop generator meant to send the update (not when it managed to):
    /// measuring from here is what keeps a stalled server from hiding its own queueing.
    pub intended: Column,
    /// When the webhook's 200 arrived.
    pub acked: Column,
    /// When the fake LLM received the turn's request.
    pub llm_in: Column,
    /// When the fake LLM answered it.
    pub llm_out: Column,
    /// When the fake Telegram received the reply's `sendMessage`.
    pub sent: Column,
    /// The first text of the answer Telegram showed: a draft's, or the answer's itself.
    pub first_text: Column,
    /// `sendMessage` calls whose text named an update, for waiting on a drain.
    pub sent_total: AtomicU64,
    /// `sendMessage` calls per update: more than one is a duplicate answer.
    send_counts: Vec<AtomicU32>,
}

impl Timeline {
    pub fn new(capacity: usize) -> Self {
        Self {
            epoch: Instant::now(),
            intended: Column::new(capacity),
            acked: Column::new(capacity),
            llm_in: Column::new(capacity),
            llm_out: Column::new(capacity),
            sent: Column::new(capacity),
            first_text: Column::new(capacity),
            sent_total: AtomicU64::new(0),
            send_counts: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Nanoseconds since the bench started.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn at(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Records an answer to `seq` reaching Telegram at `at`.
    pub fn record_send(&self, seq: usize, at: u64) {
        self.sent.mark(seq, at);
        self.sent_total.fetch_add(1, Ordering::Relaxed);
        if let Some(count) = self.send_counts.get(seq) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many answers to `seq` reached Telegram.
    pub fn sends_of(&self, seq: usize) -> u32 {
        self.send_counts
            .get(seq)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    pub fn sent_total(&self) -> u64 {
        self.sent_total.load(Ordering::Relaxed)
    }
}

/// The text a benchmark user sends.
pub fn question(seq: usize) -> String {
    format!("question #{seq}")
}

/// The text the fake LLM answers `question #seq` with.
pub fn answer(seq: usize) -> String {
    format!("answer #{seq}")
}

/// The sequence number a question or an answer carries.
pub fn seq_of(text: &str) -> Option<usize> {
    text.rsplit_once('#')?.1.trim().parse().ok()
}
