//! A small bounded cache with a time-to-live, for look-ups that would
//! otherwise wait for the store's next group commit on every request
//! (sessions, DM channel members). Pure: callers pass the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value cached for `key` if it is younger than the TTL.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let map = self.lock();
        map.get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn put(&self, key: K, value: V, now: Instant) {
        let mut map = self.lock();
        if map.len() >= self.max {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if map.len() >= self.max {
                // Still full of live entries: start over rather than grow.
                map.clear();
            }
        }
        map.insert(key, (value, now));
    }

    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_stays_bounded() {
        let c = TtlCache::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        c.put(1, "a", t0);
        assert_eq!(c.get(&1, t0 + Duration::from_secs(9)), Some("a"));
        assert_eq!(c.get(&1, t0 + Duration::from_secs(10)), None);
        c.remove(&1);
        assert_eq!(c.get(&1, t0), None);
        for k in 0..10 {
            c.put(k, "x", t0);
        }
        assert!(c.lock().len() <= 3);
    }
}
