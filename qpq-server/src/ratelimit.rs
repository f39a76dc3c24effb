//! Token-bucket rate limits keyed by account or source address. Pure: the
//! caller passes the time, so tests run on virtual time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Allows `burst` events at once and `per_second` on average, per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Above this many keys, buckets that have refilled completely are dropped
/// (they carry no information), so memory stays bounded by active keys.
const SWEEP_ABOVE: usize = 10_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `count` events per `window`, all of which may come at once.
    pub fn per_window(count: u32, window: Duration) -> Self {
        Self::new(f64::from(count) / window.as_secs_f64(), count)
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_ABOVE {
            let (rate, burst) = (self.per_second, self.burst);
            map.retain(|_, b| {
                b.tokens + rate * now.saturating_duration_since(b.at).as_secs_f64() < burst
            });
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::per_window(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.check(&"alice", t0).unwrap();
        }
        let wait = rl.check(&"alice", t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another key is independent.
        rl.check(&"bob", t0).unwrap();
        // After the wait, one more is allowed, not more.
        let t1 = t0 + Duration::from_secs(20);
        rl.check(&"alice", t1).unwrap();
        assert!(rl.check(&"alice", t1).is_err());
    }

    #[test]
    fn memory_is_bounded_by_active_keys() {
        let rl = RateLimiter::new(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..(SWEEP_ABOVE + 10) {
            let _ = rl.check(&i, t0);
        }
        // A second later every bucket has refilled; the next call sweeps them.
        let _ = rl.check(&usize::MAX, t0 + Duration::from_secs(1));
        assert!(rl.tracked_keys() < 10, "{}", rl.tracked_keys());
    }
}
