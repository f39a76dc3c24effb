//! A bounded cache with a time-to-live, for look-ups that would otherwise
//! wait for the store's next group commit on every request (sessions, DM
//! channel members, started registrations).
//!
//! The bound and the eviction are `quick_cache`'s (S3-FIFO: when full, it
//! evicts a few cold entries per insert). The hand-written map this replaces
//! cleared itself when full of live entries, so every live session then
//! missed at once and all those look-ups queued on the store's single
//! writer thread. The time-to-live is ours: each value is stored with the
//! time it was inserted and checked against the caller's `now`, so the cache
//! never reads the clock and tests run it on virtual time. `quick_cache` has
//! no background threads; an expired entry stays until it is looked up or
//! evicted.

use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: quick_cache::sync::Cache<K, (V, Instant)>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// Holds at most about `max` entries, each for at most `ttl`.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            entries: quick_cache::sync::Cache::new(max),
        }
    }

    fn fresh(&self, inserted: Instant, now: Instant) -> bool {
        now.saturating_duration_since(inserted) < self.ttl
    }

    /// The value cached for `key` if it is younger than the TTL; an expired
    /// one is dropped.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let (value, inserted) = self.entries.get(key)?;
        if self.fresh(inserted, now) {
            return Some(value);
        }
        // Only if it is still the expired value: another request may have
        // put a fresh one since.
        self.entries.remove_if(key, |(_, at)| !self.fresh(*at, now));
        None
    }

    pub fn put(&self, key: K, value: V, now: Instant) {
        self.entries.insert(key, (value, now));
    }

    pub fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops every entry whose value fails `keep` (a full scan: for rare
    /// events such as an account's sessions ending).
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        self.entries.retain(|_, (v, _)| keep(v));
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_by_the_callers_clock() {
        let c = TtlCache::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        c.put(1, "a", t0);
        assert_eq!(c.get(&1, t0 + Duration::from_secs(9)), Some("a"));
        assert_eq!(c.get(&1, t0 + Duration::from_secs(10)), None);
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        c.put(2, "b", t0);
        c.remove(&2);
        assert_eq!(c.get(&2, t0), None);
    }

    /// The regression the crate fixes: filling the cache with live entries
    /// evicts some of them, never all (the old cache cleared itself).
    #[test]
    fn a_full_cache_evicts_some_entries_not_all() {
        const MAX: usize = 1_000;
        let c = TtlCache::new(Duration::from_secs(3600), MAX);
        let t0 = Instant::now();
        for k in 0..MAX {
            c.put(k, k, t0);
        }
        for k in MAX..MAX + MAX / 10 {
            c.put(k, k, t0);
            assert!(
                c.len() > MAX / 2,
                "a put into a full cache dropped most of it"
            );
        }
        assert!(c.len() <= MAX, "stays bounded: {}", c.len());
        let kept = (0..MAX + MAX / 10)
            .filter(|k| c.get(k, t0).is_some())
            .count();
        assert!(kept > MAX / 2 && kept <= c.len(), "{kept}");
    }
}
