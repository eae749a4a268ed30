//! The time the effect runner judges budgets by: the system clock, which a test may move
//! forward (to cross a day boundary without waiting for midnight). Nothing in production
//! moves it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// The system clock plus an offset shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::default();
        let other = clock.clone();
        clock.advance(TimeDelta::days(1));
        let ahead = other.now() - Utc::now();
        assert!(ahead > TimeDelta::hours(23), "{ahead}");
    }
}
