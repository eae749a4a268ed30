//! Token buckets per key (a client address, a session, a bot), kept in this process.
//!
//! In-process on purpose: a limit protects this process from one client or one bot hogging
//! it, which needs no coordination. With several replicas behind a balancer each enforces
//! its own budget, so the fleet-wide ceiling is the setting times the replicas. (Failed
//! logins are different: they are counted in Postgres, see `auth::throttle`, because an
//! attacker must not get five guesses per replica.)

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are swept: a client that stopped long ago holds a full
/// bucket, which is the same as holding none.
const SWEEP_ABOVE: usize = 4096;

/// Allows `per_minute` requests per key, in bursts of up to `per_minute`, refilled evenly.
pub struct RateLimiter<K> {
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: K) -> Result<(), RetryAfter> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.refilled_at).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(RetryAfter(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / per_second,
            )))
        }
    }
}

/// How long a refused caller should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header, rounded up and at least one: a client told
    /// "0" would retry at once and be refused again.
    pub fn seconds(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_up_to_the_limit_passes_and_the_next_request_waits() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        // 3 per minute: one token every 20 seconds.
        assert!((19..=20).contains(&wait.seconds()), "{wait:?}");
        assert!(limiter.check("b").is_ok(), "keys have their own buckets");
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        for _ in 0..1000 {
            assert!(limiter.check(1).is_ok());
        }
    }
}
