//! The generation counters (migration 0008) and the caches they keep correct across servers.
//!
//! Triggers bump `generations.catalog` in the transaction of every write to a table the
//! catalogue reads, and `generations.tokens` in that of every change to what authentication
//! reads of a token. A value read *after* the counter was read as `g` is at least as new as
//! state `g`; kept under `g`, it may be served for as long as the counter still reads `g`,
//! which every request checks with one small query. A write through any server moves the
//! counter, so no server serves what it cached before the write (read-after-write holds
//! across servers, docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::Row as _;

use super::Db;

/// The counters, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    pub catalog: i64,
    pub tokens: i64,
}

impl Db {
    /// The current counters (one indexed single-row read).
    pub async fn generations(&self) -> Result<Generations, sqlx::Error> {
        let row = sqlx::query("SELECT catalog, tokens FROM generations WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Generations {
            catalog: row.try_get(0)?,
            tokens: row.try_get(1)?,
        })
    }
}

/// Values read under one generation of a counter. Entries of an older generation are
/// dropped as soon as a newer one is stored; at most `capacity` entries are kept (when full,
/// the cache starts over: simple, bounded, and cheap to refill).
#[derive(Debug)]
pub struct GenCache<V> {
    inner: Mutex<Entries<V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Entries<V> {
    generation: i64,
    map: HashMap<String, V>,
}

impl<V: Clone> GenCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Entries {
                generation: i64::MIN,
                map: HashMap::new(),
            }),
            capacity,
        }
    }

    /// The value stored for `key` under exactly `generation`.
    pub fn get(&self, generation: i64, key: &str) -> Option<V> {
        let entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if entries.generation != generation {
            return None;
        }
        entries.map.get(key).cloned()
    }

    /// Keep `value`, read after the counter read `generation`. A value of an older
    /// generation than the cache holds is not kept.
    pub fn put(&self, generation: i64, key: String, value: V) {
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if generation < entries.generation {
            return;
        }
        if generation > entries.generation {
            entries.generation = generation;
            entries.map.clear();
        }
        if entries.map.len() >= self.capacity {
            entries.map.clear();
        }
        entries.map.insert(key, value);
    }

    /// Change the value stored for `key` under `generation`, if there is one (e.g. a
    /// token's `last_used_at` after this process wrote it).
    pub fn update(&self, generation: i64, key: &str, f: impl FnOnce(&mut V)) {
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if entries.generation == generation
            && let Some(v) = entries.map.get_mut(key)
        {
            f(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GenCache;

    #[test]
    fn a_value_is_served_only_under_its_generation() {
        let c = GenCache::new(2);
        c.put(5, "a".into(), 1);
        assert_eq!(c.get(5, "a"), Some(1));
        assert_eq!(c.get(6, "a"), None, "a newer generation misses");
        assert_eq!(c.get(4, "a"), None);
        // An older reader does not overwrite newer entries.
        c.put(4, "a".into(), 0);
        assert_eq!(c.get(5, "a"), Some(1));
        // A newer generation drops everything older.
        c.put(6, "b".into(), 2);
        assert_eq!(c.get(5, "a"), None);
        assert_eq!(c.get(6, "b"), Some(2));
        c.update(6, "b", |v| *v = 3);
        c.update(5, "b", |v| *v = 9);
        assert_eq!(c.get(6, "b"), Some(3));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = GenCache::new(3);
        for i in 0..10 {
            c.put(1, format!("k{i}"), i);
        }
        let kept = (0..10)
            .filter(|i| c.get(1, &format!("k{i}")).is_some())
            .count();
        assert!((1..=3).contains(&kept), "{kept}");
        assert_eq!(c.get(1, "k9"), Some(9));
    }
}
