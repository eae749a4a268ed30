//! When a failed attempt may be tried again: exponential backoff with jitter, and never
//! sooner than the remote side asked (`retry_after`, `Retry-After`).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause after the `attempt`-th failure (1-based).
    pub fn pause(&self, attempt: u32, requested: Option<Duration>) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        // ±20%, so that many chats failing together do not retry together.
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let pause = exponential.mul_f64(jitter);
        requested.map_or(pause, |r| pause.max(r))
    }
}

/// A loop's failures in a row, and the pause before its next try: the one backoff of every
/// loop that retries one thing (a poller, the projection runner, the chat runner's claims).
#[derive(Debug, Clone)]
pub struct Retrying {
    backoff: Backoff,
    failures: u32,
}

impl Retrying {
    pub const fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failures: 0,
        }
    }

    /// Another failure: the pause before the next try, never shorter than `requested`.
    pub fn failed(&mut self, requested: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.backoff.pause(self.failures, requested)
    }

    /// A success: the next failure starts from the first pause again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_are_capped_and_honour_the_request() {
        let backoff = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let first = backoff.pause(1, None);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        let third = backoff.pause(3, None);
        assert!(third >= Duration::from_millis(3200) && third <= Duration::from_millis(4800));
        assert!(backoff.pause(30, None) <= Duration::from_secs(72));
        assert!(backoff.pause(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }

    #[test]
    fn a_loop_backs_off_while_it_fails_and_starts_over_after_a_success() {
        let mut retrying = Retrying::new(Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        });
        let pauses: Vec<Duration> = (0..5).map(|_| retrying.failed(None)).collect();
        assert!(pauses[0] <= Duration::from_millis(1200));
        assert!(pauses[3] >= Duration::from_millis(6400));
        assert!(pauses[4] <= Duration::from_millis(9600), "capped");
        assert_eq!(retrying.failures(), 5);
        retrying.succeeded();
        assert!(retrying.failed(None) <= Duration::from_millis(1200));
        assert!(retrying.failed(Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
