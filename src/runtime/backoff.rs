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
}
