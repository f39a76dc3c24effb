//! Token-bucket rate limits keyed by account or source address. Pure: the
//! caller passes the time, so tests run on virtual time.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The group `ip` is counted in: an IPv4 address alone, an IPv6 address by
/// its first `v6_prefix` bits (a customer usually holds a whole /64, so
/// counting full addresses gives one machine 2^64 fresh limits). An
/// IPv4-mapped IPv6 address counts as the IPv4 address.
pub fn address_group(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

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
    fn ipv6_is_grouped_by_prefix_and_ipv4_stays_whole() {
        let g = |s: &str, p| address_group(s.parse().unwrap(), p);
        assert_eq!(g("2001:db8:1:2:aaaa::1", 64), g("2001:db8:1:2:ffff::9", 64));
        assert_ne!(g("2001:db8:1:2::1", 64), g("2001:db8:1:3::1", 64));
        assert_eq!(g("2001:db8:1:2::1", 48), g("2001:db8:1:3::1", 48));
        assert_ne!(g("2001:db8::1", 128), g("2001:db8::2", 128));
        assert_eq!(g("2001:db8::1", 0), g("::", 0));
        assert_ne!(g("192.0.2.1", 64), g("192.0.2.2", 64));
        assert_eq!(g("::ffff:192.0.2.1", 64), g("192.0.2.1", 64));
    }

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
