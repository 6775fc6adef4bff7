//! Values read at a change count, kept while no change has gone through this process since
//! (see [`ChangeCounter`](crate::state::ChangeCounter)); other replicas' changes show once an
//! entry's time to live is over. The credential, version and list-total caches are these.

use std::{hash::Hash, time::Duration};

use chrono::{DateTime, Utc};

#[derive(Clone)]
struct Entry<V> {
    generation: u64,
    expires_at: Option<DateTime<Utc>>,
    value: V,
}

/// Values by key, each tagged with the change count it was read at.
pub struct ChangeCache<K, V> {
    entries: moka::sync::Cache<K, Entry<V>>,
}

impl<K, V> ChangeCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries, each living at most `ttl`; `None` when `ttl` is zero.
    pub fn new(ttl: Duration, capacity: u64) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        })
    }

    /// The value read at `generation`, if no change came since and it has not expired.
    pub fn get(&self, key: &K, generation: u64) -> Option<V> {
        self.entries
            .get(key)
            .filter(|entry| entry.generation == generation)
            .filter(|entry| entry.expires_at.is_none_or(|at| Utc::now() < at))
            .map(|entry| entry.value)
    }

    /// Keeps a value read at `generation`.
    pub fn put(&self, key: K, generation: u64, value: V) {
        self.put_until(key, generation, None, value);
    }

    /// Keeps a value read at `generation` that must not be used after `expires_at`.
    pub fn put_until(&self, key: K, generation: u64, expires_at: Option<DateTime<Utc>>, value: V) {
        self.entries.insert(
            key,
            Entry {
                generation,
                expires_at,
                value,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeCache;
    use std::time::Duration;

    #[test]
    fn an_entry_serves_only_its_generation_and_until_it_expires() {
        let cache = ChangeCache::new(Duration::from_secs(60), 10).unwrap();
        cache.put("a", 1, 10);
        assert_eq!(cache.get(&"a", 1), Some(10));
        assert_eq!(cache.get(&"a", 2), None);
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        cache.put_until("b", 1, Some(past), 20);
        assert_eq!(cache.get(&"b", 1), None);
        assert!(ChangeCache::<&str, i32>::new(Duration::ZERO, 10).is_none());
    }
}
