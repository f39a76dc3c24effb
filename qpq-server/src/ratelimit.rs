//! Token-bucket rate limits keyed by account or source address. Pure: the
//! caller passes the time, so tests run on virtual time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
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

/// Keys a limiter tracks at most, unless told otherwise.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Allows `burst` events at once and `per_second` on average, per key.
///
/// The keys live in a bounded `quick_cache` (S3-FIFO), so a flood of
/// distinct keys costs a fixed amount of memory and no sweep: each insert
/// past the bound evicts a few cold keys. An evicted key starts again with
/// a full bucket, but a key seen once (a flood) is what goes first; a key
/// that keeps coming back — the one worth limiting — is promoted and stays.
/// Each key has its own lock, so checks of different keys never wait for
/// each other.
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: quick_cache::sync::Cache<K, Arc<Mutex<Bucket>>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self::with_capacity(per_second, burst, DEFAULT_MAX_KEYS)
    }

    /// As [`RateLimiter::new`], tracking at most about `max_keys` keys.
    pub fn with_capacity(per_second: f64, burst: u32, max_keys: usize) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            buckets: quick_cache::sync::Cache::new(max_keys),
        }
    }

    /// `count` events per `window`, all of which may come at once.
    pub fn per_window(count: u32, window: Duration) -> Self {
        Self::new(f64::from(count) / window.as_secs_f64(), count)
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let full = self.burst;
        let bucket = self
            .buckets
            .get_or_insert_with(key, || {
                Ok::<_, Infallible>(Arc::new(Mutex::new(Bucket {
                    tokens: full,
                    at: now,
                })))
            })
            .unwrap_or_else(|never| match never {});
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
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
        self.buckets.len()
    }
}

/// At most `count` events per key in any `window`, exactly: each key keeps
/// the times of its last `count` events. The auth layer uses it to cap the
/// logins an address group has pending (a login is pending for at most
/// `window` after its start), whatever the rate limits are set to.
pub struct SlidingWindow<K> {
    count: usize,
    window: Duration,
    starts: quick_cache::sync::Cache<K, Arc<Mutex<VecDeque<Instant>>>>,
}

impl<K: Hash + Eq + Clone> SlidingWindow<K> {
    pub fn new(count: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            count: count as usize,
            window,
            starts: quick_cache::sync::Cache::new(max_keys),
        }
    }

    /// Records an event for `key`, or says how long until the oldest of its
    /// last `count` leaves the window.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let starts = self
            .starts
            .get_or_insert_with(key, || Ok::<_, Infallible>(Arc::default()))
            .unwrap_or_else(|never| match never {});
        let mut starts = starts.lock().unwrap_or_else(|p| p.into_inner());
        while starts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            starts.pop_front();
        }
        match starts.front() {
            Some(oldest) if starts.len() >= self.count => {
                Err(self.window - now.saturating_duration_since(*oldest))
            }
            _ => {
                starts.push_back(now);
                Ok(())
            }
        }
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
    fn a_sliding_window_holds_count_per_window_exactly() {
        let w = SlidingWindow::new(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        w.check(&"a", t0).unwrap();
        w.check(&"a", t0 + Duration::from_secs(30)).unwrap();
        let wait = w.check(&"a", t0 + Duration::from_secs(40)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        w.check(&"b", t0).unwrap();
        w.check(&"a", t0 + Duration::from_secs(60)).unwrap();
        assert!(w.check(&"a", t0 + Duration::from_secs(61)).is_err());
    }

    /// The figure for BENCHMARKS.md: checks per second under a flood of
    /// distinct addresses that never refill (debug build, one thread).
    /// `cargo test -p quicproquo-server --lib -- --ignored --nocapture flood_cost`
    #[test]
    #[ignore = "a measurement; run by hand"]
    fn flood_cost_figure() {
        let rl = RateLimiter::new(30.0 / 60.0, 30);
        let t0 = Instant::now();
        let n = 30_000u32;
        let started = Instant::now();
        for i in 0..n {
            for _ in 0..31 {
                let _ = rl.check(&IpAddr::from(i.to_be_bytes()), t0);
            }
        }
        let took = started.elapsed();
        println!(
            "limiter flood: {n} addresses x 31 checks in {took:.2?} = {:.0} checks/s, {} keys tracked",
            f64::from(n * 31) / took.as_secs_f64(),
            rl.tracked_keys()
        );
    }

    /// A flood of distinct keys that never refill (as from many IPv6
    /// prefixes) stays bounded. The limiter this replaces kept every key
    /// whose bucket was not full again, so this flood grew its map without
    /// bound, and swept the whole map under its one lock on every check.
    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let rl = RateLimiter::with_capacity(1.0 / 60.0, 1, 1_000);
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            let _ = rl.check(&i, t0);
        }
        assert!(rl.tracked_keys() <= 1_100, "{}", rl.tracked_keys());
    }

    /// The key that keeps coming back stays limited through a flood of
    /// keys seen once: eviction takes the cold ones.
    #[test]
    fn a_flood_does_not_reset_an_active_key() {
        let rl = RateLimiter::with_capacity(1.0 / 60.0, 3, 1_000);
        let t0 = Instant::now();
        let abuser = u32::MAX;
        for _ in 0..3 {
            rl.check(&abuser, t0).unwrap();
        }
        for i in 0..5_000u32 {
            let _ = rl.check(&i, t0);
            if i % 100 == 0 {
                assert!(rl.check(&abuser, t0).is_err(), "reset after {i} keys");
            }
        }
    }
}
